#!/usr/bin/env python
"""The collection's own figures in one table (`make bench`), each from one run on this machine, ratios side by side.

Runs, one after the other (the Docker engine is used by one of them at a time):
  plan        benchmarks/plan_bench.py: the plan of a 64-host gb200_pd_cluster inventory through ansible-playbook
  refuse      ansible-playbook playbooks/h200_pd.yml on an inventory with a misspelt setting (median of 3)
  rollout     benchmarks/rehearsal_bench.py: the h200_pd rehearsal against the bare script a person would type
              (rollout / bare, rollout - bare in seconds) and the no-op re-run (no-op / first run), with the
              ten costliest tasks of each run
  longload    the same with engines that load for DSV4_BENCH_LOAD_S seconds (default 300) as GPU engines do (the
              scale engine TEST DOUBLE in both), where the engines' load dominates
  recovery    the h200_pd rehearsal, the prefill engine's main process killed: seconds until the recipe's three
              reasoning-mode requests pass through the router again (the guard restarts decode and router)
  scale       benchmarks/scale_bench.py: gb200_pd_cluster with 2, 32 and 64 engine hosts (DSV4_BENCH_SCALE_HOSTS;
              stand-in engines), and the no-op re-run of the largest
  weights     tests/hf_cache/test_fanout.py: hub bytes for 1 and 4 hosts, fan-out throughput against the disk

    python benchmarks/figures.py [--only plan,refuse,...] [--skip rollout,...]

A step whose script is missing or fails prints its error and the table says so; the exit status is non-zero then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _env():
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    local = Path(PY).with_name("ansible-playbook")
    if "ANSIBLE_PLAYBOOK" not in env and local.exists():
        env["ANSIBLE_PLAYBOOK"] = str(local)
    return env


def _run(cmd, timeout=7200):
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    return proc, time.monotonic() - start


def _script(name, *args, patterns, echo_from=None):
    """Run benchmarks/NAME with ARGS; {figure: float} from PATTERNS ({figure: regex with one group}). Its output
    from the first line that starts with ECHO_FROM on is printed as it is (the profiles of a run)."""
    path = ROOT / "benchmarks" / name
    if not path.exists():
        raise RuntimeError(f"{path.relative_to(ROOT)} is missing")
    proc = _run([PY, str(path), *args])[0]
    out = proc.stdout + proc.stderr
    found = {}
    for figure, regex in patterns.items():
        match = re.search(regex, out, re.M)
        if not match:
            raise RuntimeError(f"{name} (exit {proc.returncode}): no line matching {regex!r}:\n{out[-3000:]}")
        found[figure] = float(match.group(1))
    if echo_from and ("\n" + echo_from) in out:
        print(out[out.index("\n" + echo_from) + 1:].rstrip(), flush=True)
    # A benchmark that printed its figures but missed its own target exits non-zero: the figures still count.
    return found


def plan():
    return _script("plan_bench.py", "--hosts", "64", "--runs", "5", patterns={
        "plan of 64 hosts, ansible-playbook (s)": r"ansible-playbook playbooks/plan.yml: ([\d.]+) s wall",
        "plan of 64 hosts, plan engine (s)": r"engine build_plan: median ([\d.]+) s"})


def refuse():
    """A misspelt setting in a copy of inventories/h200_pd: refused by the plan play, before any host."""
    playbook = _env().get("ANSIBLE_PLAYBOOK", "ansible-playbook")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "h200_pd"
        shutil.copytree(ROOT / "inventories" / "h200_pd", inventory)
        with open(inventory / "group_vars" / "all.yml", "a", encoding="utf-8") as handle:
            handle.write("\nplan_max_model_length: 393216\n")
        for _attempt in range(3):
            proc, seconds = _run([playbook, "-i", str(inventory), "playbooks/h200_pd.yml"], timeout=300)
            out = proc.stdout + proc.stderr
            if proc.returncode == 0 or "plan_max_model_len" not in out or "UNREACHABLE" in out:
                raise RuntimeError(f"the misspelt setting was not refused in the plan play:\n{out[-3000:]}")
            times.append(seconds)
    return {"refuse a misspelt setting, ansible-playbook (s)": statistics.median(times)}


def rollout():
    return _script("rehearsal_bench.py", echo_from="first run:", patterns={
        "h200_pd rollout (s)": r"ansible rollout \(first run\):\s+([\d.]+) s",
        "bare script (s)": r"bare shell script\s+:\s+([\d.]+) s",
        "rollout / bare": r"ansible / bare\s+:\s+([\d.]+)",
        "rollout - bare (s)": r"ansible - bare\s+:\s+(-?[\d.]+) s",
        "no-op re-run (s)": r"ansible no-op re-run\s+:\s+([\d.]+) s",
        "no-op / first run": r"no-op / first run\s+:\s+([\d.]+)"})


def longload():
    """rollout, as above, with engines that load for DSV4_BENCH_LOAD_S seconds (default 300) as GPU engines do: the
    scale engine TEST DOUBLE in place of the CPU engine, in the Ansible rollout and in the bare script alike."""
    load_s = os.environ.get("DSV4_BENCH_LOAD_S", "300")
    build = ["bash", "tests/doubles/scale_engine/build.sh"]
    environ = dict(_env(), DSV4_SCALE_ENGINE_READY_S=load_s)
    for args in ([], ["--print"]):
        proc = subprocess.run(build + args, cwd=ROOT, env=environ, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tests/doubles/scale_engine/build.sh failed:\n{proc.stderr[-2000:]}")
    os.environ["DSV4_REHEARSAL_IMAGE"] = proc.stdout.strip()
    try:
        found = _script("rehearsal_bench.py", echo_from="first run:", patterns={
            f"h200_pd rollout, {load_s} s loads (s)": r"ansible rollout \(first run\):\s+([\d.]+) s",
            f"bare script, {load_s} s loads (s)": r"bare shell script\s+:\s+([\d.]+) s",
            f"rollout - bare, {load_s} s loads (s)": r"ansible - bare\s+:\s+(-?[\d.]+) s",
            f"rollout / bare, {load_s} s loads": r"ansible / bare\s+:\s+([\d.]+)"})
    finally:
        del os.environ["DSV4_REHEARSAL_IMAGE"]
    return found


def recovery():
    """Roll out h200_pd, kill the prefill's main process, time until the seed's requests pass through the router."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import test_faults  # pylint: disable=import-outside-toplevel

    rehearse = ["bash", "scripts/rehearse.sh"]
    try:
        for args in (["--destroy"], []):
            proc = _run(rehearse + args)[0]
            if proc.returncode != 0:
                raise RuntimeError(f"rehearse.sh {' '.join(args)} failed:\n{proc.stdout[-3000:]}")
        loop = test_faults.RequestLoop()
        loop.start()
        time.sleep(3)
        start = time.monotonic()
        test_faults.kill_container_main(test_faults.PREFILL)
        time.sleep(5)
        deadline = start + test_faults.RECOVERY_TIMEOUT
        while not test_faults.seed_requests_pass():
            if time.monotonic() > deadline:
                raise RuntimeError("the endpoint did not recover from a prefill crash")
            time.sleep(2)
        seconds = time.monotonic() - start
        sent, failed = loop.stop()
    finally:
        _run(rehearse + ["--destroy"])
    return {"prefill crash, recovery (s)": seconds, "requests during recovery": sent,
            "failed during recovery": failed}


