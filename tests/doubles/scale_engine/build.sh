#!/usr/bin/env bash
# Builds the scale benchmark's engine image, a TEST DOUBLE of the vLLM image (Dockerfile and
# scale_engine_double.py next to this script, tests/doubles/stand_in_worker.py), from the local base image of
# scripts/build-base-image.sh; no registry is used. The tag is keyed by those files and the readiness time
# (env DSV4_SCALE_ENGINE_READY_S, default 60 s).
#
#   tests/doubles/scale_engine/build.sh           build if missing
#   tests/doubles/scale_engine/build.sh --print   print the image tag and exit
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
READY_S=${DSV4_SCALE_ENGINE_READY_S:-60}
FILES=("$HERE/Dockerfile" "$HERE/scale_engine_double.py" "$HERE/build.sh" "$ROOT/tests/doubles/stand_in_worker.py")
BASE=$(bash "$ROOT/scripts/build-base-image.sh" --print)
KEY=$( (echo "$BASE ready=$READY_S"; cat "${FILES[@]}") | sha256sum | cut -c1-12)
IMAGE=localhost/deepseek-v4-scale-engine:r${READY_S}-$KEY
if [ "${1:-}" = "--print" ]; then echo "$IMAGE"; exit 0; fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "scale engine image $IMAGE present"; exit 0; fi
bash "$ROOT/scripts/build-base-image.sh" >/dev/null
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp "$HERE/Dockerfile" "$HERE/scale_engine_double.py" "$ROOT/tests/doubles/stand_in_worker.py" "$CONTEXT/"
docker build -q --pull=false --build-arg "BASE_IMAGE=$BASE" --build-arg "READY_S=$READY_S" -t "$IMAGE" "$CONTEXT" >/dev/null
echo "built scale engine image $IMAGE"
