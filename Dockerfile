# Build: the same toolchain CI uses.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Compiled into the binary: migrations (sqlx::migrate!), pages and the stylesheet
# (include_str!). benches/ is named in Cargo.toml.
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY benches ./benches
RUN cargo build --release --locked --bin latchkey

# Run: a slim base, a non-root user, only the binary, config and migrations.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/latchkey latchkey \
    && mkdir -p /var/lib/latchkey/data /var/lib/latchkey/keys \
    && chown -R latchkey /var/lib/latchkey
WORKDIR /var/lib/latchkey
COPY --from=build /src/target/release/latchkey /usr/local/bin/latchkey
COPY config ./config
COPY migrations ./migrations
USER latchkey
ENV LATCHKEY_LISTEN=0.0.0.0:8080
EXPOSE 8080
# The key-encryption key and the SQLite file live on volumes; in production set
# LATCHKEY_MASTER_KEY from a secret store and LATCHKEY_DATABASE_URL to PostgreSQL.
VOLUME ["/var/lib/latchkey/data", "/var/lib/latchkey/keys"]
HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["latchkey"]
CMD ["serve"]
