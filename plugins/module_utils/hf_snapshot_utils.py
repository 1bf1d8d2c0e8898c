# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the ``hf_snapshot`` module: provision a Hugging Face model repository into a Hugging Face cache.

No Ansible imports here: the module is a thin wrapper, and tests call :func:`provision` directly.

Layout (what the engines mount at ``/root/.cache/huggingface``)::

    <cache_dir>/hub/models--<org>--<name>/
        blobs/<etag>                      file contents (etag = LFS sha256, or git blob id for small files)
        snapshots/<commit>/<file>         relative symlinks into blobs/
        refs/<branch>                     commit hash a branch/tag resolved to
        trees/<commit>.json               huggingface_hub's own cached tree listing
        .provisioned/<commit>.json        marker written here after a successful verification

Bytes are only ever transferred by ``huggingface_hub`` (``snapshot_download``); this file decides what is needed,
checks free space first, links pre-staged files from a mirror directory, verifies the result and records it, so that
a later run can decide from local state alone (no network I/O) that nothing is to be done.
"""

from __future__ import absolute_import, annotations, division, print_function

import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import traceback
import uuid
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Container, Iterable, Literal, Mapping, Optional
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._progress import Reporter

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
VERIFY_LEVELS = {"none": 0, "size": 1, "sha256": 2}
INDEX_FILE = "model.safetensors.index.json"
MARKER_DIR = ".provisioned"
MARKER_VERSION = 1
DEFAULT_REVISION = "main"
HASH_CHUNK = 8 * 1024 * 1024


class SnapshotError(Exception):
    """A failure reported to the user: ``msg`` plus structured ``details`` for the module result."""

    def __init__(self, msg: str, **details: Any) -> None:
        super(SnapshotError, self).__init__(msg)
        self.msg = msg
        self.details = details


class HubUnreachable(SnapshotError):
    """The Hub (or mirror endpoint) could not be reached, or offline mode is enabled."""


# --------------------------------------------------------------------------------------------------------------
# huggingface_hub access
# --------------------------------------------------------------------------------------------------------------

def hub_import_error() -> Optional[str]:
    """``None`` when huggingface_hub can be imported, else the traceback text of the failed import."""
    try:
        _import_hub()
    except ImportError:
        return traceback.format_exc()
    return None


def _import_hub() -> ModuleType:
    # Progress bars would go to the module's stderr; telemetry is never wanted from provisioning hosts.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub  # noqa: F401  pylint: disable=unused-import
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    return huggingface_hub


class RemoteFile(object):
    """What the Hub's tree listing says about one file."""

    __slots__ = ("path", "size", "git_oid", "sha256")

    def __init__(self, path: str, size: int, git_oid: Optional[str] = None, sha256: Optional[str] = None) -> None:
        self.path = path
        self.size = int(size)
        self.git_oid = git_oid
        self.sha256 = sha256

    @property
    def etag(self) -> Optional[str]:
        """Name of the file's blob in the cache (what the Hub sends as ETag / X-Linked-Etag)."""
        return self.sha256 or self.git_oid

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "git_oid": self.git_oid, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, path: str, data: dict[str, Any]) -> RemoteFile:
        return cls(path, data["size"], data.get("git_oid"), data.get("sha256"))


