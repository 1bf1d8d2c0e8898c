#!/usr/bin/env bash
# The collection next to community.docker 5 (what current Ansible packages ship; the pinned `ansible` of
# requirements/base.txt ships 4.x, which `make units` and the rest test):
#   1. community.docker is extracted from the `ansible` wheel pinned in requirements/docker5.txt (downloaded with pip,
#      not installed: that release needs a newer ansible-core and Python) into build/docker5/ansible_collections/;
#   2. the collection copy of `make collection-copy` goes next to it (community.general and ansible.posix linked from
#      the pinned `ansible`), and ansible-test units runs there;
#   3. tests/docker5/smoke.yml drives a real container with community.docker 5's modules and reads it with this
#      collection's Docker modules (the sys.path copy of community.docker 4 left out).
#   scripts/docker5.sh [--units-only|--smoke-only]     BIN: the venv's bin directory (default .venv/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}
PY_VERSION=${PY_VERSION:-3.11}
STEPS=${1:-all}

PIN=$(sed -n 's/^ansible==\([0-9.]*\)$/\1/p' requirements/docker5.txt)
[ -n "$PIN" ] || { echo "docker5: no ansible==X.Y.Z pin in requirements/docker5.txt" >&2; exit 2; }
D5=$ROOT/build/docker5
COLLECTIONS=$D5/ansible_collections
STAMP=$D5/.ansible-$PIN

if [ ! -f "$STAMP" ]; then
  echo "docker5: community.docker from ansible $PIN"
  rm -rf "$D5"; mkdir -p "$D5/wheel"
  # The wheel targets a newer Python than this one; it is only unpacked, never imported as a package.
  "$BIN/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 "ansible==$PIN" -d "$D5/wheel"
  "$BIN/python" - "$D5" "$D5"/wheel/ansible-"$PIN"-*.whl <<'PY'
import sys, zipfile
target, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(target, [n for n in z.namelist() if n.startswith("ansible_collections/community/docker/")])
PY
  rm -rf "$D5/wheel"
  touch "$STAMP"
fi
VERSION=$("$BIN/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
  "$COLLECTIONS/community/docker/MANIFEST.json")
case "$VERSION" in 5.*) echo "docker5: community.docker $VERSION" ;;
  *) echo "docker5: ansible $PIN ships community.docker $VERSION, not 5.x" >&2; exit 1 ;; esac

# The collection copy (make collection-copy) and the collections it needs besides community.docker.
make --no-print-directory collection-copy >/dev/null
mkdir -p "$COLLECTIONS/inference/deepseek_v4"
rsync -a --delete --exclude /tests/output --exclude /.git build/ansible_collections/inference/deepseek_v4/ \
  "$COLLECTIONS/inference/deepseek_v4/"
[ -e "$COLLECTIONS/inference/deepseek_v4/.git" ] || git init -q "$COLLECTIONS/inference/deepseek_v4"
bundled=$("$BIN/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')
for c in community/general ansible/posix; do
  mkdir -p "$COLLECTIONS/$(dirname $c)"; ln -sfn "$bundled/$c" "$COLLECTIONS/$c"
done

if [ "$STEPS" != --smoke-only ]; then
  echo "docker5: ansible-test units next to community.docker $VERSION"
  (cd "$COLLECTIONS/inference/deepseek_v4" && "$BIN/ansible-test" units --venv --python "$PY_VERSION" --color no)
fi

if [ "$STEPS" != --units-only ]; then
  export ANSIBLE_COLLECTIONS_PATH=$D5 ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
  found=$("$BIN/ansible-galaxy" collection list community.docker --format json)
  echo "docker5: ansible-galaxy collection list community.docker: $found"
  grep -q "\"version\": \"$VERSION\"" <<<"$found" || { echo "docker5: community.docker $VERSION is not the one found" >&2; exit 1; }
  for m in container_logs container_files service_health_info; do
    "$BIN/ansible-doc" "inference.deepseek_v4.$m" >/dev/null
  done
  echo "docker5: ansible-doc reads the three modules' documentation"
  image=${DSV4_BASE_IMAGE:-$(scripts/build-base-image.sh --print)}
  "$BIN/ansible-playbook" -i localhost, tests/docker5/smoke.yml -e "ansible_python_interpreter=$BIN/python" \
    -e "docker5_image=$image" -e "docker5_container=dsv4-docker5-smoke-$$" -e "docker5_version=$VERSION"
fi
