# syntax=docker/dockerfile:1
# Build: docker build -t modbridge .
# Try:   docker run --rm -p 8080:8080 -e CATIVA_WEBHOOK_SECRET=whsec_... -e MODBRIDGE_DRY_RUN=1 modbridge
#        (cards printed to the container's standard output; the secret is the
#        one from Cativa Console > Webhooks, or any strong whsec_ value to try)
# Own:   -v "$PWD/modbridge.toml:/etc/modbridge/modbridge.toml:ro"
#        -v "$PWD/rules:/etc/modbridge/rules:ro"
#        -e REDIS_URL=redis://HOST:6379/ -e SLACK_BOT_TOKEN=... -e DISCORD_BOT_TOKEN=...
# tests/image.rs runs the binary with this file's ENV, COPY and HEALTHCHECK
# lines and the "Try" line above (outside a container), so keep them parseable:
# one `KEY=VALUE` per ENV line.
#
# Base images: exact tags, not digests. No registry was reachable when this
# was written, so no digest could be fetched and verified; pin by digest
# (FROM image:tag@sha256:...) once you have pulled and checked one. The
# builder is the minimum supported Rust (Cargo.toml's rust-version), so a
# build of this image also proves that version.

FROM rust:1.88.0-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/rules.rs \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src src
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin modbridge

FROM debian:12.12-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="modbridge" \
      org.opencontainers.image.description="Forwards Cativa post_created webhooks that match admin-edited rules to Slack and Discord moderators" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.12-slim"
# ca-certificates tracks the distribution's current roots; pinning it would
# freeze them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app modbridge
WORKDIR /app
COPY --from=build /src/target/release/modbridge /usr/local/bin/modbridge
# Defaults to try it with; mount your own over them (both read-only is fine:
# modbridge only reads them, and watches the rules directory).
COPY modbridge.toml /etc/modbridge/modbridge.toml
COPY rules /etc/modbridge/rules
USER 10001:10001
ENV MODBRIDGE_CONFIG=/etc/modbridge/modbridge.toml
ENV MODBRIDGE_RULES=/etc/modbridge/rules
ENV MODBRIDGE_LISTEN=0.0.0.0:8080
# /metrics and the detailed /readyz; publish it only to where Prometheus runs.
ENV MODBRIDGE_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
# Liveness only (GET /healthz through `modbridge probe`): never /readyz, which
# every replica fails together while Redis is down; restarting would not help.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/modbridge", "probe"]
ENTRYPOINT ["/usr/local/bin/modbridge"]
CMD ["serve"]
