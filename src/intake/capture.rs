//! `[capture]`: appends every verified post body, as one line, to the corpus
//! file `modbridge backtest` reads, until the file reaches its size limit.
//!
//! The file is opened once at start; a request only appends to it behind a
//! mutex. It holds personal data: it is off unless configured.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use tracing::warn;

use crate::config::CaptureSettings;

/// The open corpus file.
pub struct Capture {
    inner: Mutex<Inner>,
    max_bytes: u64,
    path: String,
}

struct Inner {
    file: File,
    written: u64,
    /// The limit was reached (and logged once): nothing more is written.
    full: bool,
}

impl Capture {
    /// Opens (creating, appending to) the configured file.
    pub fn open(settings: &CaptureSettings) -> anyhow::Result<Self> {
        use anyhow::Context;
        let path = settings.file.display().to_string();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.file)
            .with_context(|| {
                format!("cannot open the [capture] file {path} for appending: check the directory exists and is writable, or remove [capture] file")
            })?;
        let written = file
            .metadata()
            .with_context(|| format!("cannot read the size of the [capture] file {path}"))?
            .len();
        Ok(Self {
            inner: Mutex::new(Inner {
                file,
                written,
                full: false,
            }),
            max_bytes: settings.max_bytes,
            path,
        })
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
        if inner.full {
            return;
        }
        if inner.written + line.len() as u64 > self.max_bytes {
            inner.full = true;
            warn!(file = %self.path, max_bytes = self.max_bytes, "capture stopped: the file reached [capture] max_mb; move it away and restart to capture again");
            return;
        }
        match inner.file.write_all(&line) {
            Ok(()) => inner.written += line.len() as u64,
            Err(e) => {
                inner.full = true;
                warn!(file = %self.path, error = %e, "capture stopped: cannot append to the file");
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
}
