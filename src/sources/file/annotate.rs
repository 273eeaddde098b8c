//! The hook a source built on the file source uses to add fields to the events of each
//! file, or to leave some out: `kubernetes_logs` adds the pod's metadata read from the
//! path and the API. The file source itself has none.

use std::path::Path;

use crate::event::Event;

/// Makes the annotator of each file the source opens.
pub trait Annotate: Send + Sync + 'static {
    /// Called once per file, when it is opened (so per-file work, like reading the
    /// path, is done once, not per read).
    fn file(&self, path: &Path) -> Box<dyn FileAnnotator>;
}

/// Adds fields to the events of one file.
pub trait FileAnnotator: Send {
    /// Called with the events of each read, after `path` and `host` are set. Events it
    /// takes out of `events` must be acknowledged (delivered, if left out on purpose):
    /// their token is the read's, and an event dropped without a status holds the
    /// checkpoint back.
    fn annotate(&mut self, events: &mut Vec<Event>);
}
