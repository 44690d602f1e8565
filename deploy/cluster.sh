#!/usr/bin/env bash
# Serving past one process: N `assistant serve` replicas behind nginx, one PostgreSQL log, one shared
# index kept by one ingest writer. Runs on one machine as is; on many, put the workspace on shared
# storage, point DATABASE_URL at one server, and run the replicas part on each machine.
#
#   deploy/cluster.sh up --replicas 2 [--port 8080] [--workspace DIR] [--inbox DIR]
#                        [--cores-per-replica 1] [--database-url URL] [--grace 120]
#   deploy/cluster.sh status
#   deploy/cluster.sh down
#
#   replicas   read-only on WORKSPACE/index (ASSISTANT_READ_ONLY=1); each held to its own cores with
#              taskset, its thread pools sized to them; JSON logs; SIGTERM drains (finish, refuse new)
#   writer     assistant worker: ingests INBOX whenever it changes (metrics on PORT+99); replicas
#              pick up each commit on their next search, without a restart
#   nginx      Debian's nginx: round robin with retries for /v1, sticky cookie for the chat page;
#              its config, logs and pid live in the run folder ($ASSISTANT_CLUSTER_DIR, default .cluster/)
#   log        PostgreSQL: --database-url, else $DATABASE_URL, else scripts/start_postgres.sh's server
#
# Exits non-zero with the reason when a part cannot start (no nginx, no PostgreSQL, a replica that
# never gets ready): a cluster that is half up is taken down again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="${ASSISTANT_CLUSTER_DIR:-$ROOT/.cluster}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
REPLICAS=2 PORT=8080 LISTEN=127.0.0.1 CORES_PER=1 GRACE=120 READY_TIMEOUT=600
WORKSPACE="" INBOX="" DB_URL="${DATABASE_URL:-}"

die() { echo "cluster.sh: ERROR: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --replicas) REPLICAS="$2"; shift 2 ;;
      --port) PORT="$2"; shift 2 ;;
      --listen) LISTEN="$2"; shift 2 ;;
      --workspace) WORKSPACE="$2"; shift 2 ;;
      --inbox) INBOX="$2"; shift 2 ;;
      --cores-per-replica) CORES_PER="$2"; shift 2 ;;
      --database-url) DB_URL="$2"; shift 2 ;;
      --grace) GRACE="$2"; shift 2 ;;
      -h|--help) usage 0 ;;
      *) echo "unknown option $1" >&2; usage 2 ;;
    esac
  done
  WORKSPACE="$(realpath -m "${WORKSPACE:-$RUN/workspace}")"
  INBOX="$(realpath -m "${INBOX:-$RUN/inbox}")"
}

find_nginx() {
  local bin
  bin="$(command -v nginx || true)"; [ -n "$bin" ] || { [ -x /usr/sbin/nginx ] && bin=/usr/sbin/nginx; }
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's nginx package (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; } >/dev/null 2>&1 || true
    bin="$(command -v nginx || true)"; [ -n "$bin" ] || { [ -x /usr/sbin/nginx ] && bin=/usr/sbin/nginx; }
  fi
  [ -n "$bin" ] || die "nginx is not installed and I cannot apt-get it (run scripts/install_nginx.sh as root)"
  echo "$bin"
}

database_url() {
  if [ -z "$DB_URL" ] && [ -f "$ROOT/scripts/start_postgres.sh" ]; then
    eval "$(bash "$ROOT/scripts/start_postgres.sh")"
    DB_URL="${TEST_POSTGRES_URL:-}"
  fi
  [ -n "$DB_URL" ] || die "no PostgreSQL for the log: pass --database-url or set DATABASE_URL"
}

