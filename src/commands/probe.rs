//! `modbridge probe [--url URL]`: GET `/healthz` of a running modbridge and
//! exit 0 on a 200, 1 otherwise. The container image's `HEALTHCHECK` runs it
//! (the slim image has no curl). It asks `/healthz` (alive), never `/readyz`:
//! a Redis outage makes every replica unready at once, and restarting them
//! would not bring Redis back.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Env, ProcessEnv};

/// Where the image's server listens unless `MODBRIDGE_LISTEN` says otherwise.
const DEFAULT_URL: &str = "http://127.0.0.1:8080/healthz";

pub fn main(url: Option<&str>, timeout: Duration) -> ExitCode {
    let url = match url {
        Some(u) => u.to_owned(),
        None => default_url(ProcessEnv.var("MODBRIDGE_LISTEN").as_deref()),
    };
    match probe(&url, timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modbridge probe: {url}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `/healthz` at `listen` (an `IP:PORT` such as `0.0.0.0:8080`; an
/// unspecified address is asked on loopback); the image's default without it.
fn default_url(listen: Option<&str>) -> String {
    let Some(mut addr) = listen.and_then(|l| l.trim().parse::<std::net::SocketAddr>().ok()) else {
        return DEFAULT_URL.to_owned();
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/healthz")
}

fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let response = client.get(url).send().await?;
        let status = response.status();
        if status == reqwest::StatusCode::OK {
            Ok(())
        } else {
            anyhow::bail!("answered {status}, not 200")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_follows_the_listen_port() {
        assert_eq!(
            default_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/healthz"
        );
        assert_eq!(
            default_url(Some("10.0.0.5:8080")),
            "http://10.0.0.5:8080/healthz"
        );
        assert_eq!(default_url(Some("[::]:8080")), "http://[::1]:8080/healthz");
        assert_eq!(default_url(None), DEFAULT_URL);
        assert_eq!(default_url(Some("not an address")), DEFAULT_URL);
    }
}
