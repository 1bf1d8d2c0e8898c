# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Module nft_table with TEST DOUBLES of nft and systemctl (shell scripts first on PATH that keep their state in files
and log every call): what it runs, writes and reports on a first run, a second run, a table deleted by hand (check
mode, then a real run), a ruleset nftables refuses, and a host without nft. The real nft against a kernel is the
molecule scenario cluster_firewall's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.inference.deepseek_v4.plugins.modules import nft_table
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import run_main

NFT = r"""#!/bin/sh
# TEST DOUBLE of nft: -c -f /dev/stdin checks (refuses a ruleset holding BAD), list table prints the applied file,
# -f FILE applies FILE.
echo "nft $*" >> "$STATE/calls"
case "$1 $2" in
  "-c -f") if grep -q BAD; then echo "Error: syntax error, unexpected BAD" >&2; exit 1; fi; exit 0 ;;
  "list table") if [ -f "$STATE/table" ]; then cat "$STATE/table"; exit 0; fi
                echo "Error: No such file or directory; did you mean table 'x'?" >&2; exit 1 ;;
  "-f "*) cp "$2" "$STATE/table"; exit 0 ;;
esac
exit 2
"""
SYSTEMCTL = r"""#!/bin/sh
# TEST DOUBLE of systemctl: enabled and active are files.
echo "systemctl $*" >> "$STATE/calls"
case "$1" in
  is-enabled) [ -f "$STATE/enabled" ] ;;
  is-active) [ -f "$STATE/active" ] ;;
  enable) touch "$STATE/enabled" ;;
  start) touch "$STATE/active" ;;
  daemon-reload) exit 0 ;;
  *) exit 2 ;;
esac
"""
MARKER = "inference.deepseek_v4 cluster_firewall sha256:abc"
CONTENT = 'table inet deepseek_v4 {}\ndelete table inet deepseek_v4\ntable inet deepseek_v4 {\n\tcomment "%s"\n}\n' % MARKER
UNIT = "[Service]\nType=oneshot\nExecStart=/usr/sbin/nft -f /etc/deepseek-v4/fw.nft\n"


@pytest.fixture
def host(tmp_path, monkeypatch):
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    for name, script in (("nft", NFT), ("systemctl", SYSTEMCTL)):
        (bindir / name).write_text(script)
        (bindir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("STATE", str(state))

    class Host:
        conf = tmp_path / "etc" / "deepseek-v4" / "fw.nft"
        unit_dir = tmp_path / "systemd"

        @staticmethod
        def calls():
            path = state / "calls"
            text = path.read_text() if path.exists() else ""
            path.write_text("")
            return text.splitlines()

        @staticmethod
        def args(**extra):
            return dict(dict(content=CONTENT, path=str(Host.conf), table="deepseek_v4", marker=MARKER,
                             unit_name="fw.service", unit_content=UNIT, unit_dir=str(Host.unit_dir)), **extra)

        table = state / "table"
        bindir_path = bindir

    return Host


def writes(calls):
    return [c for c in calls if c.split()[1] not in ("-c", "list", "is-enabled", "is-active")]


def test_first_run_writes_applies_enables_then_a_second_run_changes_nothing(host, capsys):
    result = run_main(nft_table.main, host.args(), capsys)
    assert result["changed"] and result["valid"] and result["file_changed"] and result["applied"]
    assert result["unit_changed"] and result["unit_started"]
    assert host.conf.read_text() == CONTENT and oct(host.conf.stat().st_mode & 0o777) == "0o644"
    assert (host.unit_dir / "fw.service").read_text() == UNIT
    assert writes(host.calls()) == ["nft -f %s" % host.conf, "systemctl daemon-reload",
                                    "systemctl enable --quiet fw.service", "systemctl start fw.service"]
    result = run_main(nft_table.main, host.args(), capsys)
    assert not result["changed"] and not result["applied"] and not result["unit_started"]
    assert writes(host.calls()) == []


def test_a_table_deleted_by_hand_is_reported_in_check_mode_then_put_back(host, capsys):
    run_main(nft_table.main, host.args(), capsys)
    host.table.unlink()
    host.calls()
    result = run_main(nft_table.main, host.args(_ansible_check_mode=True), capsys)
    assert result["changed"] and result["applied"] and not result["file_changed"] and not result["unit_changed"]
    assert writes(host.calls()) == [] and not host.table.exists()
    result = run_main(nft_table.main, host.args(), capsys)
    assert result["changed"] and result["applied"] and not result["file_changed"]
    assert writes(host.calls()) == ["nft -f %s" % host.conf] and MARKER in host.table.read_text()


def test_a_changed_ruleset_is_written_and_applied_a_refused_one_is_not(host, capsys):
    run_main(nft_table.main, host.args(), capsys)
    host.calls()
    changed = CONTENT.replace("abc", "def")
    result = run_main(nft_table.main, host.args(content=changed, marker=MARKER.replace("abc", "def")), capsys)
    assert result["file_changed"] and result["applied"] and not result["unit_changed"]
    assert host.conf.read_text() == changed
    bad = changed + "BAD\n"
    result = run_main(nft_table.main, host.args(content=bad, marker="other"), capsys)
    assert result["valid"] is False and "unexpected BAD" in result["check_stderr"] and not result["changed"]
    assert host.conf.read_text() == changed and writes(host.calls()) == ["nft -f %s" % host.conf]


def test_without_nft_check_mode_reports_every_step_and_a_real_run_fails(host, capsys, monkeypatch):
    if any(os.path.exists(os.path.join(d, "nft")) for d in ("/sbin", "/usr/sbin", "/usr/local/sbin")):
        pytest.skip("this machine has nft in a system directory, which get_bin_path always searches")
    (host.bindir_path / "nft").unlink()
    result = run_main(nft_table.main, host.args(_ansible_check_mode=True), capsys)
    assert result["nft_missing"] and result["changed"] and result["applied"] and not host.conf.exists()
    result = run_main(nft_table.main, host.args(), capsys)
    assert result.get("failed") and "nftables" in result["msg"] and not host.conf.exists()
