"""The `~` contract with a non-root connection user: the weights land where the engine container mounts them."""

import json
import os
import subprocess

# molecule.yml: root's home on the instance, a directory of the Docker host at the same path.
ROOT_HOME = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "root-home")
ENGINE = "dsv4-molecule-home-%s-engine" % (os.environ.get("DSV4_MOLECULE_ID") or "local")
REPO = "models--deepseek-ai--DeepSeek-V4-Flash"


def inspect(name):
    return json.loads(subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout)[0]


def test_ansible_connects_as_a_non_root_user(host):
    # testinfra uses the scenario's inventory: the connection user is deploy, root through sudo.
    assert host.user().name == "deploy"
    assert host.user().home == "/home/deploy"
    with host.sudo():
        assert host.user().name == "root"
        assert host.user().home == ROOT_HOME


def test_engine_mounts_the_directory_hf_cache_filled(host):
    engine = inspect(ENGINE)
    assert engine["State"]["Running"]
    binds = {b.split(":")[1]: b.split(":")[0] for b in engine["HostConfig"]["Binds"]}
    source = binds["/root/.cache/huggingface"]
    # `~/` of the plan's volume is root's home (the user that runs the containers), not the connection user's.
    assert source == ROOT_HOME + "/.cache/huggingface"
    # hf_cache put the snapshot there (this path is the same directory on the Docker host and on the instance).
    snapshots = os.path.join(source, "hub", REPO, "snapshots")
    (commit,) = os.listdir(snapshots)
    assert os.path.isfile(os.path.join(snapshots, commit, "model.safetensors.index.json"))
    with host.sudo():
        assert host.file(os.path.join(snapshots, commit, "model.safetensors.index.json")).exists
    # The stand-in engine starts only when it sees the snapshot under its /root/.cache/huggingface.
    logs = subprocess.run(["docker", "logs", ENGINE], check=True, capture_output=True, text=True)
    assert "snapshot %s" % commit in logs.stdout + logs.stderr


def test_nothing_in_the_connection_users_home(host):
    assert not host.file("/home/deploy/.cache/huggingface").exists
