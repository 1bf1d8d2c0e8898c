"""Outcomes of the rdma scenario inside the instance."""

import pytest


@pytest.mark.parametrize("package", ["rdma-core", "ibverbs-providers", "libibverbs1", "ibverbs-utils"])
def test_packages(host, package):
    assert host.package(package).is_installed


def test_peermem_loaded_at_boot(host):
    conf = host.file("/etc/modules-load.d/nvidia-peermem.conf")
    assert conf.mode == 0o644 and conf.user == "root"
    lines = [line.strip() for line in conf.content_string.splitlines() if line.strip() and not line.startswith("#")]
    assert lines == ["nvidia_peermem"]


def test_memlock_unlimited(host):
    limits = host.file("/etc/security/limits.d/90-rdma-memlock.conf")
    assert limits.mode == 0o644
    rows = [line.split() for line in limits.content_string.splitlines() if line.strip() and not line.startswith("#")]
    assert ["*", "soft", "memlock", "unlimited"] in rows
    assert ["*", "hard", "memlock", "unlimited"] in rows
    assert ["root", "hard", "memlock", "unlimited"] in rows


def test_verbs_provider_library(host):
    assert host.run("ldconfig -p | grep -q libmlx5.so.1").rc == 0


@pytest.mark.parametrize("port", [8998, 5559])
def test_squatters_gone(host, port):
    assert not host.socket("tcp://0.0.0.0:%d" % port).is_listening


def test_docker_memlock_drop_in(host):
    """side_effect.yml applied the drop-in to the stand-in docker.service (rdma_docker_memlock_dropin)."""
    dropin = host.file("/etc/systemd/system/docker.service.d/90-memlock.conf")
    assert dropin.mode == 0o644 and dropin.user == "root"
    lines = [line.strip() for line in dropin.content_string.splitlines() if line.strip() and not line.startswith("#")]
    assert lines == ["[Service]", "LimitMEMLOCK=infinity"]
    assert not host.file("/etc/systemd/system/containerd.service.d/90-memlock.conf").exists
