# syntax=docker/dockerfile:1
#
# The latchkey image: one binary for every role.
#   docker run IMAGE               latchkey serve (web + workers; embedded SQLite without configuration)
#   docker run IMAGE serve --no-workers | worker | migrate | demo | config
# Configuration: /app/config/*.toml (LATCHKEY_ENV selects one) and LATCHKEY_* environment variables.

# ---- build -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin latchkey \
 && install -m 0755 target/release/latchkey /usr/local/bin/latchkey

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
# TLS is rustls (no OpenSSL); SMTP over TLS verifies with the system's certificates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 latchkey \
 && useradd --system --uid 10001 --gid latchkey --home-dir /app --shell /usr/sbin/nologin latchkey \
 && mkdir -p /app/data \
 && chown latchkey:latchkey /app/data

COPY --from=build /usr/local/bin/latchkey /usr/local/bin/latchkey
COPY config/ /app/config/

WORKDIR /app
USER 10001:10001
# A container must listen on all its interfaces to be reachable; everything else keeps the
# configuration's value.
ENV LATCHKEY_LISTEN=0.0.0.0:8080
# The operations port (/metrics, /readyz): publish it to your private network only.
ENV LATCHKEY_OPS_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["latchkey"]
CMD ["serve"]