# cores for replica $1 (0-based): CORES_PER consecutive cores, wrapping round the ones we may use
cores_for() {
  local usable n start list="" k
  usable=($("$PY" -c 'import os; print(*sorted(os.sched_getaffinity(0)))'))
  n=${#usable[@]}; start=$(( $1 * CORES_PER ))
  for ((k = 0; k < CORES_PER; k++)); do list+="${list:+,}${usable[$(( (start + k) % n ))]}"; done
  echo "$list"
}

# GET a URL with the venv's Python (no curl needed): prints the body, exits 0 only on HTTP 200
http_get() {
  "$PY" -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r: sys.stdout.write(r.read().decode())
except Exception as e:
    sys.stdout.write(getattr(e, "read", lambda: b"")().decode() or str(e)); sys.exit(1)' "$1"
}

wait_ready() {  # url, pid: wait for 200 from url while pid lives
  local deadline=$(( $(date +%s) + READY_TIMEOUT ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$2" 2>/dev/null || return 1
    http_get "$1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

start_writer() {
  mkdir -p "$INBOX"
  if [ -z "$(ls -A "$INBOX")" ]; then cp -r "$ROOT/docs/." "$INBOX/"; rm -rf "$INBOX/images"; fi
  say "ingest writer: $INBOX -> $WORKSPACE/index"
  DATABASE_URL="$DB_URL" nohup nice -n 10 "$PY" -u -m assistant.cli --workspace "$WORKSPACE" worker "$INBOX" \
    --metrics-port "$(( PORT + 99 ))" >"$RUN/writer.log" 2>&1 &
  echo $! >"$RUN/writer.pid"
  local deadline=$(( $(date +%s) + READY_TIMEOUT ))
  until grep -q '"event": "ingest"' "$RUN/writer.log" 2>/dev/null; do  # replicas start on an index
    kill -0 "$(cat "$RUN/writer.pid")" 2>/dev/null || die "the ingest writer died: $(tail -5 "$RUN/writer.log")"
    [ "$(date +%s)" -lt "$deadline" ] || die "the first ingest did not finish in ${READY_TIMEOUT}s"
    sleep 1
  done
  say "first ingest: $(grep '"event": "ingest"' "$RUN/writer.log" | head -1)"
}

start_replica() {  # index (0-based)
  local i=$1 port=$(( PORT + 1 + $1 )) cores threads
  cores="$(cores_for "$i")"; threads=$(( CORES_PER ))
  say "replica $i: 127.0.0.1:$port on core(s) $cores"
  env DATABASE_URL="$DB_URL" ASSISTANT_READ_ONLY=1 ASSISTANT_LOG_FORMAT=json ASSISTANT_GRACE_S="$GRACE" \
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
    nohup taskset -c "$cores" "$PY" -m assistant.cli --workspace "$WORKSPACE" serve --host 127.0.0.1 --port "$port" \
    >"$RUN/replica-$i.log" 2>&1 &
  echo $! >"$RUN/replica-$i.pid"
  echo "$port" >"$RUN/replica-$i.port"
}

write_nginx_conf() {
  local servers="" i user=""
  for ((i = 0; i < REPLICAS; i++)); do
    servers+="        server 127.0.0.1:$(( PORT + 1 + i )) max_fails=1 fail_timeout=10s;"$'\n'
  done
  [ "$(id -u)" = 0 ] && user="user root;"  # workers write the run folder's temp files
  mkdir -p "$RUN/tmp"
  awk -v servers="$servers" -v run="$RUN" -v port="$PORT" -v listen="$LISTEN" -v user="$user" \
      -v tries="$(( REPLICAS < 3 ? REPLICAS : 3 ))" '
    { gsub(/@RUN@/, run); gsub(/@PORT@/, port); gsub(/@LISTEN@/, listen); gsub(/@USER@/, user);
      gsub(/@TRIES@/, tries); gsub(/@MAX_BODY@/, "100m") }
    /@SERVERS@/ { printf "%s", servers; next } { print }' "$ROOT/deploy/nginx.conf.template" >"$RUN/nginx.conf"
}

up() {
  parse "$@"
  [ ! -f "$RUN/nginx.pid" ] || die "a cluster is already up in $RUN (deploy/cluster.sh down first)"
  command -v taskset >/dev/null || die "taskset is missing (Debian: util-linux)"
  local nginx; nginx="$(find_nginx)"
  database_url
  mkdir -p "$RUN" "$WORKSPACE"
  echo "$DB_URL" >"$RUN/database-url"
  trap 'say "start failed: taking the cluster down"; down >/dev/null 2>&1 || true' EXIT
  start_writer
  local i
  for ((i = 0; i < REPLICAS; i++)); do start_replica "$i"; done
  write_nginx_conf
  "$nginx" -t -q -p "$RUN" -c "$RUN/nginx.conf" || die "nginx rejected $RUN/nginx.conf"
  "$nginx" -p "$RUN" -c "$RUN/nginx.conf"
  for ((i = 0; i < REPLICAS; i++)); do
    wait_ready "http://127.0.0.1:$(cat "$RUN/replica-$i.port")/ready" "$(cat "$RUN/replica-$i.pid")" \
      || die "replica $i never became ready: $(tail -5 "$RUN/replica-$i.log")"
  done
  trap - EXIT
  say "up: http://$LISTEN:$PORT  ($REPLICAS replica(s); metrics: each replica's /metrics; logs: $RUN)"
  echo "http://$LISTEN:$PORT"
}

stop_pid() {  # pidfile, grace seconds: SIGTERM, wait, then SIGKILL
  local file=$1 pid waited=0
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $(( $2 * 10 )) ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -0 "$pid" 2>/dev/null && { say "$(basename "$file" .pid) did not stop in $2 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$file"
}

down() {
  local f nginx
  if [ -f "$RUN/nginx.pid" ]; then
    nginx="$(command -v nginx || echo /usr/sbin/nginx)"
    "$nginx" -p "$RUN" -c "$RUN/nginx.conf" -s quit 2>/dev/null || kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$RUN/nginx.pid" ] || break; sleep 0.1; done
    rm -f "$RUN/nginx.pid"
  fi
  for f in "$RUN"/replica-*.pid; do [ -e "$f" ] && stop_pid "$f" "$GRACE" & done
  wait
  stop_pid "$RUN/writer.pid" 60
  rm -f "$RUN"/replica-*.port
  say "down"
}

status() {
  local f i
  [ -f "$RUN/nginx.pid" ] && kill -0 "$(cat "$RUN/nginx.pid")" 2>/dev/null && echo "nginx: up (pid $(cat "$RUN/nginx.pid"))" || echo "nginx: down"
  [ -f "$RUN/writer.pid" ] && kill -0 "$(cat "$RUN/writer.pid")" 2>/dev/null && echo "writer: up (pid $(cat "$RUN/writer.pid"))" || echo "writer: down"
  for f in "$RUN"/replica-*.port; do
    [ -e "$f" ] || continue
    i="$(basename "$f" .port)"
    echo "$i: pid $(cat "$RUN/$i.pid" 2>/dev/null) $(http_get "http://127.0.0.1:$(cat "$f")/ready" 2>/dev/null || true)"
  done
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; parse "$@"; down ;;
  status) status ;;
  -h|--help|"") usage 0 ;;
  *) usage 2 ;;
esac
