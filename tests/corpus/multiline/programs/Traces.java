// Prints real Java stack traces to stderr, one after another, each followed by a line
// holding only "--8<--" (generate.py splits on it).
public class Traces {
    static void descend(int depth) {
        if (depth == 0) {
            throw new IllegalStateException("queue is closed");
        }
        descend(depth - 1);
    }

    static int parse(String text) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in config: " + text, e);
        }
    }

    static class Resource implements AutoCloseable {
        @Override
        public void close() {
            throw new IllegalStateException("close failed");
        }
    }

    static void mark() {
        System.err.println("--8<--");
        System.err.flush();
    }

    public static void main(String[] args) throws Exception {
        try {
            descend(4);
        } catch (RuntimeException e) {
            e.printStackTrace();
        }
        mark();
        try {
            parse("80a");
        } catch (RuntimeException e) {
            e.printStackTrace();
        }
        mark();
        try (Resource r = new Resource()) {
            throw new java.io.IOException("write failed");
        } catch (java.io.IOException e) {
            e.printStackTrace();
        }
        mark();
        try {
            Object o = null;
            o.toString();
        } catch (NullPointerException e) {
            e.printStackTrace();
        }
        mark();
        // Uncaught in a thread: printed by the default handler ("Exception in thread ...").
        Thread worker = new Thread(() -> descend(2), "worker-1");
        worker.start();
        worker.join();
        mark();
    }
}
