#!/usr/bin/env bash
# The benchmark suite (issue 9). Builds the release server and the load driver
# (benches/load/), provisions a fresh server per store with the CLI (SQLite in a temporary
# folder, PostgreSQL in a throw-away database it creates and drops), and measures with
# fixed concurrency and duration: start-to-ready, idle RSS, discovery, JWKS,
# client_credentials, refresh rotation, the code flow with a session, userinfo,
# introspection, password login, client_credentials during a login storm, RSS after the
# storm and peak RSS. With --peer it runs the same scenarios against node-oidc-provider,
# installed from npm into a throw-away folder. Prints one markdown table.
#
#   bash benches/load.sh [--peer] [--duration SECS] [--concurrency N] [--stores "sqlite postgres"]
#                        [--only client_credentials,refresh,...]   (the table's keys; default all)
#
# Environment: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432; the role must be
# allowed to CREATE DATABASE), PEER_VERSION (npm version of oidc-provider; default 9 on
# Node.js 22+, else 8), STORM_CLIENTS (64), CARGO_TARGET_DIR, BENCH_SERVER_BIN (a server binary
# to measure instead of building this checkout's). Servers listen on free
# 127.0.0.1 ports and the driver talks to nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=10
CONCURRENCY=16
STORES="sqlite postgres"
ONLY=""
PEER=${PEER:-0}
STORM_CLIENTS=${STORM_CLIENTS:-64}
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
while [ $# -gt 0 ]; do
  case $1 in
    --peer) PEER=1 ;;
    --duration) DURATION=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --stores) STORES=$2; shift ;;
    --only) ONLY=$2; shift ;;
    *) echo "usage: $0 [--peer] [--duration SECS] [--concurrency N] [--stores \"sqlite postgres\"] [--only KEYS]" >&2; exit 2 ;;
  esac
  shift
done

# Only this run's settings reach the servers and the CLI (CI exports LATCHKEY_TEST_*).
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^LATCHKEY_' || true)

