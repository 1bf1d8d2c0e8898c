#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_info
short_description: Read NVIDIA GPU, driver, Fabric Manager, IMEX and container runtime facts of a host
version_added: "0.1.0"
description:
  - Reads C(nvidia-smi) (the CSV query, C(nvidia-smi -q -x) and the banner of plain C(nvidia-smi)) and returns the GPUs,
    their model, memory, compute capability, MIG and persistence mode, the driver and the CUDA version the driver supports.
  - Detects NVSwitches (C(/dev/nvidia-nvswitch*), C(/proc/driver/nvidia-nvswitch/devices)), the C(nvidia-fabricmanager)
    systemd state and version, IMEX channel devices, the NVIDIA container toolkit and what Docker reports about runtimes
    and CDI, the CPU architecture, the free disk space where the model weights go and the host memory
    (C(MemTotal) and C(MemAvailable) of C(/proc/meminfo)).
  - Never changes the host. When C(nvidia-smi) is missing or fails, the result says so (RV(nvidia_smi) is V(null),
    RV(gpu_count) is V(0)) instead of failing, so that a preflight can report every problem at once.
  - Returns no C(ansible_facts); register the result. Formerly C(gpu_facts), a name that still redirects here (deprecated).
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  nvidia_smi:
    description:
      - Name or path of the C(nvidia-smi) executable.
    type: str
    default: nvidia-smi
  fabricmanager_service:
    description:
      - systemd unit name of NVIDIA Fabric Manager.
    type: str
    default: nvidia-fabricmanager
  dev_dir:
    description:
      - Directory holding the device nodes (NVSwitch devices, IMEX channels). Change it only for tests.
    type: path
    default: /dev
  proc_dir:
    description:
      - Mount point of procfs. Change it only for tests.
    type: path
    default: /proc
  docker:
    description:
      - Ask the Docker engine (C(docker info)) for its runtimes and CDI devices.
    type: bool
    default: true
  weights_cache_dir:
    description:
      - Directory the model weights are cached in (for example C(~/.cache/huggingface)); C(~) is the remote user's home.
      - The free space of the file system that holds it (or its nearest existing parent) is returned in RV(disk).
    type: path
  weights_repo_id:
    description:
      - Hugging Face repository of the weights. When set, the bytes already present in the cache for it are returned in
        RV(disk.weights_present_bytes).
    type: str
  requirements:
    description:
      - Requirements to evaluate the facts against, the keys of C(evaluate) in C(module_utils/gpu_inventory.py) -
        C(host), C(gpu_count), C(gpu_indices), C(gpu_names), C(min_driver), C(min_cuda), C(min_gpu_memory_mib),
        C(min_compute_capability), C(require_mig_disabled), C(nvswitch), C(require_fabricmanager),
        C(require_fabricmanager_version_match), C(imex), C(require_container_runtime), C(arch),
        C(disk_required_bytes), C(weights_size_bytes), C(disk_headroom_bytes), C(host_memory) (the plan's
        C(hosts[host].host_memory)). A missing or V(null) key skips its check.
      - Unmet requirements are returned in RV(problems); the module itself does not fail on them.
    type: dict
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
attributes:
  platform:
    details: Linux hosts with (or meant to have) NVIDIA GPUs, x86_64 or aarch64.
notes:
  - Runs C(nvidia-smi), C(nvidia-smi -q -x), C(nvidia-smi nvlink --status), C(nv-fabricmanager --version), C(systemctl show),
    C(nvidia-ctk --version), C(nvidia-container-cli --version) and C(docker info) when they exist; none of them changes state.
seealso:
  - module: inference.deepseek_v4.rdma_info
"""

EXAMPLES = r"""
- name: Read GPU facts
  inference.deepseek_v4.gpu_info:
    weights_cache_dir: ~/.cache/huggingface
    weights_repo_id: deepseek-ai/DeepSeek-V4-Flash
  register: gpu

- name: Show the driver and the GPU count
  ansible.builtin.debug:
    msg: "{{ gpu.gpu_count }} GPUs, driver {{ gpu.driver_version }}, CUDA {{ gpu.cuda_version }}"