class HubClient(object):
    """The few huggingface_hub calls the module makes. Every byte transfer goes through ``snapshot_download``."""

    def __init__(self, endpoint: Optional[str] = None, token: Optional[str] = None) -> None:
        self.endpoint = endpoint or None
        self.token = token or None
        self._hub = _import_hub()

    def _api(self) -> Any:
        return self._hub.HfApi(endpoint=self.endpoint, token=self.token)

    def resolve(self, repo_id: str, revision: str) -> str:
        """Commit hash of ``revision`` (branch, tag or commit) on the Hub."""
        with _hub_errors(self, repo_id, revision):
            info = self._api().repo_info(repo_id=repo_id, revision=revision, repo_type="model")
        if not info.sha:
            raise SnapshotError("The Hub returned no commit for %s@%s." % (repo_id, revision))
        return info.sha

    def list_files(self, repo_id: str, commit: str) -> dict[str, RemoteFile]:
        """``{path: RemoteFile}`` of the repository at ``commit`` (recursive tree listing with sizes and LFS ids)."""
        from huggingface_hub.hf_api import RepoFile

        files = {}
        with _hub_errors(self, repo_id, commit):
            for entry in self._api().list_repo_tree(repo_id=repo_id, revision=commit, recursive=True,
                                                    repo_type="model"):
                if isinstance(entry, RepoFile):
                    files[entry.path] = RemoteFile(entry.path, entry.size, entry.blob_id,
                                                   entry.lfs.sha256 if entry.lfs is not None else None)
        return files

    def download(self, repo_id: str, commit: str, hub_dir: str, allow_patterns: Optional[list[str]],
                 max_workers: int) -> str:
        """``snapshot_download`` pinned to ``commit``: files already in the cache are not fetched again."""
        with _hub_errors(self, repo_id, commit, hub_dir):
            return self._hub.snapshot_download(
                repo_id=repo_id, repo_type="model", revision=commit, cache_dir=hub_dir, endpoint=self.endpoint,
                token=self.token, allow_patterns=allow_patterns, max_workers=max_workers)

    def resume(self, repo_id: str, commit: str, remote: RemoteFile, partial: str, hub_dir: str) -> None:
        """Finish ``partial`` (the first bytes of ``remote``, left by an interrupted run) from where it stops: the
        file's URL and its redirect as huggingface_hub resolves them, then ``http_get`` with HTTP Range."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(repo_id, remote.path, revision=commit, endpoint=self.endpoint)
        with _hub_errors(self, repo_id, commit, hub_dir):
            location = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint).location or url
            headers = build_hf_headers(token=self.token)
            if urlsplit(location).netloc != urlsplit(url).netloc:
                # The bytes come from another origin (the CDN): the token stays with the Hub.
                headers = dict((k, v) for k, v in headers.items() if k.lower() != "authorization")
            with open(partial, "r+b") as handle:
                handle.seek(0, os.SEEK_END)
                http_get(location, handle, resume_size=handle.tell(), headers=headers, expected_size=remote.size,
                         displayed_filename=remote.path)

    def cached_listing(self, repo_id: str, commit: str, hub_dir: str) -> Optional[dict[str, RemoteFile]]:
        """The tree listing huggingface_hub cached on disk for ``commit`` (no network), or ``None``."""
        try:
            entries = self._hub.get_cached_repo_tree(repo_id, revision=commit, cache_dir=hub_dir)
        except Exception:  # pylint: disable=broad-except
            return None
        return dict((e.path, RemoteFile(e.path, e.size, e.blob_id)) for e in entries)


class _hub_errors(object):  # pylint: disable=invalid-name
    """Turn huggingface_hub / transport exceptions into :class:`SnapshotError` / :class:`HubUnreachable`."""

    def __init__(self, client: HubClient, repo_id: str, revision: str, hub_dir: Optional[str] = None) -> None:
        self.client = client
        self.repo_id = repo_id
        self.revision = revision
        self.hub_dir = hub_dir

    def __enter__(self) -> _hub_errors:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if exc is None or isinstance(exc, SnapshotError) or not isinstance(exc, Exception):
            return False
        from huggingface_hub import errors as hub_errors

        if isinstance(exc, (IOError, OSError)) and getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(exc, self.repo_id, self.revision, self.hub_dir)
        where = self.client.endpoint or os.environ.get("HF_ENDPOINT") or "the Hugging Face Hub"
        status = getattr(getattr(exc, "response", None), "status_code", None)
        name = type(exc).__name__
        if isinstance(exc, hub_errors.RevisionNotFoundError):
            raise SnapshotError("Revision %r of %s does not exist on %s." % (self.revision, self.repo_id, where))
        if isinstance(exc, hub_errors.RepositoryNotFoundError) or status in (401, 403):
            raise SnapshotError(
                "Repository %s is not accessible on %s (HTTP %s, %s): it does not exist, or it is gated/private "
                "and the token is missing or lacks access." % (self.repo_id, where, status, name))
        if _is_unreachable(exc) or (status is not None and status >= 500):
            raise HubUnreachable("%s is unreachable or failing for %s@%s: %s: %s" % (
                where, self.repo_id, self.revision, name, _first_line(exc)))
        if isinstance(exc, hub_errors.HfHubHTTPError):
            raise SnapshotError("%s answered HTTP %s for %s@%s: %s" % (
                where, status, self.repo_id, self.revision, _first_line(exc)))
        return False


def _disk_full(exc: OSError, repo_id: str, revision: str, hub_dir: Optional[str]) -> SnapshotError:
    """The disk filled up during the download: the filesystem, what is free there, the fix. huggingface_hub writes
    each file under a temporary ``*.incomplete`` name and renames it only when complete: nothing partial counts."""
    where = getattr(exc, "filename", None) or hub_dir or ""
    probe = where
    while probe and not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    try:
        free = shutil.disk_usage(probe).free if probe else None
    except OSError:
        free = None
    return SnapshotError(
        "The disk filled up while downloading %s@%s into %s (%s). No partial file is counted as complete; the next "
        "run fetches only the files still missing. Fix: free space on that filesystem (%s bytes free now), or point "
        "cache_dir at a larger one." % (repo_id, revision, where or "the cache", os.strerror(exc.errno),
                                        "?" if free is None else free),
        revision=revision, path=probe or None, free_bytes=free)


def _is_unreachable(exc: BaseException) -> bool:
    from huggingface_hub import errors as hub_errors

    unreachable = [hub_errors.OfflineModeIsEnabled, hub_errors.LocalEntryNotFoundError, ConnectionError]
    try:
        import httpx2  # the transport of huggingface_hub 2.x

        unreachable.append(httpx2.TransportError)
    except ImportError:
        pass
    return isinstance(exc, tuple(unreachable))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------------------
# cache layout and local state
# --------------------------------------------------------------------------------------------------------------

class Layout(object):
    """Paths of one model repository inside a Hugging Face cache (``cache_dir`` = HF_HOME)."""

    def __init__(self, cache_dir: str, repo_id: str) -> None:
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
        self.hub_dir = os.path.join(self.cache_dir, "hub")
        self.repo_id = repo_id
        self.storage = os.path.join(self.hub_dir, "models--" + repo_id.replace("/", "--"))
        self.blobs = os.path.join(self.storage, "blobs")

    def snapshot(self, commit: str) -> str:
        return os.path.join(self.storage, "snapshots", commit)

    def pointer(self, commit: str, path: str) -> str:
        return os.path.join(self.snapshot(commit), *path.split("/"))

    def blob(self, etag: str) -> str:
        return os.path.join(self.blobs, etag)

    def ref(self, revision: str) -> str:
        return os.path.join(self.storage, "refs", *revision.split("/"))

    def marker(self, commit: str) -> str:
        return os.path.join(self.storage, MARKER_DIR, commit + ".json")

    @property
    def token_file(self) -> str:
        return os.path.join(self.cache_dir, "token")


def read_ref(layout: Layout, revision: str) -> Optional[str]:
    """Commit hash ``revision`` maps to locally (itself if it is a commit hash, else ``refs/<revision>``)."""
    if COMMIT_RE.match(revision):
        return revision
    try:
        with open(layout.ref(revision)) as handle:
            commit = handle.read().strip()
    except (IOError, OSError):
        return None
    return commit if COMMIT_RE.match(commit) else None


def load_marker(layout: Layout, commit: str) -> Optional[dict[str, Any]]:
    try:
        with open(layout.marker(commit)) as handle:
            marker = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("version") != MARKER_VERSION:
        return None
    return marker


def _atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    tmp = "%s.%s.tmp" % (path, uuid.uuid4().hex[:8])
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _stat(path: str) -> Optional[tuple[int, int]]:
    """``(size, mtime_ns)`` of the file ``path`` resolves to, or ``None`` (missing, dangling link, not a file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def file_digest(path: str, kind: str) -> str:
    """sha256 of the file, or its git blob id (``kind='git'``) for files the Hub does not keep in LFS."""
    if kind == "git":
        digest = hashlib.sha1()
        digest.update(b"blob %d\0" % os.path.getsize(path))
    else:
        digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(HASH_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def hash_matches(path: str, remote: RemoteFile) -> bool:
    if remote.sha256:
        return file_digest(path, "sha256") == remote.sha256
    if remote.git_oid:
        return file_digest(path, "git") == remote.git_oid
    return True


def _select(paths: Iterable[str], allow_patterns: Optional[list[str]]) -> list[str]:
    """Paths matched by ``allow_patterns`` (the same matching huggingface_hub applies)."""
    if not allow_patterns:
        return sorted(paths)
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(items=list(paths), allow_patterns=allow_patterns))


def _human(num: float) -> str:
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return "%.1f %s" % (value, unit) if unit != "B" else "%d B" % value
        value /= 1024
    return "%d B" % num


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


# --------------------------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------------------------

def check_local(layout: Layout, commit: str, expected: dict[str, RemoteFile], level: int,
                known: Optional[dict[str, dict[str, Any]]] = None, hash_needed: Optional[Container[str]] = None
                ) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, Any]]]:
    """Compare the snapshot on disk with ``expected`` ({path: RemoteFile}).

    ``known``: {path: {"size", "mtime_ns", "hashed"}} from an earlier verification; a file whose size and mtime are
    unchanged is not hashed again. Returns ``(present, missing, corrupt, states)``: ``corrupt`` maps a path to the
    reason; ``states`` maps every present file to its new record.
    """
    known = known or {}
    present, missing, corrupt, states = [], [], {}, {}
    for path in sorted(expected):
        remote = expected[path]
        pointer = layout.pointer(commit, path)
        st = _stat(pointer)
        source = pointer
        if st is None:
            # A blob may be in place without its snapshot link (huggingface_hub links it on the next download).
            blob = layout.blob(remote.etag) if remote.etag else None
            st = _stat(blob) if blob else None
            if st is None:
                missing.append(path)
                continue
            source = blob
        size, mtime_ns = st
        if level >= VERIFY_LEVELS["size"] and size != remote.size:
            corrupt[path] = "size %d, expected %d" % (size, remote.size)
            continue
        record = {"size": size, "mtime_ns": mtime_ns, "hashed": False}
        previous = known.get(path)
        if level >= VERIFY_LEVELS["sha256"] and (hash_needed is None or path in hash_needed):
            if previous and previous.get("hashed") and previous.get("size") == size \
                    and previous.get("mtime_ns") == mtime_ns:
                record["hashed"] = True
            elif hash_matches(source, remote):
                record["hashed"] = True
            else:
                corrupt[path] = "checksum mismatch (expected %s %s)" % (
                    "sha256" if remote.sha256 else "git blob id", remote.sha256 or remote.git_oid)
                continue
        elif previous and previous.get("hashed") and previous.get("size") == size \
                and previous.get("mtime_ns") == mtime_ns:
            record["hashed"] = True
        if source != pointer:
            missing.append(path)  # the bytes are there; the snapshot link is made by the download step
            states[path] = record
            continue
        present.append(path)
        states[path] = record
    return present, missing, corrupt, states


