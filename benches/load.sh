#!/usr/bin/env bash
# Load test: client_credentials tokens/s and JWKS requests/s against a local server.
#
#   cargo build --release && bash benches/load.sh [seconds] [connections]
#
# Needs wrk (apt-get install wrk). Starts its own server on 127.0.0.1:18181 with a fresh
# SQLite database in a temporary folder, and only ever talks to that address.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
CONNS=${2:-32}
BIN=$PWD/target/release/latchkey
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
export LATCHKEY_LISTEN=127.0.0.1:18181 LATCHKEY_ISSUER=http://127.0.0.1:18181 RUST_LOG=warn
OUT=$("$BIN" client create --name load --grant-type client_credentials --scope "api:read" --json)
ID=$(printf %s "$OUT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(printf %s "$OUT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
"$BIN" serve & SERVER=$!
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18181/healthz >/dev/null && break; sleep 0.2; done

cat > token.lua <<LUA
wrk.method = "POST"
wrk.body   = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
LUA
curl -fs -u "$ID:$SECRET" -d grant_type=client_credentials http://127.0.0.1:18181/token >/dev/null
echo "== client_credentials token endpoint (${SECS}s, ${CONNS} connections)"
wrk -t2 -c"$CONNS" -d"${SECS}s" -s token.lua http://127.0.0.1:18181/token
echo "== JWKS (${SECS}s, ${CONNS} connections)"
wrk -t2 -c"$CONNS" -d"${SECS}s" http://127.0.0.1:18181/jwks.json