- name: Read the facts and evaluate them against a hardware profile
  inference.deepseek_v4.gpu_info:
    requirements:
      host: "{{ inventory_hostname }}"
      gpu_indices: [0, 1, 2, 3, 4, 5, 6, 7]
      gpu_names: [NVIDIA H200]
      min_driver: "580"
      min_gpu_memory_mib: 140000
      nvswitch: true
  register: gpu

- name: Without Docker queries (host without an engine yet)
  inference.deepseek_v4.gpu_info:
    docker: false
  register: gpu
"""

RETURN = r"""
problems:
  description:
    - Unmet O(requirements), one entry per problem; empty without O(requirements).
    - The collection's one problem shape (C(module_utils/_problem.py)), as the plan and M(inference.deepseek_v4.rdma_info)
      return it.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The O(requirements) C(host).
      type: str
    check:
      description: Name of the check (C(gpu_count), C(gpu_model), C(driver_version), C(cuda_version), C(gpu_memory),
        C(compute_capability), C(mig_mode), C(fabricmanager), C(fabricmanager_version), C(imex_channels),
        C(container_runtime), C(architecture), C(disk_space), C(host_memory), C(nvidia_smi)).
      type: str
    variable:
      description: V(null) (a host check, not a setting, failed), except for C(host_memory), where it names the plan
        setting that sized the need (C(plan_lmcache_l1_size_gb)).
      type: str
    found:
      description: What the host has.
      type: str
    needed:
      description: What is required.
      type: str
    message:
      description: What is wrong, in a few words.
      type: str
    fix:
      description: How to fix it.
      type: str
nvidia_smi:
  description: Path of the nvidia-smi that answered; V(null) when it is absent or failed.
  returned: always
  type: str
  sample: /usr/bin/nvidia-smi
nvidia_smi_error:
  description: Why nvidia-smi gave no data (absent, exit code and message); V(null) when it worked.
  returned: always
  type: str
  sample: nvidia-smi not found
gpu_count:
  description: Number of GPUs nvidia-smi lists.
  returned: always
  type: int
  sample: 8
gpus:
  description: One entry per GPU.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: nvidia-smi index.
      type: int
    name:
      description: Product name.
      type: str
      sample: NVIDIA H200
    uuid:
      description: GPU UUID.
      type: str
    memory_total_mib:
      description: Total framebuffer memory in MiB.
      type: int
      sample: 143771
    compute_cap:
      description: Compute capability.
      type: str
      sample: "9.0"
    driver_version:
      description: Driver version.
      type: str
    mig_mode:
      description: Current MIG mode as printed (V(Enabled), V(Disabled) or V(null) when unsupported).
      type: str
    mig_enabled:
      description: Whether MIG is on.
      type: bool
    persistence_mode:
      description: Whether persistence mode is on.
      type: bool
    architecture:
      description: Product architecture from the XML report.
      type: str
      sample: Hopper
    pci_bus_id:
      description: PCI bus id.
      type: str
    fabric_state:
      description: NVLink fabric state from the XML report (V(Completed) once Fabric Manager / IMEX set up the fabric).
      type: str
driver_version:
  description: NVIDIA driver version.
  returned: always
  type: str
  sample: 580.95.05
cuda_version:
  description: Newest CUDA version the driver supports (from the nvidia-smi banner).
  returned: always
  type: str
  sample: "13.0"
nvswitch:
  description: NVSwitch detection.
  returned: always
  type: dict
  contains:
    present:
      description: Whether NVSwitch devices exist on this host.
      type: bool
    devices:
      description: NVSwitch device nodes or procfs entries found.
      type: list
      elements: str
    nvlink_active:
      description: Active NVLink links per GPU index (from nvidia-smi nvlink --status).
      type: dict