def check_index(layout: Layout, commit: str, selected: Container[str]) -> tuple[list[str], int]:
    """Every shard named in ``model.safetensors.index.json``'s weight_map must be selected and on disk."""
    if INDEX_FILE not in selected:
        return [], 0
    try:
        with open(layout.pointer(commit, INDEX_FILE)) as handle:
            index = json.load(handle)
        shards = sorted(set(index["weight_map"].values()))
    except (IOError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError("%s of %s@%s is unreadable: %s" % (INDEX_FILE, layout.repo_id, commit, exc),
                            corrupted=[INDEX_FILE])
    prefix = os.path.dirname(INDEX_FILE)
    problems = []
    for shard in shards:
        path = "/".join([prefix, shard]) if prefix else shard
        if path not in selected:
            problems.append("%s (listed in the weight_map, not selected or not in the repository)" % path)
        elif _stat(layout.pointer(commit, path)) is None:
            problems.append("%s (listed in the weight_map, missing on disk)" % path)
    return problems, len(shards)


def _corrupt_message(layout: Layout, commit: str, corrupt: dict[str, str]) -> str:
    items = ", ".join("%s (%s)" % (path, corrupt[path]) for path in sorted(corrupt))
    return "Corrupted or truncated file(s) in %s: %s" % (layout.snapshot(commit), items)


def _remove_local(layout: Layout, commit: str, remote: RemoteFile) -> None:
    for path in (layout.pointer(commit, remote.path), layout.blob(remote.etag) if remote.etag else None):
        if path and os.path.lexists(path):
            os.unlink(path)


# --------------------------------------------------------------------------------------------------------------
# mirror directory
# --------------------------------------------------------------------------------------------------------------

def _link_pointer(layout: Layout, commit: str, path: str, etag: str) -> None:
    pointer = layout.pointer(commit, path)
    directory = os.path.dirname(pointer)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    if os.path.lexists(pointer):
        os.unlink(pointer)
    os.symlink(os.path.relpath(layout.blob(etag), directory), pointer)


def place_from_mirror(layout: Layout, commit: str, remote: RemoteFile, source: str) -> str:
    """Put ``source`` (a pre-staged copy of ``remote``) into the cache: hard link when possible, else a copy."""
    blob = layout.blob(remote.etag)
    if not os.path.isdir(layout.blobs):
        os.makedirs(layout.blobs)
    method = "present"
    if _stat(blob) is None or _stat(blob)[0] != remote.size:
        tmp = "%s.%s.mirror.incomplete" % (blob, uuid.uuid4().hex[:8])
        try:
            try:
                os.link(source, tmp)
                method = "hardlink"
            except OSError:
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o644)
                method = "copy"
            os.rename(tmp, blob)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    _link_pointer(layout, commit, remote.path, remote.etag)
    return method


