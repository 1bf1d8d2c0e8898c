#!/usr/bin/env bash
# Builds the local LMCache MP server image for machines without a GPU: the systemd base image from
# build-base-image.sh, a venv with the pinned packages of tests/rehearsal/lmcache/requirements.txt (the real
# `lmcache` CLI on the CPU build of torch), entrypoint `lmcache`. It runs the plan's LMCache argv unchanged.
#
#   scripts/build-lmcache-image.sh           build if missing (an existing image is reused)
#   scripts/build-lmcache-image.sh --print   print the image tag and exit
#
# Like build-rehearsal-image.sh: no registry, no registry host name here. The wheels are fetched on this
# machine with its own pip configuration (`pip download`) and handed to the build over a loopback-only
# HTTP server, so they do not end up as an image layer.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CTX_DIR=$ROOT/tests/rehearsal/lmcache
PYTHON=${REHEARSAL_HOST_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
LMCACHE_VERSION=$(sed -n 's/^lmcache==//p' "$CTX_DIR/requirements.txt")

FILES=("$CTX_DIR/Dockerfile" "$CTX_DIR/requirements.txt" "$ROOT/scripts/build-lmcache-image.sh")
KEY=$(cat "${FILES[@]}" | sha256sum | cut -c1-12)
IMAGE=${LMCACHE_IMAGE:-localhost/deepseek-v4-lmcache:${LMCACHE_VERSION}-cpu-${KEY}}

if [ "${1:-}" = "--print" ]; then
  echo "$IMAGE"
  exit 0
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "LMCache image $IMAGE present"
  exit 0
fi

BASE=$(bash "$ROOT/scripts/build-base-image.sh" --print)
bash "$ROOT/scripts/build-base-image.sh"

# The image is Debian bookworm with Python 3.11 on x86_64 (LMCache publishes x86_64 wheels only): the same
# platform tags as this machine, so its pip picks the right files.
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$PYVER" != "3.11" ] || [ "$(uname -m)" != "x86_64" ]; then
  echo "need Python 3.11 on x86_64 to resolve the image's wheels (found $PYVER on $(uname -m))" >&2
  exit 1
fi
WKEY=$( (cat "$CTX_DIR/requirements.txt"; printf 'py%s wheels v1' "$PYVER") | sha256sum | cut -c1-12)
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/inference.deepseek_v4/lmcache-wheels-$WKEY
if [ ! -f "$WHEELS/.complete" ]; then
  echo "downloading wheels into $WHEELS"
  mkdir -p "$WHEELS"
  if ! "$PYTHON" -m pip download -q --only-binary=:all: --no-deps -d "$WHEELS" \
      -r "$CTX_DIR/requirements.txt" pip >"$WHEELS.log" 2>&1; then
    grep -v 'is ignored: it is neither a file nor a directory' "$WHEELS.log" | tail -20 >&2
    echo "pip download failed (full log: $WHEELS.log)" >&2
    exit 1
  fi
  touch "$WHEELS/.complete"
fi
ls "$WHEELS"/torch-*+cpu-*.whl >/dev/null 2>&1 || { echo "no CPU torch wheel in $WHEELS" >&2; exit 1; }

# A loopback-only HTTP server hands the wheels to `pip install` inside the build (host network).
PORT=${LMCACHE_WHEEL_PORT:-38918}
if "$PYTHON" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
  echo "port $PORT is busy; set LMCACHE_WHEEL_PORT" >&2
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

cp "$CTX_DIR/Dockerfile" "$CTX_DIR/requirements.txt" "$CTX/"
echo "building $IMAGE from $BASE"
START=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network host \
  --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "WHEELS_URL=http://127.0.0.1:$PORT/" \
  --label "inference.deepseek_v4.lmcache-key=$KEY" \
  -t "$IMAGE" "$CTX"
echo "built $IMAGE in $(( $(date +%s) - START )) s"