fabricmanager:
  description: NVIDIA Fabric Manager.
  returned: always
  type: dict
  contains:
    installed:
      description: Whether the unit or the binary exists.
      type: bool
    state:
      description: systemd ActiveState (V(active), V(inactive), V(failed)...), V(null) when unknown.
      type: str
    active:
      description: Whether the service is active.
      type: bool
    unit_file_state:
      description: systemd UnitFileState.
      type: str
    version:
      description: Fabric Manager version (binary, else package).
      type: str
imex:
  description: IMEX channel devices.
  returned: always
  type: dict
  contains:
    channel_dir:
      description: Directory searched.
      type: str
    channels:
      description: Channel device paths found.
      type: list
      elements: str
container_toolkit:
  description: NVIDIA container toolkit.
  returned: always
  type: dict
  contains:
    ctk_version:
      description: nvidia-ctk version.
      type: str
    container_cli_version:
      description: nvidia-container-cli version.
      type: str
    hook:
      description: Path of nvidia-container-runtime-hook (what C(docker run --gpus) uses).
      type: str
docker:
  description: What the Docker engine reports.
  returned: always
  type: dict
  contains:
    available:
      description: Whether C(docker info) answered.
      type: bool
    error:
      description: Why not.
      type: str
    server_version:
      description: Engine version.
      type: str
    runtimes:
      description: Registered runtimes.
      type: list
      elements: str
    nvidia_runtime:
      description: Whether a runtime named nvidia is registered.
      type: bool
    default_runtime:
      description: Default runtime.
      type: str
    cdi_spec_dirs:
      description: CDI specification directories.
      type: list
      elements: str
    cdi_devices:
      description: CDI devices the engine discovered.
      type: list
      elements: str
architecture:
  description: CPU architecture, V(x86_64) or V(aarch64).
  returned: always
  type: str
  sample: x86_64
disk:
  description: Free space where the weights go; empty when O(weights_cache_dir) is not set.
  returned: always
  type: dict
  contains:
    path:
      description: The expanded O(weights_cache_dir).
      type: str
    checked_path:
      description: The nearest existing directory that was measured.
      type: str
    free_bytes:
      description: Bytes available to unprivileged users.
      type: int
    total_bytes:
      description: Size of the file system.
      type: int
    weights_present_bytes:
      description: Bytes of O(weights_repo_id) already in the cache.
      type: int
memory:
  description: Host memory from C(/proc/meminfo); V(null) values when it cannot be read.
  returned: always
  type: dict
  contains:
    total_bytes:
      description: C(MemTotal) in bytes.
      type: int
    available_bytes:
      description: C(MemAvailable) in bytes (reported only; the C(host_memory) check compares C(MemTotal)).
      type: int
