#!/usr/bin/env bash
# GPU check (issue 14): FAISS GPU vs CPU at 1M x 384, fp16 embedding throughput, bf16 LoRA and full
# fine-tuning tokens/s and MFU (SmolLM2-135M and 0.5B shapes), one answer through the local backend.
# Needs torch with CUDA and nothing else; no network. Under 8 minutes on one H100/H200-class GPU.
#
#   bash benchmarks/gpu_check.sh            # prints one table, writes benchmarks/results/gpu_check.json
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # tiny sizes on the CPU (checks the code paths)
#
# FAISS with GPU support: put bundles made by /work/shared/tools/faiss-gpu-device/make_bundle.sh in
# .faissgpu/*.tar.xz (carried, never committed); the first that imports is used. Without one the
# GPU search row is exact torch matmul + top-k. On a machine without a GPU: "no GPU", exit 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "no GPU: torch is not installed for $PY"; exit 0
fi
if [ "${GPU_CHECK_TINY:-0}" != "1" ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no GPU: torch.cuda.is_available() is False"; exit 0
fi
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for lib in "$SP"/nvidia/cu13/lib "$SP"/nvidia/nccl/lib; do
  [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
for bundle in .faissgpu/*.tar.xz; do
  [ -f "$bundle" ] || continue
  site=/tmp/gpu-check-site-$(basename "$bundle" .tar.xz)
  mkdir -p "$site"
  "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$bundle" "$site" || continue
  if PYTHONPATH="$site" "$PY" -c "import faiss; assert faiss.get_num_gpus() > 0" 2>/dev/null; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"; echo "faiss from $bundle"; break
  fi
done
exec timeout 470 "$PY" benchmarks/gpu_check.py
