//! The yardstick for `scripts/nocard_bench.sh`: a bare poem server answering
//! `POST /webhooks/cativa` with 200 and a fixed JSON body after reading the
//! whole body, and nothing else (no signature, no rules, no Redis). What
//! modbridge's no-card path costs is measured against it, on the same
//! machine, under the same load.
//!
//!   cargo run --profile profiling --features bare-poem --bin bare_poem -- 127.0.0.1:8081

use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::{Body, Response, Route, Server, handler, post};

#[handler]
async fn webhook(body: Body) -> Response {
    // Read whole, like modbridge reads it; the length keeps the read from
    // being optimised away.
    let read = body.into_bytes().await.map(|b| b.len()).unwrap_or(0);
    std::hint::black_box(read);
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(r#"{"status":"accepted","cards":0}"#)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let app = Route::new().at("/webhooks/cativa", post(webhook));
    Server::new(TcpListener::bind(addr)).run(app).await
}
