"""A stand-in for a container registry (the Distribution API v2 a Docker daemon pulls from), for tests.

It serves one small GENERATED image (``layers`` gzip layers of ``layer_size`` random bytes each, a minimal image
configuration, a schema 2 manifest) on loopback over plain HTTP, which a Docker daemon on the same machine accepts for
``127.0.0.1:<port>`` without configuration. So the real daemon pulls, and its real progress stream is what a test
reads:

* ``GET /v2/``: the API version check;
* ``HEAD``/``GET /v2/{name}/manifests/{tag or digest}``: the manifest, with ``Docker-Content-Digest``;
* ``HEAD``/``GET /v2/{name}/blobs/{digest}``: the configuration and the layers, the layers sent at ``rate`` bytes per
  second; ``stall_after=N``: a layer's answer stops after ``N`` bytes while the connection stays open, until
  ``release()`` or ``stop()`` (a registry that stopped sending).

Every request is logged (``requests``: method, path, bytes sent). Standard library only.
"""

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(index, size, seed):
    """(gzip bytes, uncompressed digest) of a layer holding one file of ``size`` random bytes."""
    rng = random.Random("%s/%d" % (seed, index))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("data/layer-%d.bin" % index)
        info.size = size
        info.mtime = 0
        tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    plain = raw.getvalue()
    return gzip.compress(plain, compresslevel=1, mtime=0), _digest(plain)


class RegistryDouble:
    def __init__(self, repository="dsv4-test/pull", tag="v1", layers=3, layer_size=4 * 1024 * 1024, rate=None,
                 stall_after=None, seed="registry-double"):
        self.repository = repository
        self.tag = tag
        self.rate = rate
        self.stall_after = stall_after
        self.requests = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.blobs = {}
        diff_ids, descriptors = [], []
        for index in range(layers):
            data, diff_id = _layer(index, layer_size, seed)
            self.blobs[_digest(data)] = data
            diff_ids.append(diff_id)
            descriptors.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                "size": len(data), "digest": _digest(data)})
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "registry double layer %d" % n} for n in range(layers)],
        }, sort_keys=True).encode()
        self.config_digest = _digest(config)
        self.blobs[self.config_digest] = config
        self.layer_digests = [d["digest"] for d in descriptors]
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                       "digest": self.config_digest},
            "layers": descriptors,
        }, sort_keys=True).encode()
        self.manifest_digest = _digest(self.manifest)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def image(self):
        return "127.0.0.1:%d/%s:%s" % (self._server.server_address[1], self.repository, self.tag)

    @property
    def layers_size(self):
        return sum(len(self.blobs[d]) for d in self.layer_digests)

    def start(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self):
        self._release.set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head):
                entry = {"method": self.command, "path": self.path, "bytes": 0}
                try:
                    self._route(head, entry)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    with double._lock:
                        double.requests.append(entry)

            def _route(self, head, entry):
                if self.path == "/v2/":
                    return self._send(200, b"{}", "application/json", head, entry)
                match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", self.path)
                if not match or match.group(1) != double.repository:
                    return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}', "application/json", head, entry)
                kind, ref = match.group(2), match.group(3)
                if kind == "manifests":
                    if ref not in (double.tag, double.manifest_digest):
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json",
                                          head, entry)
                    return self._send(200, double.manifest, MANIFEST_TYPE, head, entry,
                                      {"Docker-Content-Digest": double.manifest_digest})
                data = double.blobs.get(ref)
                if data is None:
                    return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json", head, entry)
                layer = ref in double.layer_digests
                return self._send(200, data, "application/octet-stream", head, entry, {"Docker-Content-Digest": ref},
                                  throttle=layer)

            def _send(self, status, body, content_type, head, entry, extra=None, throttle=False):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if head:
                    return
                began, step = time.monotonic(), 65536
                for offset in range(0, len(body), step):
                    if throttle and double.stall_after is not None and offset >= double.stall_after:
                        double._release.wait(600)
                        self.close_connection = True
                        return
                    chunk = body[offset:offset + step]
                    self.wfile.write(chunk)
                    entry["bytes"] += len(chunk)
                    if throttle and double.rate:
                        self.wfile.flush()
                        ahead = entry["bytes"] / float(double.rate) - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)

        return Handler
