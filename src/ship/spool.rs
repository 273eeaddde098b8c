//! The shipper's on-disk spool: every batch is written here before it is sent, and deleted
//! once the router answered 2xx. Bounded by bytes; a full spool blocks the writer (the
//! reading side), never drops.
//!
//! Format: one file per batch, `NNNNNNNNNNNNNNNNNNNN.batch` (sequence number, zero-padded so
//! that name order is send order), written to a `.tmp` name and renamed, so a crash never
//! leaves a half-written batch under a batch name. Each file is a 16-byte header followed by
//! the NDJSON body:
//!
//! ```text
//! "SLB1" | lines: u32 LE | body length: u32 LE | crc32(body): u32 LE | body
//! ```
//!
//! On start, leftover batches are queued first, in sequence order; a file whose header,
//! length or checksum does not match is moved to `damaged/` and reported on stderr.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ShipError;

const MAGIC: &[u8; 4] = b"SLB1";
const HEADER: usize = 16;

/// A batch waiting in the spool.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub lines: u32,
    pub bytes: u64,
    path: PathBuf,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    bytes: u64,
    lines: u64,
    next_seq: u64,
}

/// What is still in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub batches: usize,
    pub lines: u64,
    pub bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Signalled when a batch is removed (room for the writer, progress for `wait_empty`).
    removed: Condvar,
    /// Wakes the sender when a batch is added.
    added: tokio::sync::Notify,
    /// Lines of batches moved to `damaged/` by this run (refused by the router, unreadable).
    set_aside: std::sync::atomic::AtomicU64,
    _lock: LockFile,
}