def scale():
    """scale_bench.py for the engine host counts of DSV4_BENCH_SCALE_HOSTS (default 2,32,64): wall time and controller
    CPU per host of each first rollout, wall(N) / wall(smallest), and the no-op re-run of the largest."""
    counts = sorted(int(n) for n in os.environ.get("DSV4_BENCH_SCALE_HOSTS", "2,32,64").split(","))
    patterns = {}
    for n in counts:
        patterns[f"wall({n} hosts) (s)"] = rf"^\s+{n} engine hosts \+ 1 router, \S+\s+wall\s+([\d.]+) s"
        patterns[f"controller CPU per host, {n} hosts (s)"] = (
            rf"^\s+{n} engine hosts \+ 1 router, .*controller CPU\s+[\d.]+ s\s+\(([\d.]+) s/host\)")
    big = counts[-1]
    patterns[f"no-op re-run, {big} hosts (s)"] = rf"^\s+{big} engine hosts, no-op re-run wall\s+([\d.]+) s"
    patterns[f"no-op re-run / first run, {big} hosts"] = rf"^\s+{big} engine hosts, no-op re-run wall.*?\(([\d.]+) of"
    patterns[f"no-op controller CPU per host, {big} hosts (s)"] = (
        rf"^\s+{big} engine hosts, no-op re-run .*controller CPU\s+[\d.]+ s\s+\(([\d.]+) s/host\)")
    found = _script("scale_bench.py", "--hosts", ",".join(map(str, counts)), "--settings", "", patterns=patterns,
                    echo_from=f"{big} engine hosts, first run")
    for n in counts[1:]:
        found[f"wall({n}) / wall({counts[0]})"] = found[f"wall({n} hosts) (s)"] / found[f"wall({counts[0]} hosts) (s)"]
    return found


def weights():
    """tests/hf_cache/test_fanout.py (four systemd containers, the Hub double counting bytes): its printed figures."""
    proc = _run([PY, "-m", "pytest", "tests/hf_cache/test_fanout.py", "-s", "-q", "-p", "no:cacheprovider"])[0]
    out = proc.stdout + proc.stderr
    match = re.search(r"^fanout figures: (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"tests/hf_cache/test_fanout.py (exit {proc.returncode}):\n{out[-3000:]}")
    got = json.loads(match.group(1))
    return {"hub bytes / model size, 1 host": got["hub_bytes_1_host"] / got["model_bytes"],
            "hub bytes / model size, 4 hosts": got["hub_bytes_4_hosts"] / got["model_bytes"],
            "fan-out (MB/s)": got["fanout_MBps"],
            "disk write rate (MB/s)": got["disk_MBps"],
            "fan-out / disk write rate": got["fanout_MBps"] / got["disk_MBps"]}


STEPS = {"plan": plan, "refuse": refuse, "rollout": rollout, "longload": longload, "recovery": recovery,
         "scale": scale,
         "weights": weights}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STEPS), help="steps to run, comma-separated")
    parser.add_argument("--skip", default="", help="steps to leave out, comma-separated")
    args = parser.parse_args()
    chosen = [s for s in args.only.split(",") if s and s not in args.skip.split(",")]
    unknown = set(chosen) - set(STEPS)
    if unknown:
        sys.exit(f"unknown steps {sorted(unknown)}; steps: {', '.join(STEPS)}")
    rows, failed = [], []
    for name in chosen:
        start = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            figures = STEPS[name]()
        except Exception as exc:  # pylint: disable=broad-except
            print(f"{name}: {exc}", flush=True)
            failed.append(name)
            rows.append((name, "(failed, see above)", ""))
            continue
        for figure, value in figures.items():
            rows.append((name, figure, f"{value:.3g}" if isinstance(value, float) else str(value)))
        print(f"   {time.monotonic() - start:.0f} s", flush=True)
    print("\n| step | figure | value |\n| --- | --- | --- |")
    for row in rows:
        print("| %s | %s | %s |" % row)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
