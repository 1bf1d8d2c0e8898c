#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: service_health_info
short_description: Wait for a service's health URL, and give up at once when its container will never answer
version_added: 0.1.0
description:
  - Polls a health URL every O(delay) seconds for up to O(wait) seconds, until it answers O(status_code).
  - With O(container), reads that container's state through the Docker API after each unanswered poll. A container
    that is not running (C(exited), C(dead), C(created)), missing, restarting, or restarted more than
    O(restarts_allowed) times since the wait began will not answer however long one waits, so the module returns at
    once with that status instead of waiting out the time.
  - The C(vllm_engine) role calls it in a loop, one call per progress line, and fails as soon as the status is not
    C(starting) or C(healthy). A vLLM engine given a flag it refuses exits within seconds and Docker's restart policy
    starts it again and again; without this check the rollout would wait the whole readiness timeout (an hour by
    default) for it.
  - Without O(container) no Docker daemon is needed.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._docker_api
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
attributes:
  platform:
    details: Linux hosts that reach the URL; with O(container), hosts with a Docker daemon.
options:
  url:
    description: The health URL.
    type: str
    required: true
  status_code:
    description: The HTTP status that means healthy.
    type: int
    default: 200
  wait:
    description: Seconds to poll at most in this call. V(0) polls once.
    type: int
    default: 0
  delay:
    description: Seconds between polls.
    type: int
    default: 5
  request_timeout:
    description: Seconds each request may take.
    type: int
    default: 5
  container:
    description: Name of the container that serves O(url). Omitted, only the URL is polled.
    type: str
  restart_count:
    description:
      - The container's restart count when the whole wait began (RV(restart_count) of the first call). Omitted, the
        count at this call's first poll is used.
    type: int
  restarts_allowed:
    description: Restarts of the container since the wait began that still count as C(starting).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Wait up to 10 minutes for the prefill engine, giving up when it crash-loops
  inference.deepseek_v4.service_health_info:
    url: http://127.0.0.1:8000/health
    container: deepseek-v4-prefill
    wait: 600
    delay: 10
  register: health
  failed_when: health.status != 'healthy'

- name: Probe the router once
  inference.deepseek_v4.service_health_info:
    url: http://127.0.0.1:30000/readiness
  register: router
"""

RETURN = r"""
status:
  description:
    - C(healthy) (the URL answered O(status_code)), C(starting) (not yet, the container runs), C(crash_looping),
      C(stopped) or C(missing) (the container will not answer).
  returned: always
  type: str
  sample: crash_looping
healthy:
  description: Whether the status is C(healthy).
  returned: always
  type: bool
msg:
  description: Why the wait ended, in one sentence.
  returned: always
  type: str
  sample: "the container restarted 1 time(s) since the wait began (now running): it crashes while starting"
answer:
  description: The last HTTP status, or the last connection error.
  returned: always
  type: raw
  sample: 503
waited:
  description: Seconds this call waited.
  returned: always
  type: float
restart_count:
  description: The container's restart count when the wait began; pass it to the next call as O(restart_count).
  returned: when O(container) is set and the container exists
  type: int
container_state:
  description: The container's C(State) as Docker reports it at the last poll.
  returned: when O(container) is set
  type: dict
  sample: {"Status": "restarting", "ExitCode": 2, "OOMKilled": false}
"""

from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Union

from ansible.module_utils.urls import open_url

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api, _service_health

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True),
    status_code=dict(type="int", default=200),
    wait=dict(type="int", default=0),
    delay=dict(type="int", default=5),
    request_timeout=dict(type="int", default=5),
    container=dict(type="str"),
    restart_count=dict(type="int"),
    restarts_allowed=dict(type="int", default=0),
)


def _probe(params: Mapping[str, Any]) -> Callable[[], tuple[bool, Union[int, str]]]:
    def probe() -> tuple[bool, Union[int, str]]:
        try:
            code = open_url(params["url"], timeout=params["request_timeout"], validate_certs=False).getcode()
        except Exception as e:  # an HTTP error carries its status; anything else is the answer itself
            code = getattr(e, "code", None) or str(e)
        return code == params["status_code"], code
    return probe


def _inspector(params: Mapping[str, Any]) -> Callable[[], Union[dict[str, Any], None, Literal[False]]]:
    if not params["container"]:
        return lambda: False
    # The Docker daemon is contacted only where a container is watched: the router's host need not run Docker.
    client = _docker_api.DockerClient(params)
    return lambda: client.inspect_container(params["container"])


def run(module: AnsibleModule) -> None:
    params = module.params
    got = _service_health.wait(_probe(params), _inspector(params), max(params["wait"], 0), max(params["delay"], 1),
                               baseline=params["restart_count"], allowed=params["restarts_allowed"])
    result = dict(changed=False, status=got["status"], healthy=got["status"] == "healthy", answer=got["answer"],
                  waited=round(got["waited"], 1),
                  msg=_service_health.explain(got["status"], got["container"] or None, got["baseline"],
                                              params["url"], got["waited"]))
    if params["container"]:
        result["container_state"] = (got["container"] or {}).get("State", {})
        if got["baseline"] is not None:
            result["restart_count"] = got["baseline"]
    module.exit_json(**result)


def main() -> None:
    _docker_api.run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
