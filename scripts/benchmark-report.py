"""Reports of benchmark runs (the run directories playbooks/benchmark.yml writes), from the command line.

  python3 scripts/benchmark-report.py report RUN_DIR           (re)write RUN_DIR/report.md and report.png, print the table
  python3 scripts/benchmark-report.py compare BEFORE AFTER     print a Markdown table of AFTER against BEFORE, with ratios

The code is the collection's plugins/plugin_utils/benchmark_report.py (standard library only), loaded by path so
that this works from a checkout or an installed collection without Ansible on the path.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(os.path.dirname(HERE), "plugins", "plugin_utils", "benchmark_report.py")


def load_lib():
    spec = importlib.util.spec_from_file_location("benchmark_report", LIB)
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    return lib


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="write RUN_DIR/report.md and report.png; print the table")
    rep.add_argument("run_dir")
    cmp_ = sub.add_parser("compare", help="print AFTER against BEFORE as a Markdown table with ratios")
    cmp_.add_argument("before")
    cmp_.add_argument("after")
    args = parser.parse_args(argv)
    lib = load_lib()
    try:
        if args.command == "report":
            report = lib.write_report(args.run_dir)
            print(report["markdown"], end="")
        else:
            _meta, before = lib.load_run(args.before)
            _meta, after = lib.load_run(args.after)
            print(lib.compare(before, after, args.before, args.after), end="")
    except lib.ReportError as exc:
        print("benchmark-report: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
