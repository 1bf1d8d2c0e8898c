#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: chat_probe
short_description: Send one chat completion to an OpenAI-compatible endpoint with the OpenAI client
version_added: 0.1.0
description:
  - Sends one chat completion request to an OpenAI-compatible endpoint (vllm-router or a vLLM engine) with the
    official C(openai) Python client, streaming, and reports the answer, the reasoning content, latency and time to
    first token.
  - Reasoning modes of DeepSeek-V4 are selected with O(chat_template_kwargs), for example C(thinking=true) with
    C(reasoning_effort=high) for Think High and C(reasoning_effort=max) for Think Max.
  - Optionally checks the answer against an expected value.
  - Run it with an interpreter that has the C(openai) package, for example a virtualenv on the target.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.target_module
attributes:
  check_mode:
    support: full
    details: In check mode no request is sent and the probe reports itself skipped.
  platform:
    details: Runs on any host that reaches the endpoint.
options:
  base_url:
    description: Base URL of the OpenAI API, ending in C(/v1).
    type: str
    required: true
  api_key:
    description: API key sent as a bearer token. Never returned or logged.
    type: str
    default: EMPTY
  model:
    description: Model name. When omitted, the first model of C(/v1/models) is used.
    type: str
  prompt:
    description: The user message.
    type: str
    required: true
  chat_template_kwargs:
    description: Sent as C(chat_template_kwargs) in the request body (the OpenAI client's C(extra_body)).
    type: dict
  max_tokens:
    description: Upper bound of generated tokens (reasoning included).
    type: int
  temperature:
    description: Sampling temperature.
    type: float
  top_p:
    description: Nucleus sampling.
    type: float
  stream:
    description: Stream the answer; needed to measure the time to first token.
    type: bool
    default: true
  timeout:
    description: Request timeout in seconds.
    type: float
    default: 600
  expected:
    description:
      - Expected answer. The probe passes when the answer, stripped, equals it or contains it as a separate word.
      - Omit to skip the check.
    type: str
  require_reasoning:
    description: Fail when the response has no reasoning content.
    type: bool
    default: false
requirements:
  - openai >= 1.0
notes:
  - The module fails on request errors, on an empty response, on a missing reasoning content when
    O(require_reasoning=true), and on a wrong answer when O(expected) is set.
"""

EXAMPLES = r"""
- name: Think High through the router
  inference.deepseek_v4.chat_probe:
    base_url: http://127.0.0.1:30000/v1
    model: deepseek-ai/DeepSeek-V4-Flash
    prompt: What is 17*19? Return only the final integer.
    chat_template_kwargs:
      thinking: true
      reasoning_effort: high
    expected: "323"
    require_reasoning: true
  vars:
    ansible_python_interpreter: /opt/deepseek-v4/smoke-venv/bin/python
  register: probe

- name: Non-think without answer check
  inference.deepseek_v4.chat_probe:
    base_url: http://127.0.0.1:8000/v1
    prompt: Hello
    max_tokens: 16
"""

RETURN = r"""
model:
  description: Model that answered.
  returned: success
  type: str
  sample: deepseek-ai/DeepSeek-V4-Flash
content:
  description: The answer (message content).
  returned: success
  type: str
  sample: "323"
reasoning:
  description: The reasoning content (empty when the endpoint returned none).
  returned: success
  type: str
has_reasoning:
  description: Whether reasoning content came back.
  returned: success
  type: bool
finish_reason:
  description: Finish reason of the first choice.
  returned: success
  type: str
  sample: stop
usage:
  description: Token usage as the endpoint reported it (may be empty).
  returned: success
  type: dict
  sample: {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
latency_s:
  description: Seconds from sending the request to the end of the response.
  returned: success
  type: float
ttft_s:
  description: Seconds to the first streamed token (content or reasoning); null without streaming.
  returned: success
  type: float
answer_ok:
  description: Whether the answer matched O(expected); null when no answer was expected.
  returned: success
  type: bool
"""

import re
import time
import traceback
from typing import Any, Mapping, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import openai
    from openai import OpenAI
except ImportError:
    OPENAI_IMPORT_ERROR = traceback.format_exc()
    openai = None
else:
    OPENAI_IMPORT_ERROR = None


def _reasoning_of(obj: Any) -> str:
    """vLLM names the field `reasoning` (newer) or `reasoning_content` (older)."""
    for field in ("reasoning_content", "reasoning"):
        value = getattr(obj, field, None)
        if value is None:
            extra = getattr(obj, "model_extra", None) or {}
            value = extra.get(field)
        if value:
            return value
    return ""


def _answer_matches(content: str, expected: str) -> bool:
    text = content.strip()
    if text == expected.strip():
        return True
    return re.search(r"(?<![\w.])" + re.escape(expected.strip()) + r"(?![\w.])", text) is not None


def _model(module: AnsibleModule, client: OpenAI) -> str:
    """The model asked for, else the first one the endpoint lists."""
    p = module.params
    if p["model"]:
        return p["model"]
    models = client.models.list()
    if not models.data:
        module.fail_json(msg="%s/models lists no model" % p["base_url"].rstrip("/"))
    return models.data[0].id


# Sampling parameters passed on to the request when set.
SAMPLING_PARAMS = ("max_tokens", "temperature", "top_p")


def _request(p: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Keyword arguments of ``chat.completions.create``: one user message, the sampling parameters set, the chat
    template arguments."""
    kwargs = dict(model=model, messages=[{"role": "user", "content": p["prompt"]}])
    for name in SAMPLING_PARAMS:
        if p[name] is not None:
            kwargs[name] = p[name]
    if p["chat_template_kwargs"]:
        kwargs["extra_body"] = {"chat_template_kwargs": p["chat_template_kwargs"]}
    return kwargs


class _Answer(object):
    """The answer as it comes back: pieces of content and reasoning, finish reason, usage, time to first token."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.content, self.reasoning = [], []
        self.finish_reason, self.usage, self.ttft = None, {}, None


def _streamed(client: OpenAI, kwargs: dict[str, Any], answer: _Answer, start: float) -> None:
    kwargs["stream"] = True
    kwargs["stream_options"] = {"include_usage": True}
    for chunk in client.chat.completions.create(**kwargs):
        answer.model = getattr(chunk, "model", None) or answer.model
        if getattr(chunk, "usage", None):
            answer.usage = chunk.usage.model_dump()
        for choice in chunk.choices or []:
            delta = choice.delta
            piece = getattr(delta, "content", None) or ""
            thought = _reasoning_of(delta)
            if (piece or thought) and answer.ttft is None:
                answer.ttft = time.monotonic() - start
            answer.content.append(piece)
            answer.reasoning.append(thought)
            if choice.finish_reason:
                answer.finish_reason = choice.finish_reason


def _whole(client: OpenAI, kwargs: dict[str, Any], answer: _Answer) -> None:
    resp = client.chat.completions.create(**kwargs)
    answer.model = resp.model or answer.model
    answer.usage = resp.usage.model_dump() if resp.usage else {}
    if resp.choices:
        message = resp.choices[0].message
        answer.content.append(message.content or "")
        answer.reasoning.append(_reasoning_of(message))
        answer.finish_reason = resp.choices[0].finish_reason


def _result(answer: _Answer, latency: float) -> dict[str, Any]:
    result = dict(
        changed=False,
        model=answer.model,
        content="".join(answer.content),
        reasoning="".join(answer.reasoning),
        finish_reason=answer.finish_reason,
        usage=answer.usage,
        latency_s=round(latency, 3),
        ttft_s=round(answer.ttft, 3) if answer.ttft is not None else None,
        answer_ok=None,
    )
    result["has_reasoning"] = bool(result["reasoning"].strip())
    return result


# Checks of the result, in order: each returns the failure message, or None when the check passes.

def _empty_answer(p: Mapping[str, Any], result: dict[str, Any]) -> Optional[str]:
    if not result["content"].strip() and not result["has_reasoning"]:
        return "the endpoint returned an empty answer (finish_reason %s)" % result["finish_reason"]
    return None


def _missing_reasoning(p: Mapping[str, Any], result: dict[str, Any]) -> Optional[str]:
    if p["require_reasoning"] and not result["has_reasoning"]:
        return "no reasoning content in the response, though a reasoning mode was requested"
    return None


def _wrong_answer(p: Mapping[str, Any], result: dict[str, Any]) -> Optional[str]:
    """Sets ``answer_ok`` when an answer is expected."""
    if p["expected"] is None:
        return None
    result["answer_ok"] = _answer_matches(result["content"], p["expected"])
    if not result["answer_ok"]:
        return "answer %r does not match the expected %r" % (result["content"].strip()[:200], p["expected"])
    return None


ANSWER_CHECKS = (_empty_answer, _missing_reasoning, _wrong_answer)


def run(module: AnsibleModule) -> None:
    p = module.params
    client = OpenAI(base_url=p["base_url"], api_key=p["api_key"] or "EMPTY", timeout=p["timeout"], max_retries=0)
    model = _model(module, client)
    kwargs = _request(p, model)
    answer = _Answer(model)
    start = time.monotonic()
    if p["stream"]:
        _streamed(client, kwargs, answer, start)
    else:
        _whole(client, kwargs, answer)
    result = _result(answer, time.monotonic() - start)
    for check in ANSWER_CHECKS:
        msg = check(p, result)
        if msg:
            module.fail_json(msg=msg, **result)
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", default="EMPTY", no_log=True),
            model=dict(type="str"),
            prompt=dict(type="str", required=True),
            chat_template_kwargs=dict(type="dict"),
            max_tokens=dict(type="int", no_log=False),
            temperature=dict(type="float"),
            top_p=dict(type="float"),
            stream=dict(type="bool", default=True),
            timeout=dict(type="float", default=600),
            expected=dict(type="str"),
            require_reasoning=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no request sent")
    if openai is None:
        module.fail_json(msg=missing_required_lib("openai"), exception=OPENAI_IMPORT_ERROR)
    try:
        run(module)
    except openai.APIError as e:
        module.fail_json(msg="request to %s failed: %s" % (module.params["base_url"], e), exception=traceback.format_exc())


if __name__ == "__main__":
    main()
