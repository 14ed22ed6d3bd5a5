# syntax=docker/dockerfile:1
# qcnn harness image: `qcnn` (evaluate, predict, results, db) and `qcnn-quantize`.

# Build stage: the Rust toolchain compiles the two binaries.
FROM rust:1.95-slim-bookworm AS builder
# native-tls (PostgreSQL over TLS) links the system OpenSSL. Versions follow bookworm's
# security updates, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps target/, data/, checkpoints/, .venv and .git out of the context.
COPY . .
RUN cargo build --release --locked --bin qcnn --bin qcnn-quantize

# Run stage: a slim Debian holding only the binaries, their shared libraries, the config and
# the schema.
FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 qcnn \
 && useradd --system --uid 10001 --gid qcnn --create-home --home-dir /app qcnn
COPY --from=builder /src/target/release/qcnn /src/target/release/qcnn-quantize /usr/local/bin/
COPY --chown=qcnn:qcnn config.yaml init.sql /app/
WORKDIR /app
# Numeric, so a runtime (e.g. Kubernetes runAsNonRoot) can verify it is not root.
USER 10001:10001
# Data and checkpoints are mounted at /app/data and /app/checkpoints (config.yaml's paths).
# Database credentials arrive only through the environment (DATABASE_URL); none are baked in.
ENTRYPOINT ["qcnn"]
CMD ["evaluate"]