impl Spool {
    /// Opens (creating) `dir`, takes its lock and queues leftover batches in order.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, ShipError> {
        let io = |source| ShipError::Spool {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let lock = LockFile::take(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for item in fs::read_dir(dir).map_err(io)? {
            let path = item.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                // Never renamed: its batch was not complete when the previous run died.
                let _ = fs::remove_file(&path);
            } else if let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            {
                names.push((seq, path));
            }
        }
        names.sort();
        let mut state = State::default();
        for (seq, path) in names {
            match read_header(&path) {
                Ok((lines, bytes)) => {
                    state.bytes += bytes;
                    state.lines += u64::from(lines);
                    state.queue.push_back(Entry {
                        seq,
                        lines,
                        bytes,
                        path,
                    });
                }
                Err(reason) => quarantine(dir, &path, &reason),
            }
            state.next_seq = seq + 1;
        }
        if !state.queue.is_empty() {
            eprintln!(
                "sluice ship: {} batches ({} lines) left over in {}; sending them first",
                state.queue.len(),
                state.lines,
                dir.display()
            );
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(state),
            removed: Condvar::new(),
            added: tokio::sync::Notify::new(),
            set_aside: std::sync::atomic::AtomicU64::new(0),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pending(&self) -> Pending {
        let state = self.lock();
        Pending {
            batches: state.queue.len(),
            lines: state.lines,
            bytes: state.bytes,
        }
    }

    /// Writes a batch. Blocks while the spool is full (an empty spool always takes a batch,
    /// so one oversized batch cannot wedge it); `on_full` is called once when that starts.
    pub fn append(&self, lines: u32, body: &[u8], on_full: impl FnOnce()) -> Result<(), ShipError> {
        let size = (HEADER + body.len()) as u64;
        let seq = {
            let mut state = self.lock();
            let mut on_full = Some(on_full);
            while !state.queue.is_empty() && state.bytes + size > self.max_bytes {
                if let Some(f) = on_full.take() {
                    f();
                }
                state = self.removed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            // Reserve the room now; the entry is queued once the file exists.
            state.bytes += size;
            seq
        };
        let path = self.dir.join(format!("{seq:020}.batch"));
        let result = write_batch(&path, lines, body);
        let mut state = self.lock();
        match result {
            Ok(()) => {
                state.lines += u64::from(lines);
                // Sequence numbers are taken under the lock and writes happen on one thread,
                // so entries are queued in order.
                state.queue.push_back(Entry {
                    seq,
                    lines,
                    bytes: size,
                    path,
                });
                drop(state);
                self.added.notify_one();
                Ok(())
            }
            Err(source) => {
                state.bytes -= size;
                Err(ShipError::Spool {
                    path: self.dir.clone(),
                    source,
                })
            }
        }
    }

    /// The oldest batch, waiting for one if the spool is empty.
    pub async fn front(&self) -> Entry {
        loop {
            if let Some(entry) = self.lock().queue.front().cloned() {
                return entry;
            }
            self.added.notified().await;
        }
    }

    /// Reads a batch's body, checking its header and checksum.
    pub fn read(&self, entry: &Entry) -> Result<Bytes, String> {
        let data = fs::read(&entry.path).map_err(|e| e.to_string())?;
        let (lines, body) = parse(&data)?;
        if lines != entry.lines {
            return Err("line count changed".into());
        }
        Ok(Bytes::copy_from_slice(body))
    }

    /// Deletes the front batch once sent (or quarantines it when `damaged` says why).
    pub fn remove_front(&self, entry: &Entry, damaged: Option<&str>) {
        match damaged {
            Some(reason) => {
                quarantine(&self.dir, &entry.path, reason);
                self.set_aside
                    .fetch_add(u64::from(entry.lines), std::sync::atomic::Ordering::Relaxed);
            }
            None => {
                if let Err(error) = fs::remove_file(&entry.path) {
                    eprintln!(
                        "sluice ship: cannot delete sent batch {}: {error}",
                        entry.path.display()
                    );
                }
            }
        }
        let mut state = self.lock();
        if state.queue.front().is_some_and(|e| e.seq == entry.seq) {
            state.queue.pop_front();
            state.bytes -= entry.bytes;
            state.lines -= u64::from(entry.lines);
        }
        drop(state);
        self.removed.notify_all();
    }

    /// Lines this run moved to `damaged/` instead of delivering.
    pub fn set_aside_lines(&self) -> u64 {
        self.set_aside.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the spool is empty or `timeout` passed; returns what is left.
    pub fn wait_empty(&self, timeout: Duration) -> Pending {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.queue.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .removed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Pending {
            batches: state.queue.len(),
            lines: state.lines,
            bytes: state.bytes,
        }
    }
}

fn write_batch(path: &Path, lines: u32, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4..8].copy_from_slice(&lines.to_le_bytes());
    header[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[12..16].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    file.write_all(&header)?;
    file.write_all(body)?;
    drop(file);
    fs::rename(&tmp, path)
}

fn parse(data: &[u8]) -> Result<(u32, &[u8]), String> {
    if data.len() < HEADER || &data[..4] != MAGIC {
        return Err("not a spool batch (bad header)".into());
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let (lines, len, crc) = (word(4), word(8) as usize, word(12));
    let body = &data[HEADER..];
    if body.len() != len {
        return Err(format!("length {} but header says {len}", body.len()));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((lines, body))
}

fn read_header(path: &Path) -> Result<(u32, u64), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let (lines, _) = parse(&data)?;
    Ok((lines, data.len() as u64))
}

/// Moves a damaged batch aside and says so: nothing disappears silently.
fn quarantine(dir: &Path, path: &Path, reason: &str) {
    let damaged = dir.join("damaged");
    let target = damaged.join(path.file_name().unwrap_or_default());
    let moved = fs::create_dir_all(&damaged).and_then(|()| fs::rename(path, &target));
    match moved {
        Ok(()) => eprintln!(
            "sluice ship: spool batch {} is damaged ({reason}); moved to {}",
            path.display(),
            target.display()
        ),
        Err(error) => eprintln!(
            "sluice ship: spool batch {} is damaged ({reason}) and cannot be moved aside: {error}",
            path.display()
        ),
    }
}

/// `DIR/lock` holding the owner's pid: two shippers must not share a spool.
struct LockFile(PathBuf);

impl LockFile {
    fn take(dir: &Path) -> Result<LockFile, ShipError> {
        let path = dir.join("lock");
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let _ = write!(file, "{}", std::process::id());
                    return Ok(LockFile(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if alive {
                        return Err(ShipError::SpoolInUse {
                            path: dir.to_path_buf(),
                            pid: owner.trim().to_string(),
                        });
                    }
                    // Stale: its owner is gone.
                    let _ = fs::remove_file(&path);
                }
                Err(source) => {
                    return Err(ShipError::Spool {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
        }
        Err(ShipError::SpoolInUse {
            path: dir.to_path_buf(),
            pid: "?".into(),
        })
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_survive_a_restart_in_order_and_damage_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(1, b"{\"a\":1}\n", || {}).unwrap();
            spool.append(2, b"{\"a\":2}\n{\"a\":3}\n", || {}).unwrap();
            spool.append(1, b"{\"a\":4}\n", || {}).unwrap();
        }
        // Damage the last batch.
        let last = dir.path().join(format!("{:020}.batch", 2));
        let mut data = fs::read(&last).unwrap();
        let n = data.len();
        data[n - 2] ^= 0xff;
        fs::write(&last, data).unwrap();

        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending().batches, 2);
        assert_eq!(spool.pending().lines, 3);
        assert!(dir
            .path()
            .join("damaged")
            .join(last.file_name().unwrap())
            .exists());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = rt.block_on(spool.front());
        assert_eq!(spool.read(&first).unwrap().as_ref(), b"{\"a\":1}\n");
        spool.remove_front(&first, None);
        let second = rt.block_on(spool.front());
        assert_eq!(second.lines, 2);
        spool.remove_front(&second, None);
        assert_eq!(spool.wait_empty(Duration::ZERO).batches, 0);
        // New batches continue after the old sequence numbers.
        spool.append(1, b"x\n", || {}).unwrap();
        assert!(dir.path().join(format!("{:020}.batch", 3)).exists());
    }

    #[test]
    fn a_second_shipper_cannot_take_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let _spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(ShipError::SpoolInUse { .. })
        ));
    }

    #[test]
    fn a_full_spool_blocks_the_writer_until_a_batch_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = std::sync::Arc::new(Spool::open(dir.path(), 40).unwrap());
        spool.append(1, &[b'x'; 20], || {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let spool = spool.clone();
            std::thread::spawn(move || {
                spool
                    .append(1, &[b'y'; 20], move || tx.send(()).unwrap())
                    .unwrap()
            })
        };
        rx.recv_timeout(Duration::from_secs(5))
            .expect("reported full");
        assert!(!writer.is_finished());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = rt.block_on(spool.front());
        spool.remove_front(&first, None);
        writer.join().unwrap();
        assert_eq!(spool.pending().batches, 1);
    }
}
