//! The service's own surface: the public and admin listen addresses, the log
//! format and how long shutdown waits (top-level keys of the file).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::loader::Loader;

/// The file's top-level keys this section reads.
#[derive(Debug, Default)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub shutdown_timeout_secs: Option<u64>,
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The admin listener (`/metrics`, detailed `/readyz`) unless set: loopback.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// Where `serve` listens and how it logs and stops.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The public listener: the webhook, `/healthz` and a bare `/readyz`.
    pub listen: SocketAddr,
    /// `/metrics` and the detailed `/readyz` (`None`: `admin_listen = "off"`).
    pub admin_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// How long SIGTERM waits for in-flight requests and deliveries.
    pub shutdown_timeout: Duration,
}

impl ServerSettings {
    pub(super) fn build(raw: RawServer, l: &mut Loader) -> Self {
        let listen = address(
            l,
            "MODBRIDGE_LISTEN",
            "listen",
            raw.listen.or_else(|| Some("0.0.0.0:8080".into())),
        );
        // Private by default: metrics and detailed readiness stay on loopback
        // unless the operator says where else (or "off").
        let admin_file = raw
            .admin_listen
            .or_else(|| Some(DEFAULT_ADMIN_LISTEN.into()));
        let off = l
            .var("MODBRIDGE_ADMIN_LISTEN")
            .or_else(|| admin_file.clone())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
        let admin_listen = if off {
            None
        } else {
            address(l, "MODBRIDGE_ADMIN_LISTEN", "admin_listen", admin_file)
        };
        let shutdown_timeout_secs = l.whole_number(
            "MODBRIDGE_SHUTDOWN_TIMEOUT_SECS",
            raw.shutdown_timeout_secs,
            10,
        );
        let log_format = match l
            .var("MODBRIDGE_LOG_FORMAT")
            .or(raw.log_format)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                l.problem(format!("MODBRIDGE_LOG_FORMAT={other:?}: use text or json"));
                LogFormat::Text
            }
        };
        Self {
            // A bad address is already a problem, so this stand-in is never used.
            listen: listen.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080))),
            admin_listen,
            log_format,
            shutdown_timeout: Duration::from_secs(shutdown_timeout_secs),
        }
    }

    /// Keeps the public listener off the network: for a service that trusts
    /// the published development secret.
    pub(super) fn bind_loopback(&mut self) {
        self.listen.set_ip(Ipv4Addr::LOCALHOST.into());
    }
}

/// `var` when set, else the file's `key` (already defaulted), as an address.
fn address(l: &mut Loader, var: &str, key: &str, file: Option<String>) -> Option<SocketAddr> {
    let (value, from) = match l.var(var) {
        Some(v) => (Some(v), var.to_owned()),
        None => (file, l.key(key)),
    };
    value.and_then(|v| match v.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            l.problem(format!(
                "{from}: {v:?} is not a listen address (like 0.0.0.0:8080 or 127.0.0.1:9090)"
            ));
            None
        }
    })
}
