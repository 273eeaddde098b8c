// Prints real Node.js errors to stderr as servers log them (console.error(err)), each
// followed by a line "--8<--".
function mark() {
  console.error("--8<--");
}

function parseConfig(text) {
  return JSON.parse(text);
}

try {
  parseConfig("{oops");
} catch (err) {
  console.error(err);
}
mark();

try {
  const user = undefined;
  user.name.toUpperCase();
} catch (err) {
  console.error(err);
}
mark();

try {
  try {
    parseConfig("");
  } catch (inner) {
    throw new Error("cannot load settings", { cause: inner });
  }
} catch (err) {
  console.error(err);
}
mark();

try {
  const err = new Error("connect ECONNREFUSED 127.0.0.1:5432");
  err.code = "ECONNREFUSED";
  throw err;
} catch (err) {
  console.error(err);
}
mark();

console.error(new RangeError("page size out of range").stack);
mark();
