//! A real Kafka-protocol broker for the tests (tansu on 127.0.0.1) and the independent
//! client that checks what sluice wrote (confluent-kafka, through tests/kafka_client.py).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{free_port, have_tool, repo_root, services_required, tempdir, TIMEOUT};

/// A tansu broker process. It runs under a small shell wrapper that kills it when this
/// test process's end of the wrapper's stdin closes, so a broker never outlives the tests
/// (even when they panic or the module's shared broker is never dropped).
pub(crate) struct Broker {
    port: u16,
    storage: String,
    wrapper: Option<(Child, ChildStdin)>,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free port with `storage` (a tansu storage-engine URL); `{dir}`
    /// in it is replaced by a fresh directory that lives as long as the broker.
    pub(crate) fn start(storage: &str) -> Broker {
        let dir = tempdir();
        let port = free_port();
        let storage = storage.replace("{dir}", &dir.path().display().to_string());
        let mut broker = Broker {
            port,
            storage,
            wrapper: None,
            pid: 0,
            _dir: dir,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = self._dir.path().join("tansu.log");
        let script = format!(
            "tansu broker --storage-engine '{storage}' --listener-url {url} \
             --advertised-listener-url {url} >>'{log}' 2>&1 </dev/null & \
             pid=$!; echo $pid; read _; kill -9 $pid 2>/dev/null; wait $pid",
            storage = self.storage,
            log = log.display(),
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("wrapper prints the broker's pid");
        self.pid = line.trim().parse().expect("pid");
        let stdin = child.stdin.take().expect("stdin");
        self.wrapper = Some((child, stdin));
        self.wait_ready(&log);
    }

    /// Waits until the broker accepts connections and answers metadata requests.
    fn wait_ready(&self, log: &Path) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not start listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the broker (no clean shutdown).
    pub(crate) fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "tansu did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same port with the same storage.
    pub(crate) fn restart(&mut self) {
        self.launch();
    }

    pub(crate) fn create_topic(&self, topic: &str, partitions: u32) {
        let output = Command::new("tansu")
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .output()
            .expect("tansu topic create runs");
        assert!(
            output.status.success(),
            "tansu topic create {topic}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Metadata shows the topic once it is usable.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let out = client(&["partitions", &self.bootstrap(), topic]);
            if out.trim() == partitions.to_string() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} never appeared: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of metric `name` (first sample) from a router's `/metrics`, or -1.
pub(crate) fn metric(api: &str, name: &str) -> i64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(api) else {
        return -1;
    };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\nHost: {api}\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Whether tansu and confluent-kafka are there; fails when services are required.
pub(crate) fn kafka_available() -> bool {
    if !have_tool("tansu") {
        return false;
    }
    let python = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        assert!(
            !services_required(),
            "python3 with confluent_kafka is required (SLUICE_REQUIRE_SERVICES is set) but missing"
        );
        println!("skipping: python3 -c 'import confluent_kafka' failed (run scripts/test)");
    }
    python
}

/// The module's shared broker (memory storage).
pub(crate) fn shared_broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| Broker::start("memory://tansu/"))
}

/// Topic and group names unique to one test run.
pub(crate) fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

pub(crate) fn client_script() -> PathBuf {
    repo_root().join("tests/kafka_client.py")
}

/// Runs the independent client; returns its stdout, failing the test on a non-zero exit.
pub(crate) fn client(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "kafka_client.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A message as the independent client read it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Read {
    pub(crate) key: Option<String>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) value: String,
}

pub(crate) fn consume(bootstrap: &str, topic: &str, count: usize) -> Vec<Read> {
    client(&[
        "consume",
        bootstrap,
        topic,
        &count.to_string(),
        "--timeout",
        "10",
    ])
    .lines()
    .map(|l| serde_json::from_str(l).expect("client prints JSON"))
    .collect()
}

pub(crate) fn produce(bootstrap: &str, topic: &str, count: usize, start: usize) {
    let out = client(&[
        "produce",
        bootstrap,
        topic,
        &count.to_string(),
        "--start",
        &start.to_string(),
    ]);
    assert!(out.contains(&format!("\"delivered\": {count}")), "{out}");
}
