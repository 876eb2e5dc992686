//! `[capture]`: appends every verified post body, as one line, to the corpus
//! file `modbridge backtest` reads, until the file reaches its size limit.
//!
//! The file is opened at start; a request only appends to it behind a
//! mutex. Rotation is seen without a restart: at most once every
//! [`ROTATION_CHECK`], an append first compares the path with the open file
//! (one `stat`), and when the file was moved or removed (logrotate's default
//! move-and-create) it opens the path again, creating it; when it was
//! truncated in place (`copytruncate`) it counts from the new size. Either
//! way a file that had reached `max_mb` captures again. It holds personal
//! data: it is off unless configured.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::CaptureSettings;

/// How often an append looks for a rotated file, at most.
pub const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// The open corpus file.
pub struct Capture {
    inner: Mutex<Inner>,
    max_bytes: u64,
    path: PathBuf,
}

struct Inner {
    file: File,
    /// The open file's identity, to tell a rotated path.
    id: Option<FileId>,
    written: u64,
    /// The limit was reached (and logged once): nothing more is written
    /// until the file is rotated.
    full: bool,
    checked: Instant,
}

/// Device and inode.
type FileId = (u64, u64);

/// A file's identity (none off Unix: only a removed file is seen there).
fn identity(m: &Metadata) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// Opens `path` for appending (creating it): the file, its identity and size.
fn open_append(path: &Path) -> anyhow::Result<(File, Option<FileId>, u64)> {
    use anyhow::Context;
    let shown = path.display();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| {
            format!("cannot open the [capture] file {shown} for appending: check the directory exists and is writable, or remove [capture] file")
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the size of the [capture] file {shown}"))?;
    Ok((file, identity(&meta), meta.len()))
}

impl Capture {
    /// Opens (creating, appending to) the configured file.
    pub fn open(settings: &CaptureSettings) -> anyhow::Result<Self> {
        let (file, id, written) = open_append(&settings.file)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                file,
                id,
                written,
                full: false,
                checked: Instant::now(),
            }),
            max_bytes: settings.max_bytes,
            path: settings.file.clone(),
        })
    }

    /// Follows a rotation of the file: reopens a moved or removed path,
    /// recounts a truncated one.
    fn follow_rotation(&self, inner: &mut Inner) {
        let moved = match std::fs::metadata(&self.path) {
            Ok(now) => {
                if identity(&now) == inner.id {
                    if now.len() < inner.written {
                        // Truncated in place (copytruncate).
                        inner.written = now.len();
                        inner.full = false;
                    }
                    return;
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            // Cannot tell (permissions on the directory): keep appending.
            Err(_) => false,
        };
        if !moved {
            return;
        }
        match open_append(&self.path) {
            Ok((file, id, written)) => {
                *inner = Inner {
                    file,
                    id,
                    written,
                    full: false,
                    checked: inner.checked,
                };
                tracing::info!(file = %self.path.display(), "capture file rotated: appending to the new file");
            }
            Err(e) => {
                warn!(file = %self.path.display(), error = format!("{e:#}"), "capture file rotated but the new one cannot be opened: still appending to the moved file");
            }
        }
    }

    /// Appends `body` as one line. A genuine JSON body has newlines only
    /// between tokens (never inside strings), so they become spaces.
    pub fn append(&self, body: &[u8]) {
        let mut line: Vec<u8> = body
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        line.push(b'\n');
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inner.checked.elapsed() >= ROTATION_CHECK {
            inner.checked = Instant::now();
            self.follow_rotation(&mut inner);
        }
        if inner.full {
            return;
        }
        if inner.written + line.len() as u64 > self.max_bytes {
            inner.full = true;
            warn!(file = %self.path.display(), max_bytes = self.max_bytes, "capture stopped: the file reached [capture] max_mb; move it away (rotate it) to capture again");
            return;
        }
        match inner.file.write_all(&line) {
            Ok(()) => inner.written += line.len() as u64,
            Err(e) => {
                inner.full = true;
                warn!(file = %self.path.display(), error = %e, "capture stopped: cannot append to the file; move it away (rotate it) to capture again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_body_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.jsonl");
        let capture = Capture::open(&CaptureSettings {
            file: file.clone(),
            max_bytes: 30,
        })
        .unwrap();
        capture.append(b"{\n  \"PostId\": \"A\"\n}");
        capture.append(b"{\"PostId\": \"B\"}");
        capture.append(b"{\"PostId\": \"C\"}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, "{   \"PostId\": \"A\" }\n");
        assert!(capture.inner.lock().unwrap().full);
    }

    /// Makes the next append look for a rotation (tests do not wait).
    fn due(capture: &Capture) {
        capture.inner.lock().unwrap().checked = Instant::now() - ROTATION_CHECK;
    }

    #[test]
    fn a_moved_removed_or_truncated_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.jsonl");
        let capture = Capture::open(&CaptureSettings {
            file: file.clone(),
            max_bytes: 40,
        })
        .unwrap();
        capture.append(b"{\"PostId\": \"A\"}");
        // Moved away (logrotate's default), within the check interval: the
        // moved file still gets the next line.
        std::fs::rename(&file, dir.path().join("c.jsonl.1")).unwrap();
        capture.append(b"{\"PostId\": \"B\"}");
        due(&capture);
        capture.append(b"{\"PostId\": \"C\"}");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(
            read("c.jsonl.1"),
            "{\"PostId\": \"A\"}\n{\"PostId\": \"B\"}\n"
        );
        assert_eq!(read("c.jsonl"), "{\"PostId\": \"C\"}\n");
        // Full: nothing more until it is rotated; removed, it is created again.
        capture.append(b"{\"PostId\": \"D\"}");
        capture.append(b"{\"PostId\": \"E\"}");
        assert_eq!(
            read("c.jsonl"),
            "{\"PostId\": \"C\"}\n{\"PostId\": \"D\"}\n"
        );
        std::fs::remove_file(&file).unwrap();
        due(&capture);
        capture.append(b"{\"PostId\": \"F\"}");
        assert_eq!(read("c.jsonl"), "{\"PostId\": \"F\"}\n");
        // Truncated in place (copytruncate): counted from the new size.
        capture.append(b"{\"PostId\": \"G\"}");
        capture.append(b"{\"PostId\": \"H\"}");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        due(&capture);
        capture.append(b"{\"PostId\": \"I\"}");
        assert_eq!(read("c.jsonl"), "{\"PostId\": \"I\"}\n");
    }
}
