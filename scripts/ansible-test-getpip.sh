#!/usr/bin/env bash
# ansible-test bootstraps pip in each virtualenv it makes with a "get-pip" script that it downloads
# from a host this machine cannot reach. This writes a stand-in to the cache path ansible-test looks
# at first (~/.ansible/test/cache/get_pip_<version>.py). The stand-in carries the pip wheel of the
# version ansible-test asks for (downloaded here with the ordinary pip client) and installs pip from
# it, so the bootstrap needs no network at all.
#   scripts/ansible-test-getpip.sh [PYTHON]   PYTHON: interpreter that has ansible-test (default .venv/bin/python)
set -euo pipefail

PY=${1:-.venv/bin/python}

# Ask the installed ansible-test which pip it bootstraps (it is the same for every Python it supports).
PIP_VERSION=$("$PY" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])
PY
)
CACHE_DIR=$HOME/.ansible/test/cache
TARGET=$CACHE_DIR/get_pip_${PIP_VERSION//./_}.py
MARK="# inference.deepseek_v4 get-pip stand-in for pip $PIP_VERSION"

if [ -f "$TARGET" ] && grep -qxF "$MARK" "$TARGET"; then
  echo "get-pip stand-in present: $TARGET"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$WORK" "pip==$PIP_VERSION"
WHEEL=$(ls "$WORK"/pip-"$PIP_VERSION"-*.whl)

mkdir -p "$CACHE_DIR"
"$PY" - "$WHEEL" "$TARGET.tmp" "$MARK" <<'PY'
import base64
import os
import sys

wheel, target, mark = sys.argv[1:4]
with open(wheel, "rb") as handle:
    payload = base64.b85encode(handle.read()).decode("ascii")
lines = [payload[i:i + 100] for i in range(0, len(payload), 100)]
body = '''#!/usr/bin/env python3
{mark}
"""Installs pip from the wheel embedded below (what ansible-test's get-pip bootstrap expects)."""
import base64
import os
import shutil
import sys
import tempfile

WHEEL_NAME = {name!r}
WHEEL = """
{data}
"""


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    tmp = tempfile.mkdtemp(prefix="get-pip-")
    try:
        path = os.path.join(tmp, WHEEL_NAME)
        with open(path, "wb") as handle:
            handle.write(base64.b85decode("".join(WHEEL.split())))
        sys.path.insert(0, path)
        from pip._internal.cli.main import main as pip_main
        return pip_main(["install", "--upgrade", "--force-reinstall", "--no-index",
                         "--find-links", tmp] + args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
'''.format(mark=mark, name=os.path.basename(wheel), data="\n".join(lines))
with open(target, "w", encoding="ascii") as handle:
    handle.write(body)
PY
mv "$TARGET.tmp" "$TARGET"
echo "wrote get-pip stand-in: $TARGET"
