//! `sluice up --watch-config`: the pipeline file polled once a second; a change is reloaded
//! once the file has stayed the same for one more poll, so an editor's save in several
//! writes is reloaded once, whole. Polling the content (not only the mtime) costs one small
//! read a second and needs no file-notification dependency.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Reloader;

pub const POLL: Duration = Duration::from_secs(1);

/// Polls `path` until `stop` fires, reloading through `reloader` on a settled change.
/// `started_from` is the content read before the running pipeline was loaded, so that a
/// change made while the router started is not taken for the starting point.
pub async fn watch_config(
    path: PathBuf,
    started_from: Option<Vec<u8>>,
    reloader: Reloader,
    stop: CancellationToken,
) {
    let read = |path: PathBuf| async move {
        tokio::task::spawn_blocking(move || std::fs::read(path).ok())
            .await
            .ok()
            .flatten()
    };
    let mut applied = started_from;
    let mut seen = applied.clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let now = read(path.clone()).await;
        // A change is applied when it has settled: the same content on two polls in a row.
        let settled = now == seen;
        seen = now.clone();
        if !settled || now == applied || now.is_none() {
            continue;
        }
        applied = now;
        tracing::info!(file = %path.display(), "pipeline file changed: reloading");
        // The controller logs and counts the outcome.
        let _ = reloader.reload().await;
    }
}