echo "== building the release server and the load driver" >&2
# BENCH_SERVER_BIN measures a server built elsewhere (an A/B of two commits on one host).
[ -n "${BENCH_SERVER_BIN:-}" ] || cargo build --release --quiet --bin latchkey
DRIVER=$(cargo bench --bench load --no-run --message-format=json --quiet \
  | grep '"kind":\["bench"\],[^}]*"name":"load"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
BIN=${BENCH_SERVER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey}
[ -x "$BIN" ] && [ -x "$DRIVER" ] || { echo "build failed: no $BIN or driver" >&2; exit 1; }

WORK=$(mktemp -d -t latchkey-bench.XXXXXX)
SERVER_PID=""
PG_DB=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  stop_server
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Shared by every server: the user, the clients' redirect URI (never contacted) and the
# audience of the client_credentials tokens.
export BENCH_USERNAME=bench BENCH_REDIRECT_URI=https://client.example/cb
export BENCH_RESOURCE=https://api.bench.test
export BENCH_SIGN_IN_USERS=$(( STORM_CLIENTS > CONCURRENCY ? STORM_CLIENTS : CONCURRENCY ))
BENCH_PASSWORD="bench $(head -c 12 /dev/urandom | base64)"
export BENCH_PASSWORD

json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

# measure LABEL PID ISSUER READY_URL SINCE_NS TARGET: start-to-ready, idle RSS, the scenarios.
measure() {
  local label=$1 pid=$2 issuer=$3 ready_url=$4 since=$5 target=$6 out="$WORK/$1.tsv"
  "$DRIVER" ready --url "$ready_url" --since-ns "$since" --pid "$pid" --out "$out"
  echo "== $label: $CONCURRENCY workers x ${DURATION}s per scenario" >&2
  "$DRIVER" run --target "$target" --issuer "$issuer" --pid "$pid" --out "$out" \
    --duration "$DURATION" --concurrency "$CONCURRENCY" --storm-clients "$STORM_CLIENTS" \
    ${ONLY:+--only "$ONLY"}
  COLUMNS_ARGS+=(--column "$label=$out")
}

# latchkey LABEL DATABASE_URL: provision with the CLI, start, measure, stop.
latchkey() {
  local label=$1 url=$2 dir="$WORK/$1" port
  mkdir -p "$dir"
  port=$("$DRIVER" free-port)
  # The per-account success limit (20 per 5 minutes) is raised so that the login rows
  # measure argon2 and the hashing queue, not the limiter. Everything else is default.
  cat >"$dir/latchkey.toml" <<TOML
issuer = "http://127.0.0.1:$port"
listen = "127.0.0.1:$port"

[database]
url = "$url"

[keys]
master_key_file = "$dir/master.key"

[log]
level = "warn"

[login]
max_successes_per_account = 100000000
TOML
  local lk=("$BIN" --config "$dir/latchkey.toml")
  local web cc
  echo "== $label: provisioning with the CLI" >&2
  web=$("${lk[@]}" client create --name "bench web" --first-party \
    --redirect-uri "$BENCH_REDIRECT_URI" --grant-type authorization_code \
    --grant-type refresh_token --scope "openid profile email offline_access" --json)
  cc=$("${lk[@]}" client create --name "bench worker" --grant-type client_credentials \
    --scope "api:read" --resource "$BENCH_RESOURCE" --json)
  # The code-flow user, and one user per signing-in browser (four CLI processes at a time).
  local i
  for i in "" $(seq 0 $((BENCH_SIGN_IN_USERS - 1))); do
    printf '%s\n' "$BENCH_PASSWORD" | "${lk[@]}" user create --username "$BENCH_USERNAME${i:+-$i}" \
      --email "bench${i:+-$i}@example.test" --password-stdin >/dev/null &
    if [ $(( $(jobs -rp | wc -l) )) -ge 4 ]; then wait -n; fi
  done
  wait
  local since
  since=$(date +%s%N)
  "${lk[@]}" serve >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  BENCH_WEB_CLIENT_ID=$(json_field client_id <<<"$web") \
  BENCH_WEB_CLIENT_SECRET=$(json_field client_secret <<<"$web") \
  BENCH_CC_CLIENT_ID=$(json_field client_id <<<"$cc") \
  BENCH_CC_CLIENT_SECRET=$(json_field client_secret <<<"$cc") \
    measure "$label" "$SERVER_PID" "http://127.0.0.1:$port" "http://127.0.0.1:$port/readyz" "$since" latchkey \
    || { tail -n 20 "$dir/server.log" >&2; exit 1; }
  stop_server
}

# peer: node-oidc-provider from npm in a throw-away folder, with benches/peer/provider.mjs.
peer() {
  local dir="$WORK/peer" port node_major version
  mkdir -p "$dir"
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  version=${PEER_VERSION:-$([ "$node_major" -ge 22 ] && echo 9 || echo 8)}
  echo "== node-oidc-provider: npm install oidc-provider@$version (Node.js $(node --version))" >&2
  cp "$ROOT/benches/peer/provider.mjs" "$dir/"
  (cd "$dir" && echo '{"private":true,"type":"module"}' >package.json \
    && npm install --no-audit --no-fund --silent "oidc-provider@$version" >&2)
  PEER_LABEL="node-oidc-provider $(node -p "require('$dir/node_modules/oidc-provider/package.json').version")"
  port=$("$DRIVER" free-port)
  export BENCH_WEB_CLIENT_ID=bench-web BENCH_CC_CLIENT_ID=bench-worker
  BENCH_WEB_CLIENT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
  BENCH_CC_CLIENT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
  export BENCH_WEB_CLIENT_SECRET BENCH_CC_CLIENT_SECRET
  local since
  since=$(date +%s%N)
  PORT=$port CLIENT_ID=$BENCH_WEB_CLIENT_ID CLIENT_SECRET=$BENCH_WEB_CLIENT_SECRET \
    CC_CLIENT_ID=$BENCH_CC_CLIENT_ID CC_CLIENT_SECRET=$BENCH_CC_CLIENT_SECRET \
    REDIRECT_URI=$BENCH_REDIRECT_URI RESOURCE=$BENCH_RESOURCE \
    node "$dir/provider.mjs" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  measure "$PEER_LABEL" "$SERVER_PID" "http://127.0.0.1:$port" \
    "http://127.0.0.1:$port/.well-known/openid-configuration" "$since" peer \
    || { tail -n 20 "$dir/server.log" >&2; exit 1; }
  stop_server
}

COLUMNS_ARGS=()
for store in $STORES; do
  case $store in
    sqlite) latchkey latchkey-sqlite "sqlite://$WORK/latchkey-sqlite.db" ;;
    postgres)
      if ! psql "$PG_URL/postgres" -qc 'SELECT 1' >/dev/null; then
        echo "no PostgreSQL at $PG_URL (set BENCH_PG_URL, or --stores sqlite)" >&2
        exit 1
      fi
      PG_DB="latchkey_bench_$(date +%s)_$$"
      psql "$PG_URL/postgres" -qc "CREATE DATABASE $PG_DB"
      latchkey latchkey-postgres "$PG_URL/$PG_DB"
      psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
      PG_DB=""
      ;;
    *) echo "unknown store $store (sqlite, postgres)" >&2; exit 2 ;;
  esac
done
NOTES=()
if [ "$PEER" = 1 ]; then
  peer
  NOTES+=(--note "¹ node-oidc-provider has no users or passwords: sign-in is the application's. It ran with its in-memory adapter (grants, codes and tokens live in the process; nothing is durable, unlike both Latchkey columns) as one Node.js process, with the configuration in benches/peer/provider.mjs; its code-flow and refresh access tokens are opaque, so those flows sign one JWT where Latchkey's sign two and the two signing-bound rows do not apply; its client_credentials tokens are RS256 JWTs like Latchkey's.")
fi

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
echo
echo "Machine: $(nproc) cores ($cpu), $mem, $(. /etc/os-release && echo "$PRETTY_NAME"); load driver on the same machine."
echo "Each scenario: $CONCURRENCY workers, each on its own connection, for ${DURATION}s after a 1 s warm-up; cells are operations per second and p99 latency (a code flow is one operation: authorize + token). The storm: $STORM_CLIENTS browsers signing in without pause (waiting Retry-After when refused) while $CONCURRENCY workers ask for client_credentials tokens."
echo
"$DRIVER" table "${COLUMNS_ARGS[@]}" "${NOTES[@]}" ${ONLY:+--partial}
