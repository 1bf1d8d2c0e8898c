# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Differences between the `vllm serve` options of vLLM releases, read from their real parsers.

Each release's option list comes from its parser overlay (scripts/vllm-parser-overlay.sh, built on first use) on the
vLLM CPU venv's Python (tests/vllm_parser/check_serve_args.py --options). Prints, for each pair of consecutive
releases, the options added and removed, then the rows of the plan's tables ENGINE_FLAGS_SINCE (the first release
with an option) and ENGINE_FLAGS_UNTIL (the first release without it) that these releases give.

    python3 scripts/vllm-flag-diff.py                    the releases of profiles.ENGINE_FLAGS_VERSIONS
    python3 scripts/vllm-flag-diff.py 0.20.1 0.25.0      these releases (in version order)
    python3 scripts/vllm-flag-diff.py --check            exit 1 where the tables in profiles.py disagree with the parsers

A ``--no-<flag>`` spelling has no row of its own where it came and went with ``--<flag>`` (the plan looks the
positive spelling up).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILES = os.path.join(ROOT, "plugins", "module_utils", "_plan", "profiles.py")
OVERLAY = os.path.join(ROOT, "scripts", "vllm-parser-overlay.sh")
VENV_SCRIPT = os.path.join(ROOT, "scripts", "vllm-cpu-venv.sh")
CHECK = os.path.join(ROOT, "tests", "vllm_parser", "check_serve_args.py")


def version_key(text):
    return tuple(int(p) for p in re.findall(r"\d+", text))


def options_of(version):
    """The sorted option strings of `vllm serve` in VERSION, from its own parser (kept in the overlay's options.json
    when it was built; asked of the parser otherwise)."""
    subprocess.run(["bash", OVERLAY, version], check=True, stdout=sys.stderr)
    overlay = subprocess.run(["bash", OVERLAY, version, "--print"], check=True, capture_output=True,
                             text=True).stdout.strip()
    kept = os.path.join(overlay, "options.json")
    if not os.path.isfile(kept):
        venv = subprocess.run(["bash", VENV_SCRIPT, "--print"], check=True, capture_output=True,
                              text=True).stdout.strip()
        env = dict(os.environ, PYTHONPATH=overlay, VLLM_TARGET_DEVICE="cpu", HF_HUB_OFFLINE="1")
        out = subprocess.run([os.path.join(venv, "bin", "python"), CHECK, "--options"], check=True,
                             capture_output=True, text=True, env=env).stdout
        with open(kept, "w") as handle:
            handle.write(out)
    with open(kept) as handle:
        answer = json.load(handle)
    if answer["version"] != version:
        raise SystemExit("the overlay of %s loads vLLM %s" % (version, answer["version"]))
    return set(answer["options"])


def tables(versions, options):
    """ENGINE_FLAGS_SINCE and ENGINE_FLAGS_UNTIL rows that the option lists of VERSIONS (in order) give."""
    since, until = {}, {}
    everything = set().union(*options.values())
    for opt in sorted(everything):
        present = [opt in options[v] for v in versions]
        if all(present):
            continue
        first = present.index(True)
        if first > 0:
            since[opt] = versions[first]
        gone = [i for i in range(first + 1, len(versions)) if not present[i]]
        if gone:
            until[opt] = versions[gone[0]]
            if any(present[gone[0]:]):
                print("note: %s comes back after %s" % (opt, versions[gone[0]]), file=sys.stderr)
    for table in (since, until):
        for opt in [o for o in table if o.startswith("--no-")]:
            if table.get("--" + opt[5:]) == table[opt]:
                del table[opt]
    return since, until


def disagreements(versions, options, profiles):
    """Where profiles.py's tables say other than the parsers of VERSIONS."""
    out = []
    since_rows, until_rows = profiles["ENGINE_FLAGS_SINCE"], profiles["ENGINE_FLAGS_UNTIL"]
    for opt in sorted(set(since_rows) | set(until_rows)):
        low, high = since_rows.get(opt), until_rows.get(opt)
        for v in versions:
            expected = (not low or version_key(v) >= version_key(low)) and (
                not high or version_key(v) < version_key(high))
            found = opt in options[v] or ("--" + opt[5:] in options[v] if opt.startswith("--no-") else False)
            if expected != found:
                out.append("%s: vLLM %s %s it, the table says it %s" % (
                    opt, v, "has" if found else "lacks", "has" if expected else "lacks"))
    since, until = tables(versions, options)
    for name, derived, rows in (("ENGINE_FLAGS_SINCE", since, since_rows), ("ENGINE_FLAGS_UNTIL", until, until_rows)):
        for opt in sorted(set(derived) - set(rows)):
            out.append("%s lacks %r: %r (the parsers of %s)" % (name, opt, derived[opt], ", ".join(versions)))
    return out


def main():
    profiles = runpy.run_path(PROFILES)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("versions", nargs="*", help="vLLM releases (default: profiles.ENGINE_FLAGS_VERSIONS)")
    ap.add_argument("--check", action="store_true", help="compare with the tables in profiles.py")
    args = ap.parse_args()
    versions = sorted(args.versions or profiles["ENGINE_FLAGS_VERSIONS"], key=version_key)
    options = {v: options_of(v) for v in versions}
    for old, new in zip(versions, versions[1:]):
        added, removed = sorted(options[new] - options[old]), sorted(options[old] - options[new])
        print("%s -> %s: %d added, %d removed" % (old, new, len(added), len(removed)))
        for opt in added:
            print("  + %s" % opt)
        for opt in removed:
            print("  - %s" % opt)
    since, until = tables(versions, options)
    print("\n# ENGINE_FLAGS_SINCE rows (first release with the option)")
    for opt, v in sorted(since.items(), key=lambda kv: (version_key(kv[1]), kv[0])):
        print("    %s: %s," % (json.dumps(opt), json.dumps(v)))
    print("# ENGINE_FLAGS_UNTIL rows (first release without it)")
    for opt, v in sorted(until.items(), key=lambda kv: (version_key(kv[1]), kv[0])):
        print("    %s: %s," % (json.dumps(opt), json.dumps(v)))
    if args.check:
        problems = disagreements(versions, options, profiles)
        for line in problems:
            print("DISAGREES: " + line)
        print("tables %s the parsers of %s" % ("disagree with" if problems else "agree with", ", ".join(versions)))
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
