"""Checks the vllm_router role's result on the instance."""

UNIT = "/etc/systemd/system/deepseek-v4-router.service"
VENV = "/opt/deepseek-v4/router-venv"


def test_unit_enabled_and_running(host):
    service = host.service("deepseek-v4-router")
    assert service.is_enabled
    assert service.is_running


def test_unit_renders_the_plan_argv(host):
    unit = host.file(UNIT)
    assert unit.exists and unit.mode == 0o644
    assert (
        f"ExecStart={VENV}/bin/vllm-router --policy round_robin --vllm-pd-disaggregation"
        " --prefill http://localhost:8000 --decode http://localhost:8001 --host 127.0.0.1 --port 30000"
        " --intra-node-data-parallel-size 4 --kv-connector mooncake"
    ) in unit.content_string
    assert "Restart=on-failure" in unit.content_string


def test_pinned_router_in_venv(host):
    out = host.check_output(f"{VENV}/bin/pip show vllm-router")
    assert "Version: 0.1.17" in out


def test_router_listening_and_ready(host):
    assert host.socket("tcp://127.0.0.1:30000").is_listening
    assert host.run("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:30000/readiness').status)\"").stdout.strip() == "200"


def test_router_runs_as_its_own_user_without_privileges(host):
    """The hardened unit: its own system user, no new privileges, no capabilities; the standby's unit the same."""
    show = host.check_output("systemctl show -p User,NoNewPrivileges,CapabilityBoundingSet,MainPID deepseek-v4-router")
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props["User"] == "deepseek-v4-router" and props["NoNewPrivileges"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    owner = host.check_output("ps -o user= -p %s" % props["MainPID"]).strip()
    assert owner == "deepseek-v4-router"
    assert host.check_output("grep -c '^NoNewPrivileges=yes$' /etc/systemd/system/deepseek-v4-router-standby.service") == "1"
    unit = host.file("/etc/systemd/system/deepseek-v4-router-standby.service").content_string
    assert " --port 30001 " in unit and " --prometheus-port 29001" in unit and " --port 30000 " not in unit
    # No [Install] section: systemd calls it static, nothing can enable it at boot; only the upgrade starts it.
    assert "[Install]" not in unit
    enabled = host.run("systemctl is-enabled deepseek-v4-router-standby").stdout.strip()
    assert enabled == "static", enabled
    assert not host.service("deepseek-v4-router-standby").is_running
