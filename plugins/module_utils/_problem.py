# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""One problem shape for every check of the collection: the serving plan, GPU preflight, RDMA.

A problem names what is wrong (``variable``: the setting that produced the value, or ``check``: the host check
that failed), the value ``found``, what is ``needed``, the ``fix``, and the ``host`` (None for the whole plan).
Pure Python, no Ansible imports.
"""

from __future__ import annotations

import json


class Problem(object):
    """One thing wrong with the inventory or a host."""

    __slots__ = ("variable", "check", "found", "needed", "message", "fix", "host")

    def __init__(self, variable, found, message, fix, host=None, needed=None, check=None):
        self.variable = variable
        self.check = check
        self.found = found
        self.needed = needed
        self.message = message
        self.fix = fix
        self.host = host

    @property
    def subject(self):
        """The variable a user changes, else the check that failed."""
        return self.variable or self.check

    def as_dict(self):
        return {"host": self.host, "variable": self.variable, "check": self.check, "found": self.found,
                "needed": self.needed, "message": self.message, "fix": self.fix}

    def __str__(self):
        where = "host %s: " % self.host if self.host else ""
        if self.variable:
            head = "%s=%s: %s" % (self.variable, json.dumps(self.found, default=str), self.message or "")
        else:
            head = "%s: found %s" % (self.check, self.found)
        needed = "" if self.needed is None or self.variable else "; needed %s" % (self.needed,)
        return "%s%s%s Fix: %s" % (where, head.rstrip(), needed, self.fix)


def from_dict(data):
    """The Problem a module returned as a dict."""
    return Problem(data.get("variable"), data.get("found"), data.get("message"), data.get("fix"),
                   host=data.get("host"), needed=data.get("needed"), check=data.get("check"))


def summary(problems, what="The serving plan was refused", consequence="no host was changed"):
    """Every problem at once, one line each, under a counted heading."""
    problems = list(problems)
    lines = ["%s (%d problem%s); %s:" % (what, len(problems), "" if len(problems) == 1 else "s", consequence)]
    lines.extend("  - %s" % p for p in problems)
    return "\n".join(lines)
