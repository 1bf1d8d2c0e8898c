#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_pull
short_description: Pull container images through the Docker API, writing the pull's progress to a file
version_added: 0.2.0
description:
  - Pulls each image of O(name) that is not on the host (O(pull=missing)) or every one (O(pull=always)) with the
    Docker Engine API (C(POST /images/create), what C(docker pull) does), one after the other.
  - Reads the daemon's streamed progress as it comes. With O(progress_file), rewrites that small JSON file every
    second (bytes of the layers downloaded of the sizes known so far, the rate of the last 30 s, the layer that
    moves), for a play that runs the module in the background (C(async), C(poll=0)) and follows it with
    M(inference.deepseek_v4.async_progress). A layer's size is known once its download starts, so the total grows
    while the pull runs.
  - When neither a download nor an extraction moves for O(stall_timeout) seconds, the module stops (closing the
    connection cancels the daemon's pull) and fails naming the image, the layer and the fix. The layers already
    pulled stay; the next run pulls only the others.
  - Registry credentials come from the C(auths) of the Docker client configuration of the user the module runs as
    (E(DOCKER_CONFIG)/C(config.json), else C(~/.docker/config.json)), as C(docker login) writes them; credential
    helpers are not called.
  - Talks to the Docker Engine API with Python's standard library; the host needs no Docker SDK and no C(requests).
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._docker_api
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.target_module
attributes:
  check_mode:
    support: full
    details: Reports the images that would be pulled; pulls nothing.
  platform:
    details: Hosts with a Docker daemon.
options:
  name:
    description: Image references (C(repository[:tag]) or C(repository@sha256:digest)); C(latest) when no tag is given.
    type: list
    elements: str
    required: true
  pull:
    description:
      - V(missing) pulls only the images not on the host; V(always) asks the registry for each (a current image
        transfers nothing).
    type: str
    choices: [missing, always]
    default: missing
  progress_file:
    description: Path of the progress file (JSON, rewritten atomically every second during the pull); not written when unset.
    type: path
  stall_timeout:
    description:
      - Seconds without a downloaded or extracted byte after which the pull stops and the module fails (V(0) never).
      - When set, a read of the daemon's stream waits this long plus 60 s (else O(timeout) x 10).
    type: int
    default: 0
  tag:
    description:
      - Reference of O(name) -> C(repository:tag) to point at that image once it is here, where the tag names another
        image or none (what C(docker tag) does), since a pull by digest leaves the tag as it was. Counts as a change.
    type: dict
"""

EXAMPLES = r"""
- name: Pull the engine image in the background
  inference.deepseek_v4.image_pull:
    name:
      - vllm/vllm-openai:v0.20.0
    progress_file: ~/.cache/inference.deepseek_v4/image-pull.json
    stall_timeout: 300
  async: 7200
  poll: 0
  register: pull_job

- name: Follow it, a line per host every 30 s
  inference.deepseek_v4.async_progress:
    jid: "{{ pull_job.ansible_job_id }}"
    progress_file: ~/.cache/inference.deepseek_v4/image-pull.json
"""

RETURN = r"""
images:
  description:
    - Each image of O(name), in order, with whether it was (or in check mode would be) pulled, its image ID and its
      registry digests (C(RepoDigests), after the pull; before it in check mode), and in C(tagged) the tag of O(tag)
      that was (or would be) pointed at it.
  returned: always
  type: list
  elements: dict
  sample: [{name: "vllm/vllm-openai:v0.20.0", pulled: true, id: "sha256:0123...", digests: ["vllm/vllm-openai@sha256:abcd..."],
            status: "Status: Downloaded newer image for vllm/vllm-openai:v0.20.0"}]
bytes_downloaded:
  description: Bytes of the layers downloaded by this run (as the daemon reports them).
  returned: always
  type: int
stalled:
  description: The pull stalled (nothing moved for O(stall_timeout) seconds); the module stopped.
  returned: failure by a stall
  type: bool
progress:
  description: The last state of the progress file when the pull stalled.
  returned: failure by a stall
  type: dict
"""

import json
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Mapping, NoReturn, Optional
from urllib.parse import quote

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.inference.deepseek_v4.plugins.module_utils._docker_api import (
    DockerError,
    DEFAULT_TIMEOUT,
    DockerClient,
    run_module,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._progress import Reporter, human_bytes
from ansible_collections.inference.deepseek_v4.plugins.module_utils._registry import (
    registry_auth,
    split_reference,
)

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


class PullProgress(object):
    """The layers of the pulls of this run, as the daemon's progress messages describe them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.layers = {}
        self.image = None

    def event(self, image: str, message: Mapping[str, Any]) -> None:
        layer_id = message.get("id")
        status = message.get("status") or ""
        detail = message.get("progressDetail") or {}
        if not layer_id or status.startswith(("Pulling from", "Digest:", "Status:")):
            return
        with self.lock:
            self.image = image
            fresh = {"total": None, "downloaded": 0, "extracted": 0, "status": status, "present": False}
            layer = self.layers.setdefault((image, layer_id), fresh)
            layer["status"] = status
            if status == "Already exists":
                layer["present"] = True
            elif status == "Downloading" and detail.get("total"):
                layer["total"] = int(detail["total"])
                layer["downloaded"] = int(detail.get("current") or 0)
            elif status in ("Verifying Checksum", "Download complete") and layer["total"]:
                layer["downloaded"] = layer["total"]
            elif status == "Extracting":
                if detail.get("total"):
                    layer["total"] = layer["total"] or int(detail["total"])
                layer["downloaded"] = layer["total"] or layer["downloaded"]
                layer["extracted"] = int(detail.get("current") or 0)
            elif status == "Pull complete":
                layer["downloaded"] = layer["total"] or layer["downloaded"]
                layer["extracted"] = layer["total"] or layer["extracted"]

    def sample(self) -> dict[str, Any]:
        with self.lock:
            layers = [(key, dict(value)) for key, value in self.layers.items() if not value["present"]]
            image = self.image
        done = sum(layer["downloaded"] for _key, layer in layers)
        total = sum(layer["total"] or 0 for _key, layer in layers)
        moving = [(key, layer) for key, layer in layers if layer["status"] in ("Downloading", "Extracting")]
        complete = len([1 for _key, layer in layers if layer["status"] == "Pull complete"])
        item = None
        if moving:
            (image_name, layer_id), layer = moving[-1]
            item = "%s layer %s %s" % (image_name, layer_id, layer["status"].lower())
        elif image:
            item = image
        if layers:
            item = "%s; %d of %d layers complete" % (item, complete, len(layers))
        return {"done": done, "total": total, "item": item,
                "total_partial": any(layer["total"] is None for _key, layer in layers),
                "activity": done + sum(layer["extracted"] for _key, layer in layers)}


def _stall_handler(module: AnsibleModule,
                   state_of: Callable[[], tuple[str, Optional[str]]]) -> Callable[[dict[str, Any]], NoReturn]:
    def on_stall(state: dict[str, Any]) -> NoReturn:
        image, layer = state_of()
        msg = (
            "The pull of %s stalled on %s: nothing downloaded or extracted for %d s (%s; %s of %s known so far). "
            "Fix: check this host's route to the registry %s (the Docker daemon's proxy settings, firewall, DNS, "
            "the registry's status) and the daemon's disk (docker system df), then run the play again: the layers "
            "already pulled stay. A link that is only slow needs a longer stall_timeout." % (
                image, socket.gethostname(), int(state.get("idle") or 0), layer or "no layer had started",
                human_bytes(state.get("done")), human_bytes(state.get("total")), split_reference(image)[2]))
        try:
            module.fail_json(msg=msg, stalled=True, progress=state)
        except SystemExit:
            pass
        sys.stdout.flush()
        os._exit(1)  # pylint: disable=protected-access

    return on_stall


def _pull(client: DockerClient, name: str, progress: PullProgress, read_timeout: float) -> Optional[str]:
    """Pull one image, feeding ``progress``; returns the daemon's last status line."""
    repository, tag, registry = split_reference(name)
    headers = {}
    auth = registry_auth(registry)
    if auth:
        headers["X-Registry-Auth"] = auth
    connection, response = client.open_stream("POST", "/images/create", {"fromImage": repository, "tag": tag},
                                              headers=headers, timeout=read_timeout)
    last = None
    try:
        if response.status >= 400:
            body = response.read().decode("utf-8", "replace")
            try:
                body = json.loads(body).get("message") or body
            except (ValueError, AttributeError):
                pass
            raise DockerError("Docker could not pull {0}: {1} {2}".format(name, response.status, body.strip()),
                              status=response.status)
        while True:
            line = response.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            if message.get("error"):
                raise DockerError("Docker could not pull {0}: {1}".format(
                    name, (message.get("errorDetail") or {}).get("message") or message["error"]))
            progress.event(name, message)
            if message.get("status"):
                last = message["status"]
    except (OSError, socket.timeout) as e:
        raise DockerError("the pull of {0} broke off: {1}".format(name, to_native(e)))
    finally:
        connection.close()
    return last


def _tag_all(client: DockerClient, images: list[dict[str, Any]], tags: Mapping[str, str], check_mode: bool) -> bool:
    """Point each tag of ``tags`` (reference -> repository:tag) at its pulled image where it points elsewhere (or
    nowhere); returns whether one moved. A pull by digest leaves the tag as it was: the tag then names what runs."""
    moved = False
    for image in images:
        target = tags.get(image["name"])
        if not target or not image.get("id"):
            continue
        current = client.inspect_image(target)
        if current is not None and current.get("Id") == image["id"]:
            continue
        image["tagged"] = target
        moved = True
        if check_mode:
            continue
        repository, tag, _registry = split_reference(target)
        connection, response = client.open_stream("POST", "/images/{0}/tag".format(quote(image["name"], safe="/:@")),
                                                  {"repo": repository, "tag": tag})
        try:
            body = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        if response.status >= 400:
            raise DockerError("Docker could not tag {0} as {1}: {2} {3}".format(
                image["name"], target, response.status, body.strip()), status=response.status)
    return moved


def run(module: AnsibleModule) -> None:
    params = module.params
    client = DockerClient(params)
    stall_timeout = max(int(params["stall_timeout"] or 0), 0)
    read_timeout = stall_timeout + 60 if stall_timeout else (params.get("timeout") or DEFAULT_TIMEOUT) * 10
    images = []
    for name in params["name"]:
        present = client.inspect_image(name)
        images.append({"name": name, "pulled": params["pull"] == "always" or present is None,
                       "id": (present or {}).get("Id"), "digests": (present or {}).get("RepoDigests") or []})
    wanted = [image for image in images if image["pulled"]]
    if module.check_mode or not wanted:
        tagged = _tag_all(client, images, params["tag"] or {}, module.check_mode)
        module.exit_json(changed=bool(wanted) or tagged, images=images, bytes_downloaded=0)

    progress = PullProgress()
    current = {"name": wanted[0]["name"]}

    def state_of() -> tuple[str, Optional[str]]:
        return current["name"], progress.sample().get("item")

    reporter = None
    if params["progress_file"] or stall_timeout:
        reporter = Reporter(params["progress_file"], ", ".join(image["name"] for image in wanted),
                            stall_timeout=stall_timeout, on_stall=_stall_handler(module, state_of)).start()
        reporter.transfer(progress.sample)
    ok = False
    try:
        for image in wanted:
            current["name"] = image["name"]
            image["status"] = _pull(client, image["name"], progress, read_timeout)
            after = client.inspect_image(image["name"]) or {}
            image["pulled"] = after.get("Id") != image["id"]
            image["id"] = after.get("Id")
            image["digests"] = after.get("RepoDigests") or []
        ok = True
    finally:
        if reporter is not None:
            reporter.finish("done" if ok else "failed")
    tagged = _tag_all(client, images, params["tag"] or {}, False)
    module.exit_json(changed=any(image["pulled"] for image in images) or tagged, images=images,
                     bytes_downloaded=progress.sample()["done"])


def main() -> None:
    run_module(dict(
        name=dict(type="list", elements="str", required=True),
        pull=dict(type="str", choices=["missing", "always"], default="missing"),
        progress_file=dict(type="path"),
        stall_timeout=dict(type="int", default=0),
        tag=dict(type="dict"),
    ), run)


if __name__ == "__main__":
    main()
