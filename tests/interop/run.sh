#!/usr/bin/env bash
# Interoperability checks with other people's code against the release server:
#   openid-client (npm)  discovery, code + PKCE S256, ID token vs JWKS, userinfo, refresh,
#                        RP-initiated logout                       (oidc_client_check.mjs)
#   Authlib (PyPI)       the same code flow, ID token vs JWKS         (authlib_check.py)
#   jose (npm)           a resource server caching the JWKS for its max-age verifies
#                        client_credentials tokens while keys rotate twice (jwks_rotation_check.mjs)
#
# Usage: bash tests/interop/run.sh PATH/TO/RELEASE/latchkey
# Needs `npm ci` and a virtualenv with requirements.txt in tests/interop (see README.md).
# Starts `latchkey serve` on a free loopback port with a throw-away SQLite store, runs the
# checks, prints their `ok` / `FAIL` lines and one closing `N passed, M failed` line, and
# exits non-zero if anything failed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/latchkey (the release binary)" >&2
  exit 2
fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
PYTHON="${INTEROP_PYTHON:-$HERE/.venv/bin/python}"
[ -d "$HERE/node_modules/openid-client" ] || { echo "run npm ci in $HERE first" >&2; exit 2; }
[ -x "$PYTHON" ] || { echo "create $HERE/.venv with requirements.txt first" >&2; exit 2; }

# Only this run's settings reach the server and the CLI (CI exports LATCHKEY_TEST_*).
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^LATCHKEY_' || true)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
CB_PORT=$(free_port)
while [ "$CB_PORT" = "$PORT" ]; do CB_PORT=$(free_port); done

# Short key intervals so that two rotations fit in seconds (docs/key-rotation.md: a next
# key may be promoted refresh_interval + jwks_max_age after it was published).
KEYS_REFRESH_SECS=1
KEYS_MAX_AGE_SECS=3

WORK=$(mktemp -d -t latchkey-interop.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export ISSUER="http://127.0.0.1:$PORT"
export LATCHKEY_CONFIG="$WORK/latchkey.toml"
export LATCHKEY_BIN="$BIN"
export KEYS_REFRESH_SECS
LATCHKEY_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export LATCHKEY_MASTER_KEY
cat >"$LATCHKEY_CONFIG" <<EOF
issuer = "$ISSUER"
listen = "127.0.0.1:$PORT"

[database]
url = "sqlite://$WORK/latchkey.db"

[keys]
master_key_file = "$WORK/unused-master.key"
refresh_interval_secs = $KEYS_REFRESH_SECS
jwks_max_age_secs = $KEYS_MAX_AGE_SECS

[log]
format = "json"
level = "info"
EOF

# Every command is bounded in time; the server too, in case the trap never runs.
lk() { timeout 60 "$BIN" --config "$LATCHKEY_CONFIG" "$@"; }

started=$(date +%s)
timeout 900 "$BIN" --config "$LATCHKEY_CONFIG" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ready=""
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  if curl -sf --max-time 1 "$ISSUER/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "FAIL server start: $ISSUER/readyz did not answer"
  tail -n 20 "$WORK/server.log" | sed 's/^/  server: /'
  echo "0 passed, 1 failed"
  exit 1
fi
echo "server up at $ISSUER in $(( $(date +%s) - started ))s"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

rp_client() {
  lk client create --name "$1" --first-party \
    --redirect-uri "http://127.0.0.1:$CB_PORT/cb" \
    --post-logout-redirect-uri "http://127.0.0.1:$CB_PORT/signed-out" \
    --grant-type authorization_code --grant-type refresh_token \
    --scope "openid profile email offline_access" --json
}
NODE_RP=$(rp_client "openid-client interop")
PY_RP=$(rp_client "Authlib interop")
export CC_AUDIENCE="https://api.interop.test"
CC=$(lk client create --name "jose resource server interop" --grant-type client_credentials \
  --resource "$CC_AUDIENCE" --json)
export USERNAME="interop-user"
export PASSWORD
PASSWORD="interop $(head -c 12 /dev/urandom | base64)"
printf '%s\n' "$PASSWORD" | lk user create --username "$USERNAME" \
  --email interop@example.test --password-stdin >/dev/null
export RP_REDIRECT_URI="http://127.0.0.1:$CB_PORT/cb"
export RP_POST_LOGOUT_REDIRECT_URI="http://127.0.0.1:$CB_PORT/signed-out"

passed=0
failed=0
# run_check NAME COMMAND...: bounded in time; its ok/FAIL lines are counted; a check that
# dies without saying why counts as one failure.
run_check() {
  local name=$1; shift
  local out="$WORK/$name.out" rc=0 t0
  t0=$(date +%s)
  (cd "$HERE" && timeout 180 "$@") >"$out" 2>"$WORK/$name.err" || rc=$?
  cat "$out"
  local p f
  p=$(grep -c '^ok ' "$out" || true)
  f=$(grep -c '^FAIL ' "$out" || true)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with $rc"
    sed 's/^/  /' "$WORK/$name.err" | tail -n 20
    f=1
  elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ]; then
    echo "FAIL $name: printed no result"
    f=1
  fi
  echo "($name: $p ok, $f failed, $(( $(date +%s) - t0 ))s)"
  passed=$((passed + p))
  failed=$((failed + f))
}

RP_CLIENT_ID=$(json_field client_id <<<"$NODE_RP") RP_CLIENT_SECRET=$(json_field client_secret <<<"$NODE_RP") \
  run_check openid-client node oidc_client_check.mjs
RP_CLIENT_ID=$(json_field client_id <<<"$PY_RP") RP_CLIENT_SECRET=$(json_field client_secret <<<"$PY_RP") \
  run_check authlib "$PYTHON" authlib_check.py
CC_CLIENT_ID=$(json_field client_id <<<"$CC") CC_CLIENT_SECRET=$(json_field client_secret <<<"$CC") \
  run_check jose-jwks-rotation node jwks_rotation_check.mjs

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "FAIL server: exited during the checks"
  failed=$((failed + 1))
fi
if [ "$failed" -gt 0 ]; then
  echo "server log (warnings and errors, else the last lines):"
  { grep -E '"level":"(WARN|ERROR)"' "$WORK/server.log" || tail -n 10 "$WORK/server.log"; } \
    | tail -n 30 | sed 's/^/  /'
fi
echo "interop checks took $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