"""

import glob
import os
import platform
from typing import Any, Callable, Mapping, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.inference.deepseek_v4.plugins.module_utils import gpu_inventory as inv


class Collector(object):
    """Gathers the facts. ``run`` is ``callable(argv) -> (rc, stdout, stderr)`` and ``which`` finds executables."""

    def __init__(self, run: Callable[[list[str]], tuple[int, str, str]], which: Callable[[str], Optional[str]],
                 params: Mapping[str, Any]) -> None:
        self.run = run
        self.which = which
        self.params = params

    def _cmd(self, argv: list[str]) -> tuple[int, str, str]:
        try:
            return self.run(argv)
        except (OSError, IOError) as exc:
            return 127, "", str(exc)

    def nvidia(self) -> tuple[dict[str, Any], dict[int, dict[str, int]]]:
        result = {"nvidia_smi": None, "nvidia_smi_error": None, "gpu_count": 0, "gpus": [],
                  "driver_version": None, "cuda_version": None}
        smi = self.which(self.params.get("nvidia_smi") or "nvidia-smi")
        if not smi:
            result["nvidia_smi_error"] = "nvidia-smi not found"
            return result, {}
        rc, out, err = self._cmd([smi, "--query-gpu=" + ",".join(inv.QUERY_FIELDS), "--format=csv,noheader,nounits"])
        if rc != 0:
            result["nvidia_smi_error"] = "nvidia-smi exited %d: %s" % (rc, (err or out).strip())
            return result, {}
        try:
            query_gpus = inv.parse_query_csv(out)
        except ValueError as exc:
            result["nvidia_smi_error"] = str(exc)
            return result, {}
        xml = {"gpus": []}
        rc, out, err = self._cmd([smi, "-q", "-x"])
        if rc == 0:
            try:
                xml = inv.parse_smi_xml(out)
            except Exception:  # pylint: disable=broad-except  # malformed XML only loses optional details
                xml = {"gpus": []}
        banner = {}
        rc, out, err = self._cmd([smi])
        if rc == 0:
            banner = inv.parse_banner(out)
        nvlink = {}
        rc, out, err = self._cmd([smi, "nvlink", "--status"])
        if rc == 0:
            nvlink = inv.parse_nvlink_status(out)
        gpus = inv.merge_gpus(query_gpus, xml.get("gpus"))
        drivers = [g["driver_version"] for g in gpus if g.get("driver_version")]
        result.update({
            "nvidia_smi": smi,
            "gpu_count": len(gpus),
            "gpus": gpus,
            "driver_version": banner.get("driver_version") or xml.get("driver_version") or (drivers[0] if drivers else None),
            "cuda_version": banner.get("cuda_version") or xml.get("cuda_version"),
        })
        return result, nvlink

    def nvswitch(self, nvlink: Mapping[int, Mapping[str, int]]) -> dict[str, Any]:
        dev_dir = self.params.get("dev_dir") or "/dev"
        proc_dir = self.params.get("proc_dir") or "/proc"
        devices = sorted(p for p in glob.glob(os.path.join(dev_dir, "nvidia-nvswitch*"))
                         if not p.endswith("nvidia-nvswitchctl"))
        devices += sorted(glob.glob(os.path.join(proc_dir, "driver", "nvidia-nvswitch", "devices", "*")))
        return {
            "present": bool(devices),
            "devices": devices,
            "nvlink_active": dict((str(k), v["active"]) for k, v in sorted(nvlink.items())),
        }

    def fabricmanager(self) -> dict[str, Any]:
        unit = self.params.get("fabricmanager_service") or "nvidia-fabricmanager"
        result = {"installed": False, "state": None, "active": False, "unit_file_state": None, "version": None}
        systemctl = self.which("systemctl")
        if systemctl:
            rc, out, err = self._cmd([systemctl, "show", unit, "--property=LoadState,ActiveState,SubState,UnitFileState"])
            if rc == 0:
                props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
                if props.get("LoadState") not in (None, "not-found"):
                    result["installed"] = True
                    result["state"] = props.get("ActiveState") or None
                    result["active"] = props.get("ActiveState") == "active"
                    result["unit_file_state"] = props.get("UnitFileState") or None
                else:
                    result["state"] = "not-found"
        binary = self.which("nv-fabricmanager")
        if binary:
            result["installed"] = True
            rc, out, err = self._cmd([binary, "--version"])
            if rc == 0:
                result["version"] = inv.parse_fabricmanager_version(out + "\n" + err)
        if result["version"] is None:
            dpkg = self.which("dpkg-query")
            if dpkg:
                rc, out, err = self._cmd([dpkg, "-W", "-f=${Package} ${Version}\\n", "nvidia-fabricmanager*"])
                if rc == 0:
                    result["version"] = inv.parse_dpkg_fabricmanager(out)
        return result

    def imex(self) -> dict[str, Any]:
        channel_dir = os.path.join(self.params.get("dev_dir") or "/dev", "nvidia-caps-imex-channels")
        return {"channel_dir": channel_dir, "channels": sorted(glob.glob(os.path.join(channel_dir, "channel*")))}

    def toolkit(self) -> dict[str, Optional[str]]:
        result = {"ctk_version": None, "container_cli_version": None, "hook": None}
        ctk = self.which("nvidia-ctk")
        if ctk:
            rc, out, err = self._cmd([ctk, "--version"])
            if rc == 0:
                result["ctk_version"] = inv.parse_ctk_version(out)
        cli = self.which("nvidia-container-cli")
        if cli:
            rc, out, err = self._cmd([cli, "--version"])
            if rc == 0:
                result["container_cli_version"] = inv.parse_container_cli_version(out)
        result["hook"] = self.which("nvidia-container-runtime-hook") or None
        return result

    def docker(self) -> dict[str, Any]:
        result = {"available": False, "error": None, "server_version": None, "runtimes": [], "nvidia_runtime": False,
                  "default_runtime": None, "cdi_spec_dirs": [], "cdi_devices": []}
        if not self.params.get("docker", True):
            result["error"] = "not queried"
            return result
        binary = self.which("docker")
        if not binary:
            result["error"] = "docker not installed"
            return result
        rc, out, err = self._cmd([binary, "info", "--format", "{{json .}}"])
        if rc != 0:
            result["error"] = (err or out).strip() or ("docker info exited %d" % rc)
            return result
        try:
            info = inv.parse_docker_info(out)
        except ValueError as exc:
            result["error"] = "docker info: %s" % exc
            return result
        if not info.get("server_version"):
            result["error"] = "docker daemon not reachable"
            return result
        info.pop("architecture", None)
        result.update(info)
        result["available"] = True
        return result

    def disk(self) -> dict[str, Any]:
        path = self.params.get("weights_cache_dir")
        if not path:
            return {}
        expanded = path  # type=path: already expanded on the target
        checked = expanded
        while checked and not os.path.isdir(checked):
            parent = os.path.dirname(checked.rstrip("/")) or "/"
            if parent == checked:
                break
            checked = parent
        result = {"path": expanded, "checked_path": checked, "free_bytes": None, "total_bytes": None,
                  "weights_present_bytes": 0}
        try:
            st = os.statvfs(checked)
            result["free_bytes"] = st.f_bavail * st.f_frsize
            result["total_bytes"] = st.f_blocks * st.f_frsize
        except OSError:
            pass
        repo = self.params.get("weights_repo_id")
        if repo:
            name = "models--" + repo.replace("/", "--")
            for base in (os.path.join(expanded, "hub", name), os.path.join(expanded, name)):
                for dirpath, dirnames, filenames in os.walk(os.path.join(base, "blobs")):
                    for filename in filenames:
                        try:
                            st = os.lstat(os.path.join(dirpath, filename))
                        except OSError:
                            continue
                        result["weights_present_bytes"] += st.st_size
        return result

    def memory(self) -> dict[str, Optional[int]]:
        path = os.path.join(self.params.get("proc_dir") or "/proc", "meminfo")
        try:
            with open(path) as handle:
                return inv.parse_meminfo(handle.read())
        except (IOError, OSError):
            return {"total_bytes": None, "available_bytes": None}

    def collect(self) -> dict[str, Any]:
        facts, nvlink = self.nvidia()
        facts["nvswitch"] = self.nvswitch(nvlink)
        facts["fabricmanager"] = self.fabricmanager()
        facts["imex"] = self.imex()
        facts["container_toolkit"] = self.toolkit()
        facts["docker"] = self.docker()
        facts["architecture"] = inv.normalize_arch(platform.machine())
        facts["disk"] = self.disk()
        facts["memory"] = self.memory()
        return facts


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            fabricmanager_service=dict(type="str", default="nvidia-fabricmanager"),
            dev_dir=dict(type="path", default="/dev"),
            proc_dir=dict(type="path", default="/proc"),
            docker=dict(type="bool", default=True),
            weights_cache_dir=dict(type="path"),
            weights_repo_id=dict(type="str"),
            requirements=dict(type="dict"),
        ),
        supports_check_mode=True,
    )

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def which(name: str) -> Optional[str]:
        if os.path.isabs(name):
            return name if os.access(name, os.X_OK) else None
        return module.get_bin_path(name, opt_dirs=["/usr/local/bin", "/usr/sbin", "/sbin"])

    facts = Collector(run, which, module.params).collect()
    requirements = module.params.get("requirements")
    facts["problems"] = [p.as_dict() for p in inv.evaluate(facts, requirements)] if requirements else []
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
