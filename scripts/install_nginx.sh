#!/usr/bin/env bash
# Debian's nginx, the proxy of deploy/cluster.sh and of the cluster test (tests/test_cluster.py).
# Idempotent: does nothing when nginx is installed. Never starts the package's own server on port 80
# (policy-rc.d, as scripts/start_postgres.sh does); the cluster runs its own nginx from a run folder.
# Exits non-zero when it cannot install it: the cluster test then fails loudly, it never passes empty.
set -euo pipefail
have() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
if ! have; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "install_nginx: nginx is missing and this user cannot install packages (run: apt-get install -y nginx)" >&2
      exit 1
    fi
  fi
  echo "install_nginx: installing nginx with apt-get ..." >&2
  policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq nginx >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq nginx >/dev/null; } || true
  [ "$created" = 1 ] && $SUDO rm -f "$policy"
  have || { echo "install_nginx: could not install nginx" >&2; exit 1; }
fi
echo "install_nginx: $( (nginx -v || /usr/sbin/nginx -v) 2>&1)" >&2
