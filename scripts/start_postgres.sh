#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the log's tests and print how to reach it.
#
#   eval "$(bash scripts/start_postgres.sh)"   # exports TEST_POSTGRES_URL
#
# Installs Debian's `postgresql` package when no server binaries are found (as root, with
# apt-get), creates a cluster in $ASSISTANT_PG_DIR (default /tmp/assistant-postgres) owned by
# the `postgres` user when run as root, listens on 127.0.0.1:$ASSISTANT_PG_PORT (default 5432,
# or the next free port when another server holds it), and creates the role and database
# `assistant` / `assistant_test`. Idempotent: a second run finds the server and just prints the
# URL (set ASSISTANT_PG_NO_INSTALL=1 to never apt-get). It never fails the caller: on any problem it warns on stderr, prints nothing on stdout
# and exits 0, so the PostgreSQL tests are skipped (loudly) instead of the whole run failing.
set -u

BASE="${ASSISTANT_PG_DIR:-/tmp/assistant-postgres}"
PORT="${ASSISTANT_PG_PORT:-5432}"
DB_USER="assistant"
DB_PASS="assistant"
DB_NAME="assistant_test"

exec 3>&1 1>&2  # only the export line goes to the real stdout (fd 3): safe under eval

warn() { echo "start_postgres.sh: WARNING: $*" >&2; }
info() { echo "start_postgres.sh: $*" >&2; }

url() { echo "postgresql+psycopg://${DB_USER}:${DB_PASS}@127.0.0.1:$1/${DB_NAME}"; }

# Can the test role reach its database on port $1? (TCP, password auth: what the tests do.)
reachable() {
  [ -n "${PG_BIN:-}" ] || return 1
  PGPASSWORD="$DB_PASS" PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U "$DB_USER" \
    -d "$DB_NAME" -tAc "SELECT 1" >/dev/null 2>&1
}

port_busy() {
  (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

find_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null)"
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  fi
  dir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
  [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  return 1
}

install_postgres() {
  if [ -n "${ASSISTANT_PG_NO_INSTALL:-}" ]; then
    warn "PostgreSQL is not installed (ASSISTANT_PG_NO_INSTALL is set: not installing it)"
    return 1
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    warn "PostgreSQL is not installed and I cannot apt-get it (need root and apt-get)"
    return 1
  fi
  info "installing Debian's postgresql package (apt-get)"
  # policy-rc.d stops the package from starting its own cluster on 5432 during install.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  local rc=$?
  [ "$created" = 1 ] && rm -f "$policy"
  return $rc
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"
    else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

main() {
  PG_BIN="$(find_bin)" || { install_postgres && PG_BIN="$(find_bin)"; } || {
    warn "no PostgreSQL server binaries found"; return 1; }

  local data="$BASE/data" sock="$BASE/run" log="$BASE/server.log" superuser=postgres
  [ "$(id -u)" = 0 ] || superuser="$(id -un)"
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir "$BASE" --shell /bin/sh postgres || { warn "cannot create the postgres user"; return 1; }
  fi

  # Already up from an earlier run (or a server someone else set up with our role)?
  if [ -f "$BASE/port" ] && reachable "$(cat "$BASE/port")"; then
    echo "export TEST_POSTGRES_URL=$(url "$(cat "$BASE/port")")" >&3; return 0
  fi
  if reachable "$PORT"; then echo "export TEST_POSTGRES_URL=$(url "$PORT")" >&3; return 0; fi

  mkdir -p "$BASE" "$sock" || return 1
  [ "$(id -u)" = 0 ] && chown -R postgres: "$BASE"
  chmod 700 "$sock"

  if [ ! -f "$data/PG_VERSION" ]; then
    info "creating a cluster in $data"
    as_owner "$PG_BIN/initdb" -D "$data" -U "$superuser" -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null || { warn "initdb failed"; return 1; }
  fi

  # Our cluster may already be running (on the port it chose last time).
  if as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    PORT="$(cat "$BASE/port" 2>/dev/null || echo "$PORT")"
  else
    local tries=0
    while port_busy "$PORT" && [ $tries -lt 20 ]; do PORT=$((PORT + 1)); tries=$((tries + 1)); done
    info "starting PostgreSQL on 127.0.0.1:$PORT (log: $log)"
    # 3>&-: the server outlives this script and must not hold fd 3 (the caller's `$(...)` pipe),
    # or the caller's command substitution waits for it forever.
    as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $sock -c max_connections=200" start >/dev/null 3>&- \
      || { warn "the server did not start; see $log"; tail -n 20 "$log" >&2 2>/dev/null; return 1; }
    echo "$PORT" >"$BASE/port"
  fi

  local psql=("$PG_BIN/psql" -h "$sock" -p "$PORT" -U "$superuser" -d postgres -v ON_ERROR_STOP=1 -tAq)
  if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    as_owner "${psql[@]}" -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS'" || return 1
  fi
  if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    as_owner "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" || return 1
  fi
  reachable "$PORT" || { warn "server is up but $DB_USER cannot log in to $DB_NAME"; return 1; }
  info "PostgreSQL ready: $(url "$PORT")"
  echo "export TEST_POSTGRES_URL=$(url "$PORT")" >&3
}

main "$@" || warn "PostgreSQL is not available: its tests will be skipped"
exit 0
