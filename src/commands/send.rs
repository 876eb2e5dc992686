//! `modbridge send FILE.json`: sign a payload as Cativa does and deliver it.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{DEV_SECRET, Env, ProcessEnv};
use crate::intake::signature::Secret;

pub fn main(file: &Path, url: &str, execution_id: Option<&str>) -> ExitCode {
    match send(file, url, execution_id) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn send(file: &Path, url: &str, execution_id: Option<&str>) -> anyhow::Result<bool> {
    use anyhow::Context;
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (secret, which) = match ProcessEnv.var("CATIVA_WEBHOOK_SECRET") {
        Some(list) => (
            list.split(',').next().unwrap_or_default().trim().to_owned(),
            "CATIVA_WEBHOOK_SECRET",
        ),
        None => (DEV_SECRET.to_owned(), "the development secret"),
    };
    let secret = Secret::new(secret).map_err(anyhow::Error::msg)?;
    let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let execution_id = execution_id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("send-{:016x}", rand::random::<u64>()));
    let signature = secret.sign(t, &body);
    eprintln!(
        "sending {} signed with {which} as execution {execution_id} to {url}",
        file.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("x-cativa-signature", signature)
            .header("x-cativa-execution-id", &execution_id)
            .header("x-cativa-automation-id", "modbridge-send")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url} (is `modbridge serve` running?)"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        println!("{} {}", status.as_u16(), text.trim());
        if let Some(r) = retry_after {
            println!("Retry-After: {r}");
        }
        Ok(status.is_success())
    })
}
