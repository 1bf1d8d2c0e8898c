# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The container engine's memlock limit, which containers without --ulimit memlock inherit: `systemctl show`
and /proc/<pid>/limits parsed, the docker_memlock problems, and rdma_info reading them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_inventory as inv
from ansible_collections.inference.deepseek_v4.plugins.modules import rdma_info

LIMITS = (u"Limit                     Soft Limit           Hard Limit           Units     \n"
          u"Max open files            1048576              1048576              files     \n"
          u"Max locked memory         %s            %s            bytes     \n")
# systemd >= 253 defaults LimitMEMLOCK to 8 MiB; Debian's docker.io and docker-ce set none of their own.
SHOW_LOW = u"LoadState=loaded\nMainPID=812\nLimitMEMLOCK=8388608\nLimitMEMLOCKSoft=8388608\n"
SHOW_INFINITY = u"LoadState=loaded\nMainPID=812\nLimitMEMLOCK=infinity\nLimitMEMLOCKSoft=infinity\n"
# systemctl shows the manager's defaults for a unit it does not know: the limit alone says nothing.
SHOW_MISSING = u"LoadState=not-found\nMainPID=0\nLimitMEMLOCK=8388608\nLimitMEMLOCKSoft=8388608\n"


def test_parse_systemctl_show_and_limits():
    props = inv.parse_systemctl_show(SHOW_LOW + u"Garbage\n")
    assert props == {"LoadState": "loaded", "MainPID": "812", "LimitMEMLOCK": "8388608", "LimitMEMLOCKSoft": "8388608"}
    assert inv.parse_systemd_limit("infinity") == "unlimited"
    assert inv.parse_systemd_limit("65536") == 65536
    assert inv.parse_systemd_limit("") is None and inv.parse_systemd_limit("8M") is None


@pytest.mark.parametrize("show, limits, unlimited_configured, running_unlimited", [
    (SHOW_INFINITY, LIMITS % ("unlimited", "unlimited"), True, True),
    (SHOW_LOW, LIMITS % ("8388608", "8388608"), False, False),
    # A drop-in written but the daemon not restarted yet: the unit says infinity, the process still 8 MiB.
    (SHOW_INFINITY, LIMITS % ("8388608", "8388608"), True, False),
    (SHOW_INFINITY, None, True, None),
])
def test_daemon_memlock_entry(show, limits, unlimited_configured, running_unlimited):
    entry = inv.daemon_memlock("docker.service", show, limits)
    assert entry["loaded"] is True and entry["main_pid"] == 812
    assert entry["configured"]["unlimited"] is unlimited_configured
    if running_unlimited is None:
        assert entry["running"] is None
    else:
        assert entry["running"]["unlimited"] is running_unlimited


def test_low_limit_is_one_problem_naming_the_drop_in_and_the_variables():
    entries = [inv.daemon_memlock("docker.service", SHOW_LOW, LIMITS % ("8388608", "8388608")),
               inv.daemon_memlock("containerd.service", SHOW_MISSING)]
    (problem,) = inv.daemon_memlock_problems(entries, True, host="node-1")
    text = str(problem)
    assert problem.check == "docker_memlock" and problem.host == "node-1"
    assert "docker.service LimitMEMLOCK 8388608 bytes, its running process (pid 812) 8388608 bytes" in text
    assert "Cannot allocate memory" in problem.message
    assert "/etc/systemd/system/docker.service.d/90-memlock.conf" in text and "LimitMEMLOCK=infinity" in text
    assert "rdma_docker_memlock_dropin: true" in text and "plan_engine_privileges: rdma_devices" in text


def test_running_process_behind_its_unit_is_a_problem():
    entries = [inv.daemon_memlock("docker.service", SHOW_INFINITY, LIMITS % ("65536", "65536"))]
    (problem,) = inv.daemon_memlock_problems(entries, True)
    assert "LimitMEMLOCK unlimited, its running process (pid 812) 65536 bytes" in problem.found


def test_unlimited_or_not_required_is_no_problem():
    good = [inv.daemon_memlock("docker.service", SHOW_INFINITY, LIMITS % ("unlimited", "unlimited")),
            inv.daemon_memlock("containerd.service", SHOW_MISSING)]
    assert inv.daemon_memlock_problems(good, True) == []
    low = [inv.daemon_memlock("docker.service", SHOW_LOW, LIMITS % ("8388608", "8388608"))]
    assert inv.daemon_memlock_problems(low, False) == []


def test_no_loaded_unit_cannot_be_read():
    entries = [inv.daemon_memlock("docker.service", SHOW_MISSING), inv.daemon_memlock("containerd.service", "")]
    (problem,) = inv.daemon_memlock_problems(entries, True)
    assert "none of docker.service, containerd.service is a loaded systemd unit" in problem.found
    assert "rdma_docker_memlock_units" in problem.fix and "rdma_check_docker_memlock: false" in problem.fix


def test_rdma_info_reads_systemctl_and_the_process_limits(tmp_path):
    (tmp_path / "812").mkdir()
    (tmp_path / "812" / "limits").write_text(LIMITS % ("8388608", "8388608"))
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, {"docker.service": SHOW_LOW, "containerd.service": SHOW_MISSING}[argv[2]], ""

    entries = rdma_info.daemon_memlock(["docker.service", "containerd.service"], run=run,
                                       which=lambda name: "/usr/bin/" + name, proc_dir=str(tmp_path))
    assert calls[0] == ["/usr/bin/systemctl", "show", "docker.service", "-p", "LoadState", "-p", "MainPID", "-p",
                        "LimitMEMLOCK", "-p", "LimitMEMLOCKSoft"]
    assert [e["loaded"] for e in entries] == [True, False]
    assert entries[0]["running"] == {"soft": 8388608, "hard": 8388608, "unit": "bytes", "unlimited": False}
    found = rdma_info.problems({"daemon_memlock": entries, "listeners": [], "active_ports": []},
                               {"host": "node-1", "require_daemon_memlock": True})
    assert [p["check"] for p in found] == ["docker_memlock"]


def test_rdma_info_without_systemctl_reads_nothing():
    entries = rdma_info.daemon_memlock(["docker.service"], run=lambda argv: (1, "", ""), which=lambda name: None)
    assert entries[0]["loaded"] is False and entries[0]["running"] is None
