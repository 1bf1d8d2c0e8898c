"""Looking for secrets on the hosts of a test (systemd containers), read with `docker exec`, outside the run's own
connections. Shared by the secret scans (tests/e2e/test_secret_scan*.py) and the fan-out tests
(tests/hf_cache/test_fanout.py).

* HostSampler: samples every host in a loop while a run goes: the fan-out's secret files (mode, owner, content),
  every process's command line and environment, the listening TCP sockets.
* files_holding: the files of a host holding one of some values (grep over its whole filesystem, journal included);
  local_files_holding: the same under a directory of this machine.
* leaks: which named values a text shows; forms: the values with their escaped forms, to look for both.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
from pathlib import Path

FANOUT_PORT = 8730
FANOUT_RUN_DIR = "/run/hf-cache-fanout"
# Filesystems of a host not worth reading (kernel views, the Docker engine's socket).
SKIP = ("/proc", "/sys", "/dev", "/var/run/docker.sock", "/run/docker.sock")
SAMPLE = (
    "for f in %s/rsyncd.secrets /run/hf-cache-fanout-client-*/password; do"
    " [ -f \"$f\" ] && echo \"FILE $(stat -c '%%a %%U' \"$f\") $f $(cat \"$f\")\"; done;"
    " echo '--- ps'; ps -eo args;"
    " echo '--- environ'; for e in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$e\"; echo; done 2>/dev/null;"
    " echo '--- listen'; ss -Hltn 2>/dev/null || true" % FANOUT_RUN_DIR)


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def forms(values):
    """VALUES ({name: value}) with the regular-expression-escaped form of each value where it differs (as nginx's key
    map holds a bearer key: Jinja's regex_escape), so that a grep also finds a secret stored escaped."""
    out = dict(values)
    for name, value in values.items():
        if value and re.escape(value) != value:
            out[name + " (regex-escaped)"] = re.escape(value)
    return out


def leaks(text, values):
    """Names of VALUES ({name: value}) that TEXT shows."""
    return sorted(name for name, value in values.items() if value and value in text)


def files_holding(container, values, skip=SKIP):
    """Paths of the files of CONTAINER holding one of VALUES (grep over its whole filesystem, journal included)."""
    prune = " -o ".join("-path %s" % shlex.quote(p) for p in skip)
    patterns = " ".join("-e %s" % shlex.quote(v) for v in values)
    script = "find / \\( %s \\) -prune -o -type f -print0 | xargs -0 -r grep -lsF %s -- || true" % (prune, patterns)
    result = _run(["docker", "exec", container, "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    return [p for p in result.stdout.splitlines() if p]


def local_files_holding(root, values):
    """{path: names of the VALUES it holds} of the files under ROOT, a directory of this machine (none: {})."""
    found = {}
    for path in Path(root).rglob("*") if Path(root).is_dir() else ():
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            names = sorted(n for n, v in values.items() if v.encode() in data)
            if names:
                found[str(path)] = names
    return found


def modes(container, paths):
    """{path: [mode, owner]} of PATHS in CONTAINER."""
    return {p: _run(["docker", "exec", container, "stat", "-c", "%a %U", p]).stdout.split() for p in paths}


class HostSampler(threading.Thread):
    """Samples every host ({host: container}) with SAMPLE in a loop until stopped."""

    def __init__(self, names):
        super().__init__(daemon=True)
        self.names = names
        self.samples = []
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            for host, name in self.names.items():
                self.samples.append((host, _run(["docker", "exec", name, "sh", "-c", SAMPLE]).stdout))

    def stop(self):
        self._done.set()
        self.join(60)

    def section(self, name):
        """The text of section NAME (ps, environ, listen) of every sample."""
        parts = []
        for _host, out in list(self.samples):
            for block in out.split("\n--- ")[1:]:
                title, _sep, body = block.partition("\n")
                if title == name:
                    parts.append(body)
        return "\n".join(parts)

    def secret_files(self):
        """{(host, path, mode, owner)} of the secret files seen, and the transfer secret the seed's daemon held."""
        seen, secret = set(), None
        for host, out in list(self.samples):
            for line in out.splitlines():
                # A file removed between the test and stat prints no mode: not a sighting.
                found = re.fullmatch(r"FILE (\d+) (\S+) (\S+) ?(.*)", line)
                if found:
                    mode, owner, path, content = found.groups()
                    seen.add((host, path, mode, owner))
                    match = re.fullmatch(r"fanout:([A-Za-z0-9]{40})", content)
                    if path.endswith("rsyncd.secrets") and match:
                        secret = match.group(1)
        return seen, secret

    def listening(self, host, port):
        """Local addresses HOST was seen listening on at PORT."""
        found = set()
        for sampled, out in list(self.samples):
            if sampled != host or "\n--- listen\n" not in out:
                continue
            for line in out.split("\n--- listen\n", 1)[1].splitlines():
                fields = line.split()
                if len(fields) >= 4 and fields[3].rsplit(":", 1)[-1] == str(port):
                    found.add(fields[3].rsplit(":", 1)[0])
        return found
