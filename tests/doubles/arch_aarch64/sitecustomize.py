# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""TEST DOUBLE of a GB200 tray's CPU architecture. Never install it on a real host.

A Grace CPU reports ``aarch64``; the rehearsal's nodes run on whatever this machine is. The interpreter wrapper
``python3-aarch64-double`` (next to this file) puts this directory first on ``PYTHONPATH`` so that the Python which
runs Ansible modules on a rehearsal tray loads this module, which makes ``platform.machine()`` (what ``gpu_info``
and fact gathering read) answer ``aarch64``. The wrapper's ``PYTHONPATH`` is taken out of the environment again, so
the programs those modules start (pip, systemctl, docker) see the real machine.
"""

import os
import platform

_HERE = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != _HERE]
if _rest:
    os.environ["PYTHONPATH"] = os.pathsep.join(_rest)
else:
    os.environ.pop("PYTHONPATH", None)


def _machine():
    return "aarch64"


platform.machine = _machine
