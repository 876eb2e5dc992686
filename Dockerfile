# syntax=docker/dockerfile:1
# Build: docker build -t modbridge .
# Run:   docker run -p 8080:8080 -e CATIVA_WEBHOOK_SECRET=whsec_... -e REDIS_URL=redis://redis:6379 modbridge

FROM rust:1-slim-bookworm AS build
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

FROM debian:bookworm-slim
# ca-certificates tracks the distribution's current roots; pinning it would
# freeze them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app modbridge
WORKDIR /app
COPY --from=build /src/target/release/modbridge /usr/local/bin/modbridge
COPY modbridge.toml /app/modbridge.toml
COPY rules /app/rules
USER 10001:10001
ENV MODBRIDGE_LISTEN=0.0.0.0:8080 \
    MODBRIDGE_RULES=/app/rules
EXPOSE 8080
# No HEALTHCHECK: the slim image has no HTTP client. Orchestrators probe
# GET /healthz (alive) and GET /readyz (can accept webhooks); see README.
ENTRYPOINT ["/usr/local/bin/modbridge"]
CMD ["serve"]
