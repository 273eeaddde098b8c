//! A real S3 server for the tests (SeaweedFS, `weed server` on 127.0.0.1 ports of its own)
//! and the independent client that reads back what sluice stored (boto3, through
//! tests/s3_client.py).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use base64::Engine;

use crate::util::{free_port, have_tool, repo_root, services_required, tempdir, TIMEOUT};

/// The identity the server knows, and the tests sign with.
pub(crate) const ACCESS_KEY: &str = "sluicetest";
pub(crate) const SECRET_KEY: &str = "sluicetestsecret";

/// A `weed server` (master, volume, filer and S3 gateway in one process). It runs under a
/// small shell wrapper that kills it when this test process's end of the wrapper's stdin
/// closes, so a server never outlives the tests.
pub(crate) struct Seaweed {
    /// master, master gRPC, volume, volume gRPC, filer, filer gRPC, s3, s3 gRPC, s3 https.
    ports: [u16; 9],
    /// Whether the S3 gateway also serves https (with `tls.pem` and `tls.key` in `dir`).
    tls: bool,
    wrapper: Option<(Child, ChildStdin)>,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Seaweed {
    pub(crate) fn start() -> Seaweed {
        Self::start_with(None)
    }

    /// A server whose S3 gateway also serves https with this certificate and key (PEM).
    pub(crate) fn start_tls(cert_pem: &str, key_pem: &str) -> Seaweed {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Seaweed {
        let dir = tempdir();
        if let Some((cert, key)) = tls {
            std::fs::write(dir.path().join("tls.pem"), cert).unwrap();
            std::fs::write(dir.path().join("tls.key"), key).unwrap();
        }
        let identities = serde_json::json!({
            "identities": [{
                "name": "sluice",
                "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]
        });
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        // free_port can hand out the same port twice in a row.
        let mut ports = Vec::with_capacity(9);
        while ports.len() < 9 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let ports: [u16; 9] = ports.try_into().expect("nine ports");
        let mut server = Seaweed {
            ports,
            tls: tls.is_some(),
            wrapper: None,
            pid: 0,
            dir,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, https] =
            self.ports;
        let dir = self.dir.path();
        let tls = if self.tls {
            format!(
                "-s3.port.https={https} -s3.cert.file='{}' -s3.key.file='{}'",
                dir.join("tls.pem").display(),
                dir.join("tls.key").display()
            )
        } else {
            String::new()
        };
        let log = dir.join("weed.log");
        // A fixed volume count and a free-space floor in bytes. By default the server
        // sizes its volume count from the disk's free space and marks every volume
        // read-only below 1 % free: on a large shared disk that is nearly full (a few
        // hundred MB of 250 GB) an empty object is stored but every write with a body
        // hangs. Each bucket is a collection that grows volumes of its own (seven at a
        // time), so the count leaves room for every test's bucket; volumes preallocate
        // nothing, so it costs no space.
        let script = format!(
            "weed server -dir='{data}' -ip=127.0.0.1 -ip.bind=127.0.0.1 \
             -master.port={master} -master.port.grpc={master_grpc} -master.volumeSizeLimitMB=64 \
             -volume.port={volume} -volume.port.grpc={volume_grpc} -volume.max=100 \
             -volume.minFreeSpace=1MiB \
             -filer -filer.port={filer} -filer.port.grpc={filer_grpc} \
             -s3 -s3.port={s3} -s3.port.grpc={s3_grpc} -s3.config='{config}' {tls} \
             -s3.port.iceberg=0 -s3.port.lance=0 -debug.port=0 \
             >>'{log}' 2>&1 </dev/null & \
             pid=$!; echo $pid; read _; kill -9 $pid 2>/dev/null; wait $pid",
            data = dir.join("data").display(),
            config = dir.join("s3.json").display(),
            log = log.display(),
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The wrapper's own "Killed" when the server is killed is noise.
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("wrapper prints the server's pid");
        self.pid = line.trim().parse().expect("pid");
        let stdin = child.stdin.take().expect("stdin");
        self.wrapper = Some((child, stdin));
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", s3)).is_err()
            || (self.tls && TcpStream::connect(("127.0.0.1", https)).is_err())
        {
            assert!(
                Instant::now() < deadline,
                "weed did not start listening: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// The https endpoint of a server started with [`Seaweed::start_tls`].
    pub(crate) fn https_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports[8])
    }

    /// SIGKILLs the server (no clean shutdown) and waits until its S3 port is closed.
    pub(crate) fn kill(&mut self) {
        // Never `kill -9 0`: that would be this test process's whole group.
        if self.pid > 0 {
            let _ = Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .status();
            self.pid = 0;
        }
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.ports[6])).is_ok() {
            assert!(Instant::now() < deadline, "weed did not stop");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same ports and data.
    pub(crate) fn restart(&mut self) {
        self.launch();
    }

    /// Creates `bucket`, waiting until the server accepts writes into it.
    pub(crate) fn create_bucket(&self, bucket: &str) {
        client(&[&self.endpoint(), "create", bucket]);
    }

    /// Every object under `prefix`, read back with boto3.
    pub(crate) fn objects(&self, bucket: &str, prefix: &str) -> Vec<Object> {
        client(&[&self.endpoint(), "dump", bucket, prefix])
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("dump line");
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                Object {
                    key: text("key"),
                    etag: text("etag"),
                    content_type: text("content_type"),
                    content_encoding: text("content_encoding"),
                    body: base64::engine::general_purpose::STANDARD
                        .decode(text("body"))
                        .expect("base64"),
                }
            })
            .collect()
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One stored object.
pub(crate) struct Object {
    pub(crate) key: String,
    pub(crate) etag: String,
    pub(crate) content_type: String,
    pub(crate) content_encoding: String,
    pub(crate) body: Vec<u8>,
}

impl Object {
    /// The object's lines, decompressed as its `Content-Encoding` says.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut text = String::new();
        match self.content_encoding.as_str() {
            "gzip" => flate2::read::MultiGzDecoder::new(self.body.as_slice())
                .read_to_string(&mut text)
                .map(drop),
            "zstd" => zstd::stream::read::Decoder::new(self.body.as_slice())
                .and_then(|mut d| d.read_to_string(&mut text))
                .map(drop),
            "" => {
                text = String::from_utf8(self.body.clone()).expect("utf-8");
                Ok(())
            }
            other => panic!("unexpected Content-Encoding {other}"),
        }
        .unwrap_or_else(|e| panic!("{}: cannot decompress: {e}", self.key));
        text.lines().map(str::to_string).collect()
    }
}

/// Whether weed and boto3 are there; fails when services are required.
pub(crate) fn seaweed_available() -> bool {
    if !have_tool("weed") {
        return false;
    }
    let boto = Command::new("python3")
        .args(["-c", "import boto3"])
        .status()
        .is_ok_and(|s| s.success());
    if !boto {
        assert!(
            !services_required(),
            "python3 with boto3 is required (SLUICE_REQUIRE_SERVICES is set) but missing"
        );
        println!("skipping: python3 -c 'import boto3' failed (run scripts/test)");
    }
    boto
}

/// The module's shared server.
pub(crate) fn shared_seaweed() -> &'static Seaweed {
    static SERVER: OnceLock<Seaweed> = OnceLock::new();
    SERVER.get_or_init(Seaweed::start)
}

fn client_script() -> PathBuf {
    repo_root().join("tests/s3_client.py")
}

/// Runs the independent client; returns its stdout, failing the test on a non-zero exit.
fn client(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "s3_client.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}
