# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection. May change without notice; other collections must not use it.

"""Image references as the Docker API takes them, and registry credentials from the Docker client configuration
(modules image_pull and image_digest_info)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import base64
import json
import os
import pwd
from typing import Optional

DOCKER_HUB = "docker.io"
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def split_reference(name: str) -> tuple[str, str, str]:
    """(repository, tag or digest, registry) of an image reference; a missing tag is latest."""
    repository, digest = name, None
    if "@" in name:
        repository, digest = name.split("@", 1)
    tag = None
    last = repository.rsplit("/", 1)[-1]
    if digest is None and ":" in last:
        repository, tag = repository.rsplit(":", 1)
    first = repository.split("/", 1)[0]
    registry = first if "/" in repository and ("." in first or ":" in first or first == "localhost") else DOCKER_HUB
    return repository, digest or tag or "latest", registry


def registry_auth(registry: str) -> Optional[str]:
    """The X-Registry-Auth header's value for ``registry`` from the Docker client configuration, or None."""
    home = os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    try:
        with open(os.path.join(directory, "config.json")) as handle:
            auths = json.load(handle).get("auths") or {}
    except (IOError, OSError, ValueError, AttributeError):
        return None
    keys = DOCKER_HUB_AUTH_KEYS if registry == DOCKER_HUB else (registry, "https://" + registry, "http://" + registry)
    for key in keys:
        entry = auths.get(key) or auths.get(key.rstrip("/"))
        if not entry:
            continue
        if entry.get("identitytoken"):
            data = {"identitytoken": entry["identitytoken"], "serveraddress": key}
        elif entry.get("auth"):
            user, _sep, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            data = {"username": user, "password": password, "serveraddress": key}
        else:
            continue
        return base64.urlsafe_b64encode(json.dumps(data).encode("utf-8")).decode("ascii")
    return None
