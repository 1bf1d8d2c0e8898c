# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""One problem shape for every check of the collection: the serving plan, GPU preflight, RDMA.

A problem names what is wrong (``variable``: the setting that produced the value, or ``check``: the host check
that failed), the value ``found``, what is ``needed``, the ``fix``, and the ``host`` (None for the whole plan).
A value that holds a secret never reaches a problem: ``found`` is redacted when the problem is made (the values of
environment names and flags that name a secret, and strings shaped like a known kind of token), whichever check
made it. Pure Python, no Ansible imports.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping, Optional

HIDDEN = "<hidden>"
# Environment names that hold a secret by convention (*_KEY, *_TOKEN, *SECRET*, *PASSWORD*, *PASSWD*, *CREDENTIAL*:
# HF_TOKEN, NGC_API_KEY, WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ...), matched without regard to case.
_SECRET_ENV_NAME = re.compile(r"(^|_)(KEY|TOKEN)$|SECRET|PASSWORD|PASSWD|CREDENTIAL|(^|_)(API_?KEY|PRIVATE_?KEY|"
                              r"ACCESS_?KEY)(_|$)", re.IGNORECASE)
# Flags whose value is a secret (--api-key, --hf-token, --*-secret, --*-password, ...), by their long name.
_SECRET_FLAG_NAME = re.compile(r"(^|-)(key|token)$|secret|password|passwd|credential", re.IGNORECASE)
# Values shaped like a token of a known kind (Hugging Face, OpenAI-style keys, NVIDIA, GitHub, AWS access key ids).
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{16,}|nvapi-[A-Za-z0-9_-]{16,}|"
                          r"gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})")


def secret_env_name(name: Any) -> bool:
    """Whether an environment variable of this name holds a secret by convention."""
    return bool(_SECRET_ENV_NAME.search(str(name)))


def secret_flag(token: Any) -> bool:
    """Whether a command-line token is a flag whose value is a secret (``--api-key`` or ``--api-key=...``)."""
    token = str(token)
    if not token.startswith("-"):
        return False
    return bool(_SECRET_FLAG_NAME.search(token.split("=", 1)[0].lstrip("-").replace("_", "-")))


_CONTROL = re.compile(u"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """Text with its control characters written as escapes (a value quoted in a message cannot break its line)."""
    return _CONTROL.sub(lambda m: json.dumps(m.group(0))[1:-1], text)


def token_shaped(text: Any) -> bool:
    """Whether a string holds something shaped like a token of a known kind (hf_..., sk-..., nvapi-..., ghp_...)."""
    return bool(_TOKEN_SHAPE.search(str(text)))


def redact(value: Any) -> Any:
    """The value with every secret in it replaced by <hidden>: values of secret environment names (a mapping's, or
    NAME=value), the value after or in a secret flag, and strings shaped like tokens."""
    if isinstance(value, dict):
        return {k: HIDDEN if secret_env_name(k) or secret_flag(k) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out, hide_next = [], False
        for item in value:
            out.append(HIDDEN if hide_next else redact(item))
            hide_next = secret_flag(item) and "=" not in str(item)
        return out
    if isinstance(value, str):
        name, sep, _rest = value.partition("=")
        if sep and (secret_flag(name) or (not name.startswith("-") and secret_env_name(name))):
            return "%s=%s" % (name, HIDDEN)
        return _TOKEN_SHAPE.sub(HIDDEN, value)
    return value


class Problem(object):
    """One thing wrong with the inventory or a host."""

    __slots__ = ("variable", "check", "found", "needed", "message", "fix", "host")

    def __init__(self, variable: Optional[str], found: Any, message: Optional[str], fix: Optional[str],
                 host: Optional[str] = None, needed: Any = None, check: Optional[str] = None) -> None:
        self.variable = one_line(variable) if isinstance(variable, str) else variable
        self.check = check
        self.found = redact(found)
        self.needed = needed
        self.message = one_line(_TOKEN_SHAPE.sub(HIDDEN, message)) if isinstance(message, str) else message
        self.fix = one_line(fix) if isinstance(fix, str) else fix
        self.host = one_line(host) if isinstance(host, str) else host

    @property
    def subject(self) -> Optional[str]:
        """The variable a user changes, else the check that failed."""
        return self.variable or self.check

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "variable": self.variable, "check": self.check, "found": self.found,
                "needed": self.needed, "message": self.message, "fix": self.fix}

    def __str__(self) -> str:
        where = "host %s: " % self.host if self.host else ""
        if self.variable:
            head = "%s=%s: %s" % (self.variable, json.dumps(self.found, default=str), self.message or "")
        else:
            head = "%s: found %s" % (self.check, self.found)
        needed = "" if self.needed is None or self.variable else "; needed %s" % (self.needed,)
        return "%s%s%s Fix: %s" % (where, head.rstrip(), needed, self.fix)


def from_dict(data: Mapping[str, Any]) -> Problem:
    """The Problem a module returned as a dict."""
    return Problem(data.get("variable"), data.get("found"), data.get("message"), data.get("fix"),
                   host=data.get("host"), needed=data.get("needed"), check=data.get("check"))


def summary(problems: Iterable[Problem], what: str = "The serving plan was refused",
            consequence: str = "no host was changed") -> str:
    """Every problem at once, one line each, under a counted heading."""
    problems = list(problems)
    lines = ["%s (%d problem%s); %s:" % (what, len(problems), "" if len(problems) == 1 else "s", consequence)]
    lines.extend("  - %s" % p for p in problems)
    return "\n".join(lines)
