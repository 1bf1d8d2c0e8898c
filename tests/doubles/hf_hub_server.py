#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub file API, for tests.

It serves small GENERATED model repositories (safetensors shards, ``model.safetensors.index.json``,
``config.json``) the way the Hub answers ``huggingface_hub`` 2.x:

* ``GET /api/models/{repo}[/revision/{rev}]``: repository info (``sha``, ``siblings``; with ``blobs=true`` the
  siblings carry ``size``, ``blobId`` and ``lfs``), what ``HfApi.repo_info``/``model_info`` read.
* ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the tree listing (``type``, ``oid``, ``size``, ``path``, ``lfs``),
  what ``HfApi.list_repo_tree`` (and so ``snapshot_download``) reads.
* ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` and, for LFS files, a ``302`` to a
  second listener (the "CDN", another origin, as on the real Hub) with ``X-Linked-Etag``/``X-Linked-Size``.
  Regular files are answered directly. Bodies honour ``Range: bytes=N-`` (``206`` + ``Content-Range``).
* ``GET /blobs/{sha256}`` on the CDN listener: the LFS bytes, with Range support.

Every request is logged (``requests`` list, optionally a JSON-lines file) with the server (hub/cdn), method, path,
repository file, range, status, body bytes sent and whether an ``Authorization`` header came with it.

A push (``HubDouble.push(FilesRepo(repo_id, files))``) makes new files the head of the repository's branch (a new
commit); every earlier commit is still answered by its hash, as on the Hub.

Fault injection: ``add_fault(file, cut_after=N)`` makes the next GET of ``file`` send its headers and only ``N``
body bytes, then drop the connection (an interrupted download); ``add_fault(file, status=500)`` answers an error;
``add_fault(file, action=f)`` runs ``f()`` before answering (e.g. another writer filling the client's disk);
``add_fault(file, stall_after=N)`` sends ``N`` body bytes, then nothing more while the connection stays open (a
stalled transfer) until ``release_stalls()`` or ``stop()``; faults added for one file apply one after the other.

Throttling: ``HubDouble(rate=B)`` (or ``set_rate(B)``, or ``--rate``) sends file bodies at about ``B`` bytes per
second, in 64 KiB writes, like a slow link.

Only the standard library is used, so the file also runs inside a bare test container:
``python3 hf_hub_server.py --port 18080 --cdn-port 18081 --log /tmp/hub.jsonl``.
"""

import argparse
import hashlib
import json
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_REPO_ID = "deepseek-ai/DeepSeek-V4-Flash"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def git_blob_oid(data):
    """The git object id of a blob (what the Hub calls ``oid``/``blobId`` for a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha256, size)).encode()


def _safetensors_shard(tensors):
    """Bytes of a safetensors file holding ``tensors`` ({name: raw F32 bytes})."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, raw in tensors.items():
        header[name] = {"dtype": "F32", "shape": [len(raw) // 4], "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + b"".join(tensors.values())


class GeneratedRepo:
    """A deterministic small model repository: ``shards`` safetensors shards of about ``shard_size`` bytes."""

    def __init__(self, repo_id=DEFAULT_REPO_ID, shards=4, shard_size=300_000, seed=0, branch="main"):
        self.repo_id = repo_id
        self.branch = branch
        rng = random.Random("%s/%d" % (repo_id, seed))
        files = {}
        weight_map = {}
        total = 0
        width = 5
        per_shard_tensors = 2
        for index in range(1, shards + 1):
            name = "model-%0*d-of-%0*d.safetensors" % (width, index, width, shards)
            tensors = {}
            for t in range(per_shard_tensors):
                tensor = "model.layers.%d.mlp.w%d.weight" % (index - 1, t)
                nbytes = (shard_size // per_shard_tensors) // 4 * 4
                tensors[tensor] = rng.randbytes(nbytes)
                weight_map[tensor] = name
                total += nbytes
            files[name] = _safetensors_shard(tensors)
        index_doc = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        files["model.safetensors.index.json"] = (json.dumps(index_doc, indent=2) + "\n").encode()
        config = {"architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4", "test_double": True,
                  "num_hidden_layers": shards}
        files["config.json"] = (json.dumps(config, indent=2) + "\n").encode()
        files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        self._index(files)

    def _index(self, files):
        """Take ``files`` ({path: bytes}) as the repository's content: LFS sha256s, git object ids, the commit."""
        self.files = dict(sorted(files.items()))
        self.lfs = {p: hashlib.sha256(d).hexdigest() for p, d in self.files.items() if p.endswith(LFS_SUFFIXES)}
        self.oids = {}
        for path, data in self.files.items():
            if path in self.lfs:
                self.oids[path] = git_blob_oid(lfs_pointer(self.lfs[path], len(data)))
            else:
                self.oids[path] = git_blob_oid(data)
        listing = "".join("%s %s\n" % (p, self.oids[p]) for p in self.files)
        self.commit = hashlib.sha1(("commit\n" + listing).encode()).hexdigest()

    # -- helpers for tests ---------------------------------------------------------------------------------
    @property
    def shard_names(self):
        return [p for p in self.files if p.endswith(".safetensors")]

    @property
    def total_size(self):
        return sum(len(d) for d in self.files.values())

    def etag(self, path):
        return self.lfs.get(path) or self.oids[path]

    def write_to(self, directory, only=None):
        """Write the repository's files to ``directory`` (a pre-staged mirror)."""
        import os

        os.makedirs(directory, exist_ok=True)
        for path, data in self.files.items():
            if only is not None and path not in only:
                continue
            target = os.path.join(directory, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)

    def resolve(self, revision):
        if revision in (None, self.branch, self.commit):
            return self.commit
        return None

    def tree_entry(self, path):
        data = self.files[path]
        entry = {"type": "file", "oid": self.oids[path], "size": len(data), "path": path}
        if path in self.lfs:
            entry["lfs"] = {"oid": self.lfs[path], "size": len(data), "pointerSize": len(lfs_pointer(self.lfs[path], len(data)))}
        return entry

    def info(self, blobs):
        siblings = []
        for path, data in self.files.items():
            sibling = {"rfilename": path}
            if blobs:
                sibling["size"] = len(data)
                sibling["blobId"] = self.oids[path]
                if path in self.lfs:
                    sibling["lfs"] = {"sha256": self.lfs[path], "size": len(data),
                                      "pointerSize": len(lfs_pointer(self.lfs[path], len(data)))}
            siblings.append(sibling)
        return {
            "_id": hashlib.md5(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["safetensors", "test-double"],
            "library_name": "transformers",
            "siblings": siblings,
        }


class FilesRepo(GeneratedRepo):
    """A repository of given files ({path: bytes}), e.g. a small real model copied from an image: a push to a
    HubDouble makes it the new head of its branch (HubDouble.push)."""

    def __init__(self, repo_id, files, branch="main"):  # pylint: disable=super-init-not-called
        self.repo_id = repo_id
        self.branch = branch
        self._index(files)


class _Fault:
    def __init__(self, cut_after=None, status=None, times=1, action=None, stall_after=None):
        self.action = action
        self.stall_after = stall_after
        self.cut_after = cut_after
        self.status = status
        self.times = times


class HubDouble:
    """Two threaded HTTP listeners on loopback: the Hub API (``url``) and an LFS "CDN" (``cdn_url``)."""

    def __init__(self, repos=None, host="127.0.0.1", port=0, cdn_port=0, token=None, log_path=None, use_cdn=True,
                 rate=None):
        repos = repos if repos is not None else [GeneratedRepo()]
        self.repos = {r.repo_id: r for r in repos}
        # Every version pushed per repository, oldest first: the head answers its branch, each its own commit.
        self.history = {r.repo_id: [r] for r in repos}
        self.token = token
        self.log_path = log_path
        self.use_cdn = use_cdn
        self.rate = rate
        self._release = threading.Event()
        self.requests = []
        self._lock = threading.Lock()
        self._faults = {}
        self._blobs = {}
        self._connections = set()
        for repo in repos:
            for path, sha in repo.lfs.items():
                self._blobs[sha] = (repo, path)
        self._hub = ThreadingHTTPServer((host, port), self._handler("hub"))
        self._cdn = ThreadingHTTPServer((host, cdn_port), self._handler("cdn"))
        for server in (self._hub, self._cdn):
            server.daemon_threads = True
        self.host = host
        self._threads = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d" % (self.host, self._hub.server_address[1])

    @property
    def cdn_url(self):
        return "http://%s:%d" % (self.host, self._cdn.server_address[1])

    def start(self):
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._release.set()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        # Also drop kept-alive client connections, so a stopped double really is unreachable.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- test helpers ----------------------------------------------------------------------------------------
    def add_fault(self, path, cut_after=None, status=None, times=1, action=None, stall_after=None):
        """Make the next ``times`` GETs of repository file ``path`` fail (cut after N bytes, stall after N bytes,
        or an HTTP status), or run ``action()`` before answering them (something else happening on the client's
        machine meanwhile). Faults added for one file queue up: the next one applies once the previous one is used
        up."""
        with self._lock:
            self._faults.setdefault(path, []).append(
                _Fault(cut_after=cut_after, status=status, times=times, action=action, stall_after=stall_after))
            if stall_after is not None:
                self._release.clear()

    def set_rate(self, rate):
        """Send file bodies at about ``rate`` bytes per second from now on (None: as fast as possible)."""
        self.rate = rate

    def release_stalls(self):
        """End the stalled answers (their connections close)."""
        self._release.set()

    def push(self, repo):
        """Make ``repo`` the new head of its repository's branch (a new commit); earlier commits stay served."""
        with self._lock:
            self.history.setdefault(repo.repo_id, []).append(repo)
            self.repos[repo.repo_id] = repo
            for path, sha in repo.lfs.items():
                self._blobs[sha] = (repo, path)

    def version(self, repo, revision):
        """The pushed version of ``repo`` whose commit ``revision`` is, else the head (its branch, or unknown)."""
        for old in self.history.get(repo.repo_id, [repo]):
            if revision == old.commit:
                return old
        return self.repos.get(repo.repo_id, repo)

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def reset_log(self):
        with self._lock:
            del self.requests[:]

    def log(self):
        with self._lock:
            return list(self.requests)

    def file_gets(self):
        """GET requests that returned file bytes (or tried to), as a list of (file, bytes, range)."""
        return [(r["file"], r["bytes"], r["range"]) for r in self.log() if r["method"] == "GET" and r["file"]
                and (r["server"] == "cdn" or "/resolve/" in r["path"])]

    def bytes_served(self, files_only=True):
        """Body bytes sent so far: of repository files only (what a model copy weighs), or of every answer."""
        if files_only:
            return sum(nbytes for name, nbytes, _rng in self.file_gets() if name)
        return sum(r["bytes"] for r in self.log())

    def _take_fault(self, path):
        with self._lock:
            queue = self._faults.get(path) or []
            while queue and queue[0].times == 0:
                queue.pop(0)
            if not queue:
                return None
            queue[0].times -= 1
            return queue[0]

    def _record(self, entry):
        with self._lock:
            self.requests.append(entry)
            if self.log_path:
                with open(self.log_path, "a") as handle:
                    handle.write(json.dumps(entry, sort_keys=True) + "\n")

    # -- HTTP ------------------------------------------------------------------------------------------------
    def _handler(self, server_name):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "hf-hub-double/1"

            def setup(self):
                BaseHTTPRequestHandler.setup(self)
                with double._lock:
                    double._connections.add(self.connection)

            def finish(self):
                try:
                    BaseHTTPRequestHandler.finish(self)
                finally:
                    with double._lock:
                        double._connections.discard(self.connection)

            def log_message(self, fmt, *args):  # keep test output quiet; the structured log is the record
                pass

            def do_HEAD(self):
                self._dispatch(head=True)

            def do_GET(self):
                self._dispatch(head=False)

            # ---------------------------------------------------------------------------------------------
            def _dispatch(self, head):
                parts = urlsplit(self.path)
                self._entry = {
                    "time": time.time(), "server": server_name, "method": self.command, "path": parts.path,
                    "query": parts.query, "file": None, "range": self.headers.get("Range"), "status": None,
                    "bytes": 0, "auth": bool(self.headers.get("Authorization")),
                }
                try:
                    if server_name == "cdn":
                        self._cdn(parts, head)
                    else:
                        self._hub(parts, head)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    double._record(self._entry)

            def _hub(self, parts, head):
                if double.token is not None:
                    if self.headers.get("Authorization") != "Bearer %s" % double.token:
                        return self._error(401, "RepoNotFound", "Repository not found or authentication required.")
                path = unquote(parts.path)
                query = parse_qs(parts.query)
                if path.startswith("/api/models/"):
                    return self._api(path[len("/api/models/"):], query)
                for repo_id, repo in double.repos.items():
                    prefix = "/%s/resolve/" % repo_id
                    if path.startswith(prefix):
                        revision, _sep, filename = path[len(prefix):].partition("/")
                        return self._resolve(double.version(repo, revision), revision, filename, head)
                return self._error(404, "RepoNotFound", "Repository not found.")

            def _find_repo(self, rest):
                for repo_id, repo in double.repos.items():
                    if rest == repo_id or rest.startswith(repo_id + "/"):
                        return repo, rest[len(repo_id):].lstrip("/")
                return None, None

            def _api(self, rest, query):
                repo, tail = self._find_repo(rest)
                if repo is None:
                    return self._error(401, "RepoNotFound", "Repository not found.")
                blobs = query.get("blobs", ["false"])[0].lower() == "true"
                if tail == "":
                    return self._json(repo.info(blobs))
                if tail.startswith("revision/"):
                    repo = double.version(repo, tail[len("revision/"):])
                    if repo.resolve(tail[len("revision/"):]) is None:
                        return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % tail[len("revision/"):])
                    return self._json(repo.info(blobs))
                if tail.startswith("tree/"):
                    revision, _sep, sub = tail[len("tree/"):].partition("/")
                    repo = double.version(repo, revision)
                    if repo.resolve(revision) is None:
                        return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
                    recursive = query.get("recursive", ["false"])[0].lower() == "true"
                    entries = []
                    folders = set()
                    for file_path in repo.files:
                        if sub and not file_path.startswith(sub.rstrip("/") + "/"):
                            continue
                        relative = file_path[len(sub.rstrip("/")) + 1:] if sub else file_path
                        if not recursive and "/" in relative:
                            folder = (sub.rstrip("/") + "/" if sub else "") + relative.split("/")[0]
                            if folder not in folders:
                                folders.add(folder)
                                entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
                            continue
                        entries.append(repo.tree_entry(file_path))
                    return self._json(entries)
                return self._error(404, None, "Not found.")

            def _resolve(self, repo, revision, filename, head):
                commit = repo.resolve(revision)
                if commit is None:
                    return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
                if filename not in repo.files:
                    return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
                self._entry["file"] = filename
                data = repo.files[filename]
                headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
                if filename in repo.lfs:
                    sha = repo.lfs[filename]
                    headers["X-Linked-Etag"] = '"%s"' % sha
                    headers["X-Linked-Size"] = str(len(data))
                    headers["ETag"] = '"%s"' % repo.oids[filename]
                    if double.use_cdn:
                        headers["Location"] = "%s/blobs/%s?file=%s" % (double.cdn_url, sha, quote(filename))
                        return self._send(302, b"", headers, head=head)
                else:
                    headers["ETag"] = '"%s"' % repo.oids[filename]
                return self._body(filename, data, headers, head)

            def _cdn(self, parts, head):
                match = re.fullmatch(r"/blobs/([0-9a-f]{64})", parts.path)
                if not match or match.group(1) not in double._blobs:
                    return self._error(404, None, "No such blob.")
                repo, filename = double._blobs[match.group(1)]
                self._entry["file"] = filename
                headers = {"Accept-Ranges": "bytes", "ETag": '"%s"' % match.group(1),
                           "Content-Type": "application/octet-stream"}
                return self._body(filename, repo.files[filename], headers, head)

            def _body(self, filename, data, headers, head):
                status, start = 200, 0
                requested = self.headers.get("Range")
                if requested:
                    match = re.fullmatch(r"bytes=(\d+)-(\d*)", requested.strip())
                    if not match or int(match.group(1)) >= len(data):
                        headers["Content-Range"] = "bytes */%d" % len(data)
                        return self._send(416, b"", headers, head=head)
                    total = len(data)
                    start = int(match.group(1))
                    end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
                    data = data[start:end + 1]
                    status = 206
                    headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, total)
                fault = None if head else double._take_fault(filename)
                if fault is not None and fault.action is not None:
                    self._entry["fault"] = "action"
                    fault.action()
                if fault is not None and fault.status:
                    self._entry["fault"] = "status %d" % fault.status
                    return self._error(fault.status, None, "Injected failure.")
                if fault is not None and fault.cut_after is not None:
                    self._entry["fault"] = "cut after %d" % fault.cut_after
                    return self._send(status, data, headers, head=False, cut_after=fault.cut_after)
                if fault is not None and fault.stall_after is not None:
                    self._entry["fault"] = "stall after %d" % fault.stall_after
                    return self._send(status, data, headers, head=False, cut_after=fault.stall_after, stall=True)
                return self._send(status, data, headers, head=head, throttle=True)

            def _json(self, payload):
                body = json.dumps(payload).encode()
                return self._send(200, body, {"Content-Type": "application/json"})

            def _error(self, status, code, message, extra=None):
                headers = dict(extra or {})
                if code:
                    headers["X-Error-Code"] = code
                headers["X-Error-Message"] = message
                headers["Content-Type"] = "application/json"
                body = json.dumps({"error": message}).encode()
                return self._send(status, body, headers, head=self.command == "HEAD")

            def _write(self, body, throttle):
                rate = double.rate if throttle else None
                if not rate:
                    self.wfile.write(body)
                    self._entry["bytes"] += len(body)
                    return
                step = 65536
                began = time.monotonic()
                for offset in range(0, len(body), step):
                    chunk = body[offset:offset + step]
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    self._entry["bytes"] += len(chunk)
                    ahead = self._entry["bytes"] / float(rate) - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)

            def _send(self, status, body, headers, head=False, cut_after=None, throttle=False, stall=False):
                self._entry["status"] = status
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                if cut_after is not None:
                    self._write(body[:cut_after], throttle=stall)
                    self.wfile.flush()
                    self._entry["bytes"] = min(cut_after, len(body))
                    if stall:
                        double._release.wait(600)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self._write(body, throttle)

        return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--cdn-port", type=int, default=18081)
    parser.add_argument("--repo-id", default=DEFAULT_REPO_ID)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=300_000)
    parser.add_argument("--token-file", help="require 'Authorization: Bearer <contents>' on Hub requests")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--rate", type=int, help="send file bodies at about this many bytes per second")
    args = parser.parse_args(argv)
    token = None
    if args.token_file:
        with open(args.token_file) as handle:
            token = handle.read().strip()
    repo = GeneratedRepo(args.repo_id, shards=args.shards, shard_size=args.shard_size)
    double = HubDouble([repo], host=args.host, port=args.port, cdn_port=args.cdn_port, token=token,
                       log_path=args.log, rate=args.rate)
    double.start()
    print("serving %s at %s (commit %s, cdn %s)" % (repo.repo_id, double.url, repo.commit, double.cdn_url),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
