# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the record of a host's last complete rollout (modules deployment_state and
# deployment_state_info). May change without notice.

"""What a host runs, as a record a later run compares against.

A complete rollout writes, on each host, the key of what it deployed (a digest of the plan, the collection's code and
the host's own settings) with what it left running: each container's id, each unit file's digest and active state, the
digest of each configuration file. A later run with the same key reads the record and looks at the host once: the
containers are the same ones and run, their health URLs answer, the unit files are unchanged and in the same state, the
files are unchanged. Any difference is a reason, said in one line, and the run deploys as usual.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import glob
import hashlib
import json
import os
from typing import Any, Callable, Iterable, Mapping, Optional

VERSION = 1

# `systemctl show` properties read for each unit.
_UNIT_PROPERTIES = ("Id", "ActiveState", "FragmentPath", "DropInPaths")


def file_digest(path: str) -> Optional[str]:
    """sha256 of a file's bytes, None where it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
    except (IOError, OSError):
        return None
    return digest.hexdigest()


def file_digests(paths: Iterable[str]) -> dict[str, str]:
    """Path -> sha256 of every regular file at or under each of PATHS (missing paths give nothing)."""
    found: dict[str, str] = {}
    for path in paths:
        if os.path.isdir(path):
            for top, _dirs, files in os.walk(path):
                for name in files:
                    full = os.path.join(top, name)
                    digest = file_digest(full) if os.path.isfile(full) else None
                    if digest:
                        found[full] = digest
        elif os.path.isfile(path):
            digest = file_digest(path)
            if digest:
                found[path] = digest
    return dict(sorted(found.items()))


