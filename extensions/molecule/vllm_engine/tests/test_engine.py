"""Checks the vllm_engine role's containers (siblings of the instance on the same Docker engine)."""

import json
import os
import subprocess

import pytest

# molecule.yml: plan_name_prefix is dsv4-molecule-<DSV4_MOLECULE_ID, default local>.
PREFIX = "dsv4-molecule-" + (os.environ.get("DSV4_MOLECULE_ID") or "local")


def inspect(name):
    return json.loads(subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout)[0]


@pytest.mark.parametrize("name,port,bootstrap,seqs", [
    (PREFIX + "-prefill", 28100, 28198, "8"),
    (PREFIX + "-decode", 28101, 28199, "512"),
])
def test_container_matches_plan(host, name, port, bootstrap, seqs):
    c = inspect(name)
    assert c["State"]["Running"]
    # The plan's argv is the container's command (Config.Cmd); Args would start with the image's entrypoint
    # arguments (the rehearsal image runs a Python entrypoint script).
    args = c["Config"]["Cmd"]
    assert args[0] == "deepseek-ai/DeepSeek-V4-Flash"
    assert args[args.index("--port") + 1] == str(port)
    assert args[args.index("--max-num-seqs") + 1] == seqs
    assert '"kv_connector":"MooncakeConnector"' in args[args.index("--kv-transfer-config") + 1]
    env = dict(e.split("=", 1) for e in c["Config"]["Env"])
    assert env["VLLM_MOONCAKE_BOOTSTRAP_PORT"] == str(bootstrap)
    assert env["VLLM_ENGINE_READY_TIMEOUT_S"] == "3600"
    labels = c["Config"]["Labels"]
    assert labels["inference.deepseek_v4.topology"] == "h200_pd"
    assert labels["inference.deepseek_v4.service"] == name
    assert len(labels["inference.deepseek_v4.plan_hash"]) == 64
    hc = c["HostConfig"]
    assert hc["NetworkMode"] == "host" and hc["IpcMode"] == "host"
    assert hc["RestartPolicy"]["Name"] == "unless-stopped"
    # Docker may report the bind with its mode (":rw").
    assert "/var/lib/deepseek-v4-molecule/hf-cache:/root/.cache/huggingface" in [":".join(b.split(":")[:2]) for b in hc["Binds"]]
    # The instance shares the host network: the engine's port listens there, on loopback only (one host: the plan's
    # --host 127.0.0.1, not vLLM's every-interface default).
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_volume_dirs_created(host):
    assert host.file("/var/lib/deepseek-v4-molecule/hf-cache").is_directory
