#!/usr/bin/env bash
# Headless Chromium (Debian's package) and the Playwright Python driver for the browser tests.
# Idempotent: does nothing when both are present. Never runs `playwright install` (no downloads
# from outside the package registries); the tests launch /usr/bin/chromium directly.
set -euo pipefail
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "install_browser: chromium is missing and this user cannot install packages (run: apt-get install -y chromium)" >&2
            exit 1
        fi
    fi
    echo "install_browser: installing chromium with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
        || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    echo "install_browser: installing the playwright Python package ..."
    "$PY" -m pip install --quiet "playwright>=1.45"
fi

echo "install_browser: $(chromium --version 2>/dev/null || echo 'chromium ?'), playwright $("$PY" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