def _mirror_candidates(mirror_dir: Optional[str], wanted: list[RemoteFile], level: int,
                       layout: Layout) -> tuple[dict[str, str], dict[str, str], int]:
    """Files of ``wanted`` (RemoteFiles) found in ``mirror_dir`` with the right size (and hash when asked)."""
    usable, rejected, copy_bytes = {}, {}, 0
    if not mirror_dir:
        return usable, rejected, copy_bytes
    mirror_dir = os.path.abspath(os.path.expanduser(mirror_dir))
    if not os.path.isdir(mirror_dir):
        raise SnapshotError("mirror_dir %s does not exist or is not a directory." % mirror_dir)
    cache_dev = os.stat(_existing_ancestor(layout.storage)).st_dev
    for remote in wanted:
        source = os.path.join(mirror_dir, *remote.path.split("/"))
        st = _stat(source)
        if st is None:
            continue
        if st[0] != remote.size:
            rejected[remote.path] = "size %d, expected %d" % (st[0], remote.size)
            continue
        if level >= VERIFY_LEVELS["sha256"] and not hash_matches(source, remote):
            rejected[remote.path] = "checksum mismatch"
            continue
        usable[remote.path] = source
        if os.stat(source).st_dev != cache_dev:
            copy_bytes += remote.size
    return usable, rejected, copy_bytes


