# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection. May change without notice; other collections must not use it.

"""One image digest for every host of a run: what the first engine host resolves a tag to, and the check of each
host's image against it (module image_digest_info, filter image_digest_mismatches).

An agreement is a dict per image reference of the plan: ``name``, ``digest`` (``sha256:...`` or None), ``reference``
(what the hosts pull and run: ``repository@digest``, or the plan's reference where no digest was agreed), ``source``
(``plan``, ``local``, ``registry``, ``pull`` or ``none``), ``host`` (the host that resolved it) and ``note``.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Any, Iterable, Mapping, Optional, Sequence

DOCKER_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


def repository(name: Any) -> str:
    """The repository of an image reference, without tag or digest, as Docker shows it in RepoDigests (Docker Hub's
    ``docker.io/`` and ``library/`` left out)."""
    repo = str(name).split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[:len(repo) - len(last)] + last.split(":", 1)[0]
    for prefix in DOCKER_HUB_PREFIXES:
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            if repo.startswith("library/") and repo.count("/") == 1:
                repo = repo[len("library/"):]
            break
    return repo


def pinned(name: Any) -> Optional[str]:
    """The digest a reference pins (``name[:tag]@sha256:...``), or None."""
    return str(name).split("@", 1)[1] if "@" in str(name) else None


def repo_digest(name: Any, repo_digests: Optional[Iterable[str]]) -> Optional[str]:
    """The digest of ``name``'s repository among an image's RepoDigests (``repository@sha256:...``), or None."""
    repo = repository(name)
    found = sorted(d.split("@", 1)[1] for d in repo_digests or [] if "@" in d and repository(d) == repo)
    return found[0] if found else None


def digests_of(name: Any, repo_digests: Optional[Iterable[str]]) -> list[str]:
    """Every digest of ``name``'s repository among an image's RepoDigests."""
    repo = repository(name)
    return sorted(d.split("@", 1)[1] for d in repo_digests or [] if "@" in d and repository(d) == repo)


def agreement(name: str, host: str, local: Optional[Mapping[str, Any]] = None, registry: Optional[str] = None,
              registry_error: Optional[str] = None, pull: str = "missing") -> dict[str, Any]:
    """The digest every host pulls for ``name``, as the first engine host ``host`` resolved it.

    ``local``: that host's image inspection of ``name`` (None: not there); ``registry``: the digest the registry gives
    for the tag (Docker's distribution endpoint), None with ``registry_error``; ``pull``: missing (an image already on
    the first host is what runs, as a pull of missing images would keep it) or always (the registry's word first).
    """
    entry = {"name": name, "host": host, "digest": None, "reference": name, "source": "none", "note": ""}
    repo = repository(name)
    if pinned(name):
        return dict(entry, digest=pinned(name), source="plan", note="the plan pins it")
    here = repo_digest(name, (local or {}).get("RepoDigests"))
    if here and (pull == "missing" or not registry):
        return dict(entry, digest=here, reference="%s@%s" % (repo, here), source="local",
                    note="the image %s had on it" % host + (" (the registry did not answer: %s)" % registry_error
                                                            if pull != "missing" and registry_error else ""))
    if registry:
        return dict(entry, digest=registry, reference="%s@%s" % (repo, registry), source="registry",
                    note="the registry's digest of the tag, asked by %s" % host)
    if local is not None:
        return dict(entry, note="%s has it without a registry digest (a local image, built or loaded there): there "
                    "is no digest to agree on; each host runs its own %s" % (host, name))
    return dict(entry, source="pull", note="the registry did not tell %s the tag's digest (%s): each host pulls the "
                "tag and its digest is checked against the first host's" % (host, registry_error or "no answer"))


def reference(name: str, agreements: Optional[Mapping[str, Mapping[str, Any]]]) -> str:
    """What a host pulls and runs for the plan's ``name``: its agreed reference, else ``name``."""
    entry = (agreements or {}).get(name) or {}
    return entry.get("reference") if entry.get("digest") and entry.get("reference") else name


def _fix(agreed: Mapping[str, Any], first_digest: str) -> str:
    pin = "%s@%s" % (agreed["name"].split("@", 1)[0], first_digest)
    return ("Fix: pin the digest in the plan (plan_image or plan_lmcache_image: %s, or the digest you mean to run) "
            "and run again; every host then pulls exactly that image." % pin)


def mismatches(images: Optional[Iterable[Mapping[str, Any]]], agreements: Optional[Mapping[str, Mapping[str, Any]]],
               host: str, peers: Optional[Iterable[Sequence[Any]]] = ()) -> list[str]:
    """Messages for each image of a host that is not the agreed one.

    ``images``: the host's images as module image_pull returns them (``name``, ``digests``: RepoDigests);
    ``agreements``: plan reference -> agreement; ``peers``: [host, {reference: RepoDigests}] of the play's hosts in
    order, for images without an agreed digest (the first other host that has a digest of it is the reference).
    """
    by_reference = dict((a["reference"], a) for a in (agreements or {}).values())
    out = []
    for image in images or []:
        agreed = by_reference.get(image.get("name"))
        if agreed is None or agreed["source"] == "none":
            continue
        digests = digests_of(agreed["name"], image.get("digests"))
        here = " ".join(digests) or "an image without a registry digest"
        if agreed["digest"]:
            if agreed["digest"] not in digests:
                out.append("%s: %s is %s here, not %s, the digest every host runs (%s): the hosts would run "
                           "different images. %s" % (host, agreed["name"], here, agreed["digest"], agreed["note"],
                                                     _fix(agreed, agreed["digest"])))
            continue
        for peer, peer_digests in peers or []:
            theirs = digests_of(agreed["name"], (peer_digests or {}).get(image.get("name")))
            if peer == host or not theirs:
                # The first host with a digest of it is the one the others are checked against.
                if peer == host:
                    break
                continue
            if not set(theirs) & set(digests):
                out.append("%s: the tag %s gave %s here but %s on %s: the tag moved between the pulls and the hosts "
                           "would run different images. %s" % (host, agreed["name"], here, " ".join(theirs), peer,
                                                               _fix(agreed, theirs[0])))
            break
    return out
