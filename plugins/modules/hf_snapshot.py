#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: hf_snapshot
short_description: Provision a Hugging Face model repository into a Hugging Face cache directory
version_added: "0.1.0"
description:
  - Makes the files of a model repository at one revision present and verified in a Hugging Face cache directory, in
    the layout C(huggingface_hub) and the serving engines read (C(<cache_dir>/hub/models--<org>--<name>/blobs),
    C(snapshots/<commit>), C(refs)), so that engines can run with C(HF_HUB_OFFLINE=1).
  - All transfers go through C(huggingface_hub) (C(HfApi) for metadata, C(snapshot_download) for bytes).
  - Local state is looked at first. When a previous run verified the snapshot of the revision (a record under
    C(<repo folder>/.provisioned/<commit>.json) lists every file with its size) and the files on disk still match it,
    the module makes no network request at all and reports no change. A branch or tag is resolved once and then
    pinned through C(refs/<revision>); give a commit hash to move to another commit.
  - Otherwise the file list and sizes are read from the Hub API before any byte is fetched, and the module fails
    when the filesystem holding O(cache_dir) cannot take what is still missing plus O(min_free_bytes).
  - Files already complete are never fetched again. C(huggingface_hub) resumes an interrupted transfer within a run
    (HTTP Range). A run that ends without cleaning up (a stall, see O(stall_timeout); the C(async) time limit; a
    killed process or a reboot) leaves its partial file (C(blobs/<etag>.<id>.incomplete)); the next run resumes it
    from where it stops (C(huggingface_hub)'s C(http_get) with HTTP Range) instead of fetching that file again. A
    run that C(huggingface_hub) itself ends after its retries removes its partial files.
  - With O(progress_file), the module rewrites that small JSON file every second while the bytes move (bytes of the
    selected files in the cache, complete blobs plus partial files, of the total the Hub lists; the rate of the last
    30 s; the file that moves), for a play that runs the module in the background (C(async), C(poll=0)) and follows
    it with M(inference.deepseek_v4.async_progress).
  - After the transfer every selected file is checked against the size the Hub lists (and with O(verify=sha256)
    against its LFS sha256, or git blob id for small files), and every shard named in the C(weight_map) of
    C(model.safetensors.index.json) must be present. Corrupted or truncated files are reported by name and, with
    O(repair=true), removed and fetched again.
options:
  repo_id:
    description: Repository id on the Hub, C(<org>/<name>).
    type: str
    required: true
  revision:
    description:
      - Branch, tag or commit hash. A commit hash needs no Hub request to resolve.
      - Defaults to C(main) when not set.
    type: str
  cache_dir:
    description:
      - The Hugging Face home directory (what engines mount at C(/root/.cache/huggingface)); files go to
        C(<cache_dir>/hub). A leading C(~) is the home of the user the module runs as.
    type: path
    required: true
  token:
    description:
      - Hub access token for gated or private repositories. Never returned or logged.
    type: str
  endpoint:
    description:
      - Base URL of the Hub or of a Hub-compatible mirror. Defaults to the E(HF_ENDPOINT) environment variable, then
        to the public Hub.
    type: str
  allow_patterns:
    description: Only files matching one of these glob patterns are provisioned (all files when empty).
    type: list
    elements: str
  mirror_dir:
    description:
      - A directory holding pre-staged files of the repository with their repository paths (for example a copy made
        with C(hf download --local-dir)). Files found there with the expected size (and checksum with
        O(verify=sha256)) are hard-linked (or copied across filesystems) into the cache instead of being
        downloaded; others are downloaded.
    type: path
  min_free_bytes:
    description: Bytes that must stay free on the cache filesystem after everything missing has been fetched.
    type: int
    default: 1073741824
  verify:
    description:
      - V(size) checks every file against the size the Hub lists; V(sha256) also checks contents (LFS sha256, git blob
        id for small files), hashing each file once and again only when its size or mtime changed; V(none) only
        checks presence.
    type: str
    choices: [none, size, sha256]
    default: size
  offline_ok:
    description:
      - When the Hub cannot be reached (or E(HF_HUB_OFFLINE) is set), succeed if the local snapshot is complete
        according to the last verification record (or to the tree listing C(huggingface_hub) cached), instead of
        failing.
    type: bool
    default: false
  download:
    description:
      - When false, nothing is fetched; the module only verifies the local snapshot and fails if it is incomplete.
        Hosts that share the cache filesystem with a host that downloads use this.
    type: bool
    default: true
  repair:
    description: Remove corrupted or truncated files and fetch them again (when false, fail naming them).
    type: bool
    default: true
  max_workers:
    description: Files fetched concurrently.
    type: int
    default: 8
  store_token:
    description:
      - Also write O(token) to C(<cache_dir>/token) (mode C(0600)), where C(huggingface_hub) in the engine
        containers finds it.
    type: bool
    default: false
  progress_file:
    description:
      - Path of the progress file (JSON, rewritten atomically every second during the transfer); its directory is
        created. Not written when unset.
    type: path
  stall_timeout:
    description:
      - Seconds without a new byte in the cache, during the transfer, after which the module stops and fails naming
        the file that stalled and the fix. The partial file stays, so that the next run resumes it. V(0) never stops.
      - When set, C(huggingface_hub)'s read timeout (E(HF_HUB_DOWNLOAD_TIMEOUT), unless the environment sets it) is
        made longer than this, so that a stall is decided here and its partial file kept.
    type: int
    default: 0
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.target_module
attributes:
  check_mode:
    support: full
    details: Reports the files and bytes that would be fetched or linked; fetches and writes nothing.
requirements:
  - huggingface_hub >= 1.0 on the target (the role M(inference.deepseek_v4.hf_cache) installs it in a virtualenv)
notes:
  - Needs network access to the Hub or O(endpoint) only when the local snapshot is not already complete.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
seealso:
  - name: huggingface_hub download guide
    description: How the cache layout and snapshot_download work.
    link: https://huggingface.co/docs/huggingface_hub/guides/download
"""

EXAMPLES = r"""
- name: Provision DeepSeek-V4-Flash into the user's Hugging Face cache
  inference.deepseek_v4.hf_snapshot:
    repo_id: deepseek-ai/DeepSeek-V4-Flash
    revision: main
    cache_dir: ~/.cache/huggingface
    token: "{{ vault_hf_token | default(omit) }}"
    min_free_bytes: 10737418240
  vars:
    ansible_python_interpreter: /opt/hf-cache/venv/bin/python

- name: Only check what would be fetched
  inference.deepseek_v4.hf_snapshot:
    repo_id: deepseek-ai/DeepSeek-V4-Flash
    cache_dir: /mnt/shared/huggingface
  check_mode: true
  register: hf_plan

- name: Link pre-staged shards, verify contents, fetch the rest from an internal mirror
  inference.deepseek_v4.hf_snapshot:
    repo_id: deepseek-ai/DeepSeek-V4-Flash
    revision: 0123456789abcdef0123456789abcdef01234567
    cache_dir: /data/hf
    mirror_dir: /mnt/shared/staging/DeepSeek-V4-Flash
    endpoint: "{{ internal_hub_url }}"
    verify: sha256

- name: On hosts sharing the filesystem of a host that downloaded, only verify
  inference.deepseek_v4.hf_snapshot:
    repo_id: deepseek-ai/DeepSeek-V4-Flash
    cache_dir: /mnt/shared/huggingface
    download: false
"""

RETURN = r"""
snapshot_path:
  description: Directory of the snapshot (what a model path resolves to in the cache).
  returned: success
  type: str
  sample: /root/.cache/huggingface/hub/models--deepseek-ai--DeepSeek-V4-Flash/snapshots/0123456789abcdef0123456789abcdef01234567
revision:
  description: Commit hash the requested revision resolved to.
  returned: success
  type: str
  sample: 0123456789abcdef0123456789abcdef01234567
files:
  description: Repository paths provisioned (after O(allow_patterns)).
  returned: success
  type: list
  elements: str
  sample: [config.json, model-00001-of-00046.safetensors, model.safetensors.index.json]
bytes_downloaded:
  description: Bytes of the files fetched from the Hub by this run (0 when nothing was missing or in check mode).
  returned: success
  type: int
  sample: 0
bytes_total:
  description: Total size of the provisioned files.
  returned: success
  type: int
  sample: 160000000000
files_downloaded:
  description: Files fetched from the Hub by this run.
  returned: success
  type: list
  elements: str
files_from_mirror:
  description: Files linked or copied from O(mirror_dir) by this run.
  returned: success
  type: list
  elements: str
repaired:
  description: Corrupted or truncated files that were removed and fetched again.
  returned: success
  type: list
  elements: str
files_to_download:
  description: Files that are (or in check mode would be) fetched from the Hub.
  returned: when the Hub was contacted
  type: list
  elements: str
bytes_to_download:
  description: Bytes that are (or in check mode would be) fetched from the Hub.
  returned: when the Hub was contacted
  type: int
files_to_link:
  description: Files that are (or in check mode would be) taken from O(mirror_dir).
  returned: when the Hub was contacted
  type: list
  elements: str
corrupted:
  description: Files found corrupted or truncated before the transfer (also set on failure).
  returned: when the Hub was contacted, or on failure
  type: list
  elements: str
disk:
  description: Free-space check; C(path) is the existing directory whose filesystem was measured.
  returned: when the Hub was contacted
  type: dict
  sample: {path: /root/.cache/huggingface, free_bytes: 200000000000, needed_bytes: 160000000000,
           min_free_bytes: 1073741824}
shards:
  description: Number of distinct shards in the C(weight_map) of C(model.safetensors.index.json).
  returned: success
  type: int
  sample: 46
network:
  description: Whether the Hub was contacted.
  returned: success
  type: bool
source:
  description: C(local) (decided from the verification record, no network), C(hub), or C(offline) (O(offline_ok)).
  returned: success, except in check mode when the Hub was contacted
  type: str
cache_dir:
  description: Absolute O(cache_dir).
  returned: success
  type: str
hub_cache:
  description: The C(hub) directory inside O(cache_dir) (E(HF_HUB_CACHE) for the engines).
  returned: success
  type: str
needed_bytes:
  description: Bytes needed (missing files plus copies from the mirror) when the free-space check failed.
  returned: failure of the free-space check
  type: int
free_bytes:
  description: Free bytes found when the free-space check failed.
  returned: failure of the free-space check
  type: int
resumed:
  description: Files finished from the partial file an interrupted run left, with the bytes that were already there.
  returned: when the Hub was contacted, except in check mode
  type: list
  elements: dict
  sample: [{file: model-00007-of-00046.safetensors, from_bytes: 1073741824}]
stalled:
  description: The transfer stalled (no new byte for O(stall_timeout) seconds); the module stopped.
  returned: failure by a stall
  type: bool
progress:
  description: The last state of the progress file when the transfer stalled (C(done), C(total), C(item), C(idle)).
  returned: failure by a stall
  type: dict
"""

import os
import socket
import sys
from typing import Any, Callable, NoReturn, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.inference.deepseek_v4.plugins.module_utils._progress import Reporter, human_bytes
from ansible_collections.inference.deepseek_v4.plugins.module_utils.hf_snapshot_utils import (
    SnapshotError,
    hub_import_error,
    provision,
)


def _scrub(value: Any, secret: Optional[str]) -> Any:
    """Remove ``secret`` from every string of ``value`` (Ansible's no_log masking is the first line of defence)."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, "********")
    if isinstance(value, dict):
        return dict((k, _scrub(v, secret)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secret) for v in value]
    return value


def _stall_handler(module: AnsibleModule) -> Callable[[dict[str, Any]], NoReturn]:
    """What the progress thread calls when no byte arrived for stall_timeout seconds: fail the module with the file
    that stalled and the fix, and end the process at once. The transfer threads are stopped with it, so that
    huggingface_hub does not remove the partial file: the next run resumes it."""
    params = module.params

    def on_stall(state: dict[str, Any]) -> NoReturn:
        item = state.get("item") or "the next file (none had started)"
        where = params.get("endpoint") or os.environ.get("HF_ENDPOINT") or "the Hugging Face Hub"
        msg = (
            "The download of %s@%s stalled on %s: no new byte for %d s while fetching %s (%s of %s in the cache). "
            "Fix: check this host's route to %s (proxy, firewall, DNS, the Hub's status page), then run the play "
            "again: complete files are kept and the partial file resumes where it stopped. A link that is only slow "
            "needs a longer stall_timeout." % (
                params["repo_id"], params.get("revision") or "main", socket.gethostname(), int(state.get("idle") or 0),
                item, human_bytes(state.get("done")), human_bytes(state.get("total")), where))
        try:
            module.fail_json(msg=msg, stalled=True, progress=state)
        except SystemExit:
            pass
        sys.stdout.flush()
        os._exit(1)  # pylint: disable=protected-access

    return on_stall


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            repo_id=dict(type="str", required=True),
            revision=dict(type="str"),
            cache_dir=dict(type="path", required=True),
            token=dict(type="str", no_log=True),
            endpoint=dict(type="str"),
            allow_patterns=dict(type="list", elements="str"),
            mirror_dir=dict(type="path"),
            min_free_bytes=dict(type="int", default=1073741824),
            verify=dict(type="str", choices=["none", "size", "sha256"], default="size"),
            offline_ok=dict(type="bool", default=False),
            download=dict(type="bool", default=True),
            repair=dict(type="bool", default=True),
            max_workers=dict(type="int", default=8),
            store_token=dict(type="bool", default=False),
            progress_file=dict(type="path"),
            stall_timeout=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    token = module.params["token"] or None
    stall_timeout = max(int(module.params["stall_timeout"] or 0), 0)
    if stall_timeout:
        # huggingface_hub retries a read that times out, then removes the partial file: let the stall watch decide.
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(stall_timeout + 60))
    error = hub_import_error()
    if error is not None:
        module.fail_json(msg=missing_required_lib("huggingface_hub"), exception=error)

    reporter = None
    if (module.params["progress_file"] or stall_timeout) and not module.check_mode:
        reporter = Reporter(module.params["progress_file"], module.params["repo_id"], stall_timeout=stall_timeout,
                            on_stall=_stall_handler(module)).start()
    result = None
    try:
        result = provision(module.params, check_mode=module.check_mode, reporter=reporter)
    except SnapshotError as exc:
        details = _scrub(exc.details, token)
        module.fail_json(msg=_scrub(exc.msg, token), **details)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg=_scrub("hf_snapshot failed: %s: %s" % (type(exc).__name__, exc), token))
    finally:
        if reporter is not None:
            reporter.finish("done" if result is not None else "failed")

    for warning in result.pop("warnings", []):
        module.warn(_scrub(warning, token))
    module.exit_json(**_scrub(result, token))


if __name__ == "__main__":
    main()