# --------------------------------------------------------------------------------------------------------------
# the whole operation
# --------------------------------------------------------------------------------------------------------------

def _result(layout: Layout, commit: str, selected: list[str], expected: dict[str, RemoteFile],
            **extra: Any) -> dict[str, Any]:
    result = {
        "changed": False,
        "snapshot_path": layout.snapshot(commit),
        "cache_dir": layout.cache_dir,
        "hub_cache": layout.hub_dir,
        "revision": commit,
        "files": list(selected),
        "bytes_total": sum(expected[p].size for p in selected),
        "bytes_downloaded": 0,
        "files_downloaded": [],
        "files_from_mirror": [],
        "repaired": [],
        "network": False,
    }
    result.update(extra)
    return result


def _write_marker(layout: Layout, commit: str, params: dict[str, Any], selected: list[str],
                  expected: dict[str, RemoteFile], states: dict[str, dict[str, Any]], level: str) -> None:
    marker = {
        "version": MARKER_VERSION,
        "repo_id": layout.repo_id,
        "revision": params["revision"],
        "commit": commit,
        "allow_patterns": params.get("allow_patterns") or None,
        "verify": level,
        "verified_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "files": dict((p, dict(expected[p].to_dict(), **states.get(p, {}))) for p in selected),
    }
    _atomic_write(layout.marker(commit), (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())


def _store_token(layout: Layout, token: str, check_mode: bool) -> bool:
    """Write ``<cache_dir>/token`` (mode 0600) where huggingface_hub looks for it; True when it changed."""
    path = layout.token_file
    try:
        with open(path) as handle:
            current = handle.read().strip()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (IOError, OSError):
        current, mode = None, None
    if current == token and mode == 0o600:
        return False
    if not check_mode:
        if not os.path.isdir(layout.cache_dir):
            os.makedirs(layout.cache_dir)
        _atomic_write(path, token.encode(), mode=0o600)
    return True


def _fast_path(layout: Layout, params: dict[str, Any], level: int, check_mode: bool) -> Optional[dict[str, Any]]:
    """Decide from local state alone: a complete, verified snapshot recorded by the marker -> result, else None."""
    commit = read_ref(layout, params["revision"])
    if commit is None:
        return None
    marker = load_marker(layout, commit)
    if marker is None or marker.get("repo_id") != layout.repo_id:
        return None
    if (marker.get("allow_patterns") or None) != (params.get("allow_patterns") or None):
        return None
    if VERIFY_LEVELS.get(marker.get("verify"), -1) < level:
        return None
    known = marker.get("files") or {}
    expected = dict((p, RemoteFile.from_dict(p, d)) for p, d in known.items())
    present, missing, corrupt, states = check_local(layout, commit, expected, level, known=known)
    if missing or corrupt:
        return None
    if any(states[p].get("mtime_ns") != known[p].get("mtime_ns") or
           states[p].get("hashed") != known[p].get("hashed") for p in states) and not check_mode:
        # Files were touched but still verify: refresh the record (bookkeeping, not a change of the snapshot).
        _write_marker(layout, commit, dict(params, revision=marker.get("revision")), sorted(expected), expected,
                      states, marker.get("verify"))
    problems, shards = check_index(layout, commit, set(expected))
    if problems:
        return None
    return _result(layout, commit, sorted(expected), expected, shards=shards, source="local")


def _offline(layout: Layout, params: dict[str, Any], level: int, error: SnapshotError) -> dict[str, Any]:
    """The Hub is unreachable: with ``offline_ok``, accept a complete local snapshot (marker or cached tree)."""
    commit = read_ref(layout, params["revision"])
    if not params.get("offline_ok"):
        raise HubUnreachable("%s. Set offline_ok to accept a complete local snapshot when the Hub is unreachable."
                             % error.msg)
    if commit is None:
        raise HubUnreachable("%s. Revision %s of %s was never resolved in %s, nothing to fall back on." % (
            error.msg, params["revision"], layout.repo_id, layout.hub_dir))
    marker = load_marker(layout, commit)
    if marker is not None and (marker.get("allow_patterns") or None) == (params.get("allow_patterns") or None):
        expected = dict((p, RemoteFile.from_dict(p, d)) for p, d in (marker.get("files") or {}).items())
        known = marker.get("files")
    else:
        listing = HubClient(params.get("endpoint"), None).cached_listing(layout.repo_id, commit, layout.hub_dir)
        if not listing:
            raise HubUnreachable("%s. No verification record or cached tree listing for %s@%s in %s." % (
                error.msg, layout.repo_id, commit, layout.hub_dir))
        expected = dict((p, listing[p]) for p in _select(listing, params.get("allow_patterns")))
        known = None
    present, missing, corrupt, states = check_local(layout, commit, expected, level, known=known)
    if missing or corrupt:
        raise HubUnreachable("%s. The local snapshot %s is incomplete: missing %s; corrupted %s." % (
            error.msg, layout.snapshot(commit), ", ".join(missing) or "none",
            ", ".join(sorted(corrupt)) or "none"), missing=missing, corrupted=sorted(corrupt))
    problems, shards = check_index(layout, commit, set(expected))
    if problems:
        raise HubUnreachable("%s. The local snapshot is incomplete: %s" % (error.msg, "; ".join(problems)))
    return _result(layout, commit, sorted(expected), expected, shards=shards, source="offline",
                   warnings=["%s. Using the complete local snapshot %s." % (error.msg, layout.snapshot(commit))])


class _Run(object):
    """What one provisioning run against the Hub found and decided, step by step (see :func:`provision`)."""

    def __init__(self, layout: Layout, params: dict[str, Any], level: int, commit: str) -> None:
        self.layout = layout
        self.params = params
        self.level = level
        self.commit = commit
        # _inspect: the selected files, what the Hub says of them, their state on disk.
        self.selected = self.expected = self.known = None
        self.missing = self.corrupt = self.states = None
        self.ref_needed = False
        # _plan_transfer: where the missing bytes come from and the report of it.
        self.blob_ready = self.to_fetch = self.from_network = None
        self.mirror = self.report = None
        # Progress of the transfer (module_utils._progress.Reporter), or None; files resumed from a partial.
        self.reporter = None
        self.resumed = []


def _normalize(params: Mapping[str, Any]) -> tuple[dict[str, Any], int, Layout]:
    """A copy of the module parameters with their defaults filled in, the verification level and the layout."""
    params = dict(params)
    params["revision"] = params.get("revision") or DEFAULT_REVISION
    params["endpoint"] = params.get("endpoint") or os.environ.get("HF_ENDPOINT") or None
    params["allow_patterns"] = list(params.get("allow_patterns") or []) or None
    level = VERIFY_LEVELS[params.get("verify") or "size"]
    return params, level, Layout(params["cache_dir"], params["repo_id"])


def _resolve(client: HubClient, layout: Layout, params: dict[str, Any]) -> tuple[str, dict[str, RemoteFile]]:
    """``(commit, listing)`` from the Hub: the commit ``revision`` names and the repository's files there."""
    commit = params["revision"] if COMMIT_RE.match(params["revision"]) else \
        client.resolve(layout.repo_id, params["revision"])
    return commit, client.list_files(layout.repo_id, commit)


def _inspect(run: _Run, listing: dict[str, RemoteFile]) -> None:
    """Select the files, compare them with the disk (trusting the marker's record of hashed files), check the ref."""
    layout, params, commit = run.layout, run.params, run.commit
    run.selected = _select(listing, params["allow_patterns"])
    if not run.selected:
        raise SnapshotError("No file of %s@%s matches allow_patterns %s." % (
            layout.repo_id, commit, params["allow_patterns"]), revision=commit)
    run.expected = dict((p, listing[p]) for p in run.selected)
    marker = load_marker(layout, commit)
    run.known = (marker or {}).get("files") if marker and marker.get("repo_id") == layout.repo_id else None
    _present, run.missing, run.corrupt, run.states = check_local(layout, commit, run.expected, run.level,
                                                                 known=run.known)
    run.ref_needed = not COMMIT_RE.match(params["revision"]) and read_ref(layout, params["revision"]) != commit


def _refuse_damaged(run: _Run) -> None:
    """Corrupted files with repair disabled, or an incomplete snapshot with download disabled, are errors."""
    layout, commit, corrupt, missing = run.layout, run.commit, run.corrupt, run.missing
    if corrupt and not run.params.get("repair", True):
        raise SnapshotError(_corrupt_message(layout, commit, corrupt) + " (repair is disabled).",
                            corrupted=sorted(corrupt), revision=commit, snapshot_path=layout.snapshot(commit))
    if (missing or corrupt) and not run.params.get("download", True):
        raise SnapshotError(
            "The snapshot %s is incomplete and download is disabled: missing %s; corrupted %s." % (
                layout.snapshot(commit), ", ".join(missing) or "none",
                ", ".join("%s (%s)" % (p, corrupt[p]) for p in sorted(corrupt)) or "none"),
            missing=missing, corrupted=sorted(corrupt), revision=commit, snapshot_path=layout.snapshot(commit))


def _plan_transfer(run: _Run) -> None:
    """Which files need bytes (missing ones whose blob is not already in place, and corrupted ones), which of them
    the mirror directory has, and the disk space all this takes; refuses before any byte is fetched when the
    filesystem cannot hold what is missing plus the margin."""
    layout, expected, corrupt = run.layout, run.expected, run.corrupt
    run.blob_ready = [p for p in run.missing if p in run.states]
    run.to_fetch = [expected[p] for p in sorted(set(run.missing) - set(run.blob_ready)) + sorted(corrupt)]
    run.mirror, mirror_rejected, copy_bytes = _mirror_candidates(run.params.get("mirror_dir"), run.to_fetch,
                                                                 run.level, layout)
    run.from_network = [r for r in run.to_fetch if r.path not in run.mirror]
    need = sum(r.size for r in run.from_network) + copy_bytes
    freed = sum(expected[p].size for p in corrupt if _stat(layout.blob(expected[p].etag)))
    probe = _existing_ancestor(layout.storage)
    free = shutil.disk_usage(probe).free
    margin = int(run.params.get("min_free_bytes") or 0)
    run.report = {
        "files_to_download": [r.path for r in run.from_network],
        "bytes_to_download": sum(r.size for r in run.from_network),
        "files_to_link": sorted(run.mirror),
        "corrupted": sorted(corrupt),
        "mirror_rejected": mirror_rejected,
        "disk": {"path": probe, "free_bytes": free, "needed_bytes": need, "min_free_bytes": margin},
        "network": True,
    }
    if free + freed - need < margin:
        raise _disk_error(run, need, free, margin, probe)


def _disk_error(run: _Run, need: int, free: int, margin: int, probe: str) -> SnapshotError:
    layout = run.layout
    return SnapshotError(
        "Not enough free disk space for %s@%s under %s: %d file(s) still to fetch need %d bytes (%s) and a "
        "margin of %d bytes (%s) must stay free, but the filesystem holding %s has %d bytes (%s) free. Fix: free "
        "space there, point cache_dir at a larger filesystem, lower min_free_bytes, or pre-stage the files "
        "with mirror_dir." % (layout.repo_id, run.commit, layout.hub_dir, len(run.to_fetch), need, _human(need),
                              margin, _human(margin), probe, free, _human(free)),
        revision=run.commit, needed_bytes=need, free_bytes=free, min_free_bytes=margin, path=probe,
        files_to_download=[r.path for r in run.from_network])


def partials(layout: Layout) -> dict[str, list[tuple[int, float, str]]]:
    """{etag: [(size, mtime, path), ...]} of the partial files huggingface_hub left in the blobs folder
    (``<etag>.incomplete`` or ``<etag>.<id>.incomplete``), largest first."""
    found = {}
    try:
        names = os.listdir(layout.blobs)
    except OSError:
        return found
    for name in names:
        if not name.endswith(".incomplete"):
            continue
        path = os.path.join(layout.blobs, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.setdefault(name.split(".", 1)[0], []).append((st.st_size, st.st_mtime, path))
    for entries in found.values():
        entries.sort(reverse=True)
    return found


def sampler(layout: Layout, expected: dict[str, RemoteFile]) -> Callable[[], dict[str, Any]]:
    """A function that measures the transfer from the cache alone: bytes of the selected files complete (their
    blobs) or partly there (the partial files), of the total the Hub listed; the file whose bytes moved last."""
    by_etag = dict((r.etag, r) for r in expected.values() if r.etag)
    total = sum(r.size for r in expected.values())

    def sample() -> dict[str, Any]:
        done, newest, item = 0, -1.0, None
        parts = partials(layout)
        for etag, remote in by_etag.items():
            st = _stat(layout.blob(etag))
            if st is not None:
                done += min(st[0], remote.size)
                continue
            if etag in parts:
                size, mtime, _path = parts[etag][0]
                done += min(size, remote.size)
                if mtime > newest:
                    newest, item = mtime, remote.path
        return {"done": done, "total": total, "item": item}

    return sample


def _resume_partials(run: _Run, client: HubClient) -> list[dict[str, Any]]:
    """Files an interrupted run left partly fetched resume where they stop (HTTP Range) instead of starting over:
    huggingface_hub resumes within a run only, and a run that is killed (a stall, the async time limit, a reboot)
    leaves its partial file behind. Returns [{file, from_bytes}]."""
    layout, resumed = run.layout, []
    found = partials(layout)
    for remote in run.from_network:
        entries = found.get(remote.etag or "", [])
        usable = [e for e in entries if 0 < e[0] <= remote.size]
        if not entries or _stat(layout.blob(remote.etag)) is not None:
            continue
        # The largest usable partial goes on; the others (empty, too large, older) are of no use any more.
        for _size, _mtime, other in entries:
            if not usable or other != usable[0][2]:
                os.unlink(other)
        if not usable:
            continue
        size, _mtime, partial = usable[0]
        client.resume(layout.repo_id, run.commit, remote, partial, layout.hub_dir)
        os.rename(partial, layout.blob(remote.etag))
        resumed.append({"file": remote.path, "from_bytes": size})
    return resumed


def _transfer(run: _Run, client: HubClient) -> list[str]:
    """Repair, link from the mirror, download, record the ref. Returns the paths placed from the mirror."""
    layout, commit, expected, params = run.layout, run.commit, run.expected, run.params
    # Repair: huggingface_hub trusts a blob that exists, so a bad one must go before it can be fetched again.
    for path in sorted(run.corrupt):
        _remove_local(layout, commit, expected[path])
    mirrored = []
    for path in sorted(run.mirror):
        place_from_mirror(layout, commit, expected[path], run.mirror[path])
        mirrored.append(path)
    if run.reporter is not None:
        run.reporter.transfer(sampler(layout, expected))
    run.resumed = _resume_partials(run, client)
    if run.from_network or run.blob_ready or not os.path.isdir(layout.snapshot(commit)):
        client.download(layout.repo_id, commit, layout.hub_dir, params["allow_patterns"],
                        int(params.get("max_workers") or 8))
    if run.ref_needed:
        _atomic_write(layout.ref(params["revision"]), commit.encode())
    return mirrored


def _verify(run: _Run) -> int:
    """Sizes of everything, hashes of what is not already known good, then the index; record the result in the
    marker. Returns the number of shards."""
    layout, commit, expected, params = run.layout, run.commit, run.expected, run.params
    _present, missing, bad, states = check_local(layout, commit, expected, run.level,
                                                 known=dict(run.known or {}, **run.states))
    if missing or bad:
        if params.get("repair", True):
            for path in bad:
                _remove_local(layout, commit, expected[path])
        msg = "Verification of %s failed after download." % layout.snapshot(commit)
        if bad:
            msg += " " + _corrupt_message(layout, commit, bad) + "."
        if missing:
            msg += " Missing: %s." % ", ".join(missing)
        raise SnapshotError(msg, corrupted=sorted(bad), missing=missing, revision=commit,
                            snapshot_path=layout.snapshot(commit))
    problems, shards = check_index(layout, commit, set(run.selected))
    if problems:
        raise SnapshotError("%s@%s is incomplete: %s." % (layout.repo_id, commit, "; ".join(problems)),
                            revision=commit, snapshot_path=layout.snapshot(commit))
    _write_marker(layout, commit, params, run.selected, expected, states, params.get("verify") or "size")
    return shards


def _from_hub(run: _Run, listing: dict[str, RemoteFile], client: HubClient, check_mode: bool,
              token_changed: bool) -> dict[str, Any]:
    """The snapshot at ``run.commit``, brought up to date from the mirror and the Hub, and verified."""
    _inspect(run, listing)
    _refuse_damaged(run)
    _plan_transfer(run)
    changed = bool(run.to_fetch or run.blob_ready or run.ref_needed or token_changed)
    if check_mode:
        return _result(run.layout, run.commit, run.selected, run.expected, changed=changed,
                       would_repair=sorted(run.corrupt), **run.report)
    mirrored = _transfer(run, client)
    if run.reporter is not None:
        run.reporter.set_phase("verifying")
    shards = _verify(run)
    result = _result(run.layout, run.commit, run.selected, run.expected, changed=changed, shards=shards,
                     source="hub", **run.report)
    result.update({
        "files_downloaded": [r.path for r in run.from_network],
        "bytes_downloaded": sum(r.size for r in run.from_network),
        "files_from_mirror": mirrored,
        "repaired": sorted(run.corrupt),
        "resumed": run.resumed,
    })
    return result


def provision(params: Mapping[str, Any], check_mode: bool = False, client: Optional[HubClient] = None,
              reporter: Optional[Reporter] = None) -> dict[str, Any]:
    """Provision ``params['repo_id']`` into ``params['cache_dir']``; returns the module result (a dict).

    params: repo_id, revision, cache_dir, token, endpoint, allow_patterns, mirror_dir, min_free_bytes, verify,
    offline_ok, download, repair, max_workers, store_token. ``reporter``: a module_utils._progress.Reporter that
    samples the cache while the bytes move (progress file, stall watch), or None.

    Local state first: a verified, complete snapshot means no network I/O at all. Otherwise the revision is
    resolved on the Hub (falling back on the local snapshot when the Hub is unreachable and offline_ok is set),
    free space is checked before any byte is fetched, and the result is verified and recorded.
    """
    params, level, layout = _normalize(params)
    token = params.get("token") or None
    token_changed = False
    if params.get("store_token") and token:
        token_changed = _store_token(layout, token, check_mode)

    result = _fast_path(layout, params, level, check_mode)
    if result is None:
        if client is None:
            client = HubClient(params["endpoint"], token)
        try:
            commit, listing = _resolve(client, layout, params)
        except HubUnreachable as exc:
            result = _offline(layout, params, level, exc)
        else:
            run = _Run(layout, params, level, commit)
            run.reporter = reporter
            return _from_hub(run, listing, client, check_mode, token_changed)
    result["changed"] = token_changed
    return result