def unit_names(unit_dir: str, patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The unit files in UNIT_DIR matching PATTERNS, with NAMES, sorted and unique."""
    found = set(n if n.endswith((".service", ".timer", ".socket")) else n + ".service" for n in names)
    for pattern in patterns:
        found.update(os.path.basename(p) for p in glob.glob(os.path.join(unit_dir, pattern)))
    return sorted(found)


def parse_systemctl_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p Id,ActiveState,FragmentPath UNIT...` output (blocks of KEY=VALUE lines separated by an empty
    line, one per unit) -> unit id -> {property: value}."""
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


def unit_states(show: Callable[[list[str]], str], names: list[str]) -> dict[str, dict[str, Optional[str]]]:
    """Unit -> {active, sha256 of its unit file (None where it has none)}; SHOW runs `systemctl show` for names."""
    if not names:
        return {}
    shown = parse_systemctl_show(show(["-p", ",".join(_UNIT_PROPERTIES), "--"] + names))
    states: dict[str, dict[str, Optional[str]]] = {}
    for name in names:
        props = shown.get(name, {})
        states[name] = {"active": props.get("ActiveState") or "unknown",
                        "sha256": unit_digest(props.get("FragmentPath") or "", (props.get("DropInPaths") or "").split())}
    return states


def unit_digest(fragment: str, drop_ins: Iterable[str]) -> Optional[str]:
    """The digest of a unit's file, and of its drop-ins (`systemctl edit`) where it has any; None without a file."""
    digest = file_digest(fragment) if fragment else None
    drop_ins = sorted(drop_ins)
    if digest is None or not drop_ins:
        return digest
    return hashlib.sha256("\n".join([digest] + ["{0} {1}".format(p, file_digest(p)) for p in drop_ins])
                          .encode("utf-8")).hexdigest()


def container_states(inspect: Callable[[str], Optional[Mapping[str, Any]]],
                     names: Iterable[str]) -> dict[str, Optional[dict[str, Any]]]:
    """Container -> {id, status, restarting} from `docker inspect` (INSPECT), None where it does not exist."""
    states: dict[str, Optional[dict[str, Any]]] = {}
    for name in names:
        got = inspect(name)
        state = (got or {}).get("State") or {}
        states[name] = None if got is None else {"id": got.get("Id"), "status": state.get("Status", "unknown"),
                                                 "restarting": bool(state.get("Restarting"))}
    return states


def record(key: str, containers: Mapping[str, Optional[Mapping[str, Any]]],
           units: Mapping[str, Mapping[str, Optional[str]]], files: Mapping[str, str],
           health_urls: Mapping[str, str], paths: Iterable[str] = ()) -> dict[str, Any]:
    """The record a complete rollout leaves on a host (the file deployment_state writes). PATHS: the files and
    directories FILES came from, looked at again by a later run (a file added under one is a difference)."""
    return {
        "version": VERSION,
        "key": key,
        "paths": sorted(paths),
        "containers": {name: {"id": state["id"], "health_url": health_urls.get(name)}
                       for name, state in sorted(containers.items()) if state},
        "units": {name: {"active": state["active"], "sha256": state["sha256"], "health_url": health_urls.get(name)}
                  for name, state in sorted(units.items())},
        "files": dict(sorted(files.items())),
    }


def load(text: Optional[str]) -> Optional[dict[str, Any]]:
    """A record read from its file, None where there is none or it is not a record of this version."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def stale_record(stamp: Optional[Mapping[str, Any]], key: str) -> Optional[str]:
    """Why the record alone says the host is not current (none, or another key), None where it does not."""
    if stamp is None:
        return "no record of a complete rollout on this host"
    if stamp.get("key") != key:
        return ("the plan, the inventory's settings for this host or the collection changed since the last complete "
                "rollout")
    return None


def differences(stamp: Optional[Mapping[str, Any]], key: str,
                containers: Mapping[str, Optional[Mapping[str, Any]]],
                units: Mapping[str, Mapping[str, Optional[str]]], files: Mapping[str, str],
                answers: Callable[[str], bool]) -> list[str]:
    """Why the host does not run what the record says, one line each; empty when it does. CONTAINERS, UNITS and FILES
    are observed now for the names and paths of the record; ANSWERS(url) probes a health URL once."""
    stale = stale_record(stamp, key)
    if stale or stamp is None:
        return [stale or ""]
    reasons = []
    for name, want in stamp.get("containers", {}).items():
        got = containers.get(name)
        if got is None:
            reasons.append("container {0} is gone".format(name))
        elif got["id"] != want.get("id"):
            reasons.append("container {0} is not the one the last rollout started (re-created since)".format(name))
        elif got["status"] != "running" or got["restarting"]:
            reasons.append("container {0} is {1}".format(name, "restarting" if got["restarting"] else got["status"]))
        elif want.get("health_url") and not answers(want["health_url"]):
            reasons.append("container {0} does not answer {1}".format(name, want["health_url"]))
    for name, want in stamp.get("units", {}).items():
        got = units.get(name) or {}
        if got.get("sha256") != want.get("sha256"):
            reasons.append("unit {0} {1}".format(name, "is gone" if not got.get("sha256") else "was edited"))
        elif got.get("active") != want.get("active"):
            reasons.append("unit {0} is {1} (was {2})".format(name, got.get("active"), want.get("active")))
        elif want.get("health_url") and want.get("active") == "active" and not answers(want["health_url"]):
            reasons.append("unit {0} does not answer {1}".format(name, want["health_url"]))
    for path, digest in stamp.get("files", {}).items():
        if files.get(path) != digest:
            reasons.append("file {0} {1}".format(path, "is gone" if path not in files else "was edited"))
    reasons.extend("file {0} was added".format(path) for path in sorted(set(files) - set(stamp.get("files", {}))))
    return reasons


def observe(module: Any, containers: Iterable[str], units: list[str], paths: Iterable[str]) -> dict[str, Any]:
    """What the host runs now, for module MODULE (an AnsibleModule whose options include the Docker connection):
    the named containers, units and files. A Docker daemon is contacted only when there are containers to look at."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api

    names = list(containers)
    client = _docker_api.DockerClient(module.params) if names else None

    def show(args: list[str]) -> str:
        rc, out, err = module.run_command([module.get_bin_path("systemctl", required=True), "show"] + args)
        if rc != 0:
            module.fail_json(msg="systemctl show {0} failed: {1}".format(" ".join(args), (err or out).strip()))
        return out

    return {"containers": container_states(client.inspect_container, names) if client else {},
            "units": unit_states(show, units), "files": file_digests(paths)}


def answers_url(timeout: float) -> Callable[[str], bool]:
    """A probe: whether a URL answers 200 within TIMEOUT seconds."""
    from ansible.module_utils.urls import open_url

    def probe(url: str) -> bool:
        try:
            return open_url(url, timeout=timeout, validate_certs=False).getcode() == 200
        except Exception:  # any failure to answer 200 is the answer
            return False
    return probe
