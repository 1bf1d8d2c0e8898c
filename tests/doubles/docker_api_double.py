"""A stand-in for the few Docker Engine API calls of an image pull, on a unix socket, for tests.

No registry can be reached from the test machines, so a real ``docker pull`` of an engine image cannot run there;
this double answers what the module ``image_pull`` asks the daemon, the way dockerd does:

* ``GET /images/{name}/json``: ``404`` (``No such image``) until the image was pulled, then its inspect document
  (``Id``, ``RepoTags``, ``RepoDigests``);
* ``POST /images/create?fromImage=..&tag=..``: a chunked stream of JSON progress messages, as dockerd sends them
  (``Pulling fs layer``, ``Downloading`` with ``progressDetail.current/total``, ``Download complete``, ``Extracting``,
  ``Pull complete``, ``Digest:``, ``Status:``), the download sent at ``rate`` bytes of layer per second.

* ``GET /distribution/{name}/json``: the registry's descriptor of a reference (its manifest digest), without pulling;
* ``POST /images/{name}/tag?repo=..&tag=..``: a tag pointed at an image that is here (``docker tag``).

Tags and digests: ``tags`` maps ``repository:tag`` to the digest the registry gives for it on this double (a tag that
moved is another digest on another double); a tag not listed has a digest made of its name. A pull by digest
(``repository@sha256:...``) gets that digest; ``local`` images are on the host without a registry digest (built or
loaded there); ``distribution=False`` answers the distribution endpoint with an error, as a daemon that cannot ask the
registry does.

``stall_after=N``: after ``N`` downloaded bytes the stream sends nothing more while the connection stays open (a
registry that stopped sending), until ``release()`` or ``stop()``; ``error``: the stream ends with an error message.
Every request is logged (``requests``: method, path, query, whether ``X-Registry-Auth`` came with it). Standard library
only; ``python3 docker_api_double.py --socket /tmp/docker.sock`` serves it by itself.
"""

import hashlib
import json
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class DockerApiDouble:
    def __init__(self, socket_path, layers=3, layer_size=8 * 1024 * 1024, step=1024 * 1024, rate=None,
                 stall_after=None, error=None, present=(), tags=None, local=(), distribution=True):
        self.socket_path = socket_path
        self.layers = layers
        self.layer_size = layer_size
        self.step = step
        self.rate = rate
        self.stall_after = stall_after
        self.error = error
        self.tags = dict(tags or {})
        self.distribution = distribution
        self.images = dict((name, self._inspect(name)) for name in present)
        self.images.update((name, {"Id": "sha256:" + hashlib.sha256(("local " + name).encode()).hexdigest(),
                                   "RepoTags": [name], "RepoDigests": []}) for name in local)
        self.requests = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        self._server = _Server(socket_path, self._handler())
        self._thread = None

    @property
    def docker_host(self):
        return "unix://" + self.socket_path

    def digest(self, name):
        """The registry's digest of a reference on this double."""
        if "@" in name:
            return name.split("@", 1)[1]
        return self.tags.get(name) or "sha256:" + hashlib.sha256(name.encode()).hexdigest()

    def _inspect(self, name):
        digest = self.digest(name)
        repository = name.split("@", 1)[0]
        if "@" not in name and ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        return {"Id": "sha256:" + hashlib.sha256(digest.encode()).hexdigest(), "RepoTags": [] if "@" in name else [name],
                "RepoDigests": [repository + "@" + digest]}

    def find(self, name):
        """An image by reference or by one of its RepoDigests, as the daemon finds it; None where it is not here."""
        with self._lock:
            if name in self.images:
                return self.images[name]
            return next((image for image in self.images.values() if name in image["RepoDigests"]), None)

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

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

            def address_string(self):
                return "unix"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                self._log("GET", path, parts.query)
                if path.startswith("/distribution/") and path.endswith("/json"):
                    name = path[len("/distribution/"):-len("/json")]
                    if not double.distribution:
                        return self._json(500, {"message": "Get https://registry/v2/: dial tcp: connection refused"})
                    return self._json(200, {"Descriptor": {
                        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": double.digest(name),
                        "size": 1609}, "Platforms": [{"architecture": "amd64", "os": "linux"}]})
                if path.startswith("/images/") and path.endswith("/json"):
                    name = path[len("/images/"):-len("/json")]
                    image = double.find(name)
                    if image is None:
                        return self._json(404, {"message": "No such image: %s" % name})
                    return self._json(200, image)
                return self._json(404, {"message": "page not found"})

            def do_POST(self):
                parts = urlsplit(self.path)
                self._log("POST", parts.path, parts.query)
                path = unquote(parts.path)
                if path.startswith("/images/") and path.endswith("/tag"):
                    return self._tag(path[len("/images/"):-len("/tag")], parse_qs(parts.query))
                if parts.path != "/images/create":
                    return self._json(404, {"message": "page not found"})
                query = parse_qs(parts.query)
                repository, tag = query.get("fromImage", [""])[0], query.get("tag", ["latest"])[0]
                name = "%s@%s" % (repository, tag) if tag.startswith("sha256:") else "%s:%s" % (repository, tag)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    self._pull(repository, tag, name)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _pull(self, repository, tag, name):
                self._send({"status": "Pulling from %s" % repository, "id": tag})
                ids = ["%012x" % (0xabc000000000 + n) for n in range(double.layers)]
                for layer in ids:
                    self._send({"status": "Pulling fs layer", "progressDetail": {}, "id": layer})
                sent, began = 0, time.monotonic()
                for layer in ids:
                    current = 0
                    while current < double.layer_size:
                        if double.stall_after is not None and sent >= double.stall_after:
                            double._release.wait(600)
                            return
                        chunk = min(double.step, double.layer_size - current)
                        current += chunk
                        sent += chunk
                        if double.rate:
                            ahead = sent / float(double.rate) - (time.monotonic() - began)
                            if ahead > 0:
                                time.sleep(ahead)
                        self._send({"status": "Downloading", "id": layer,
                                    "progressDetail": {"current": current, "total": double.layer_size}})
                    self._send({"status": "Verifying Checksum", "progressDetail": {}, "id": layer})
                    self._send({"status": "Download complete", "progressDetail": {}, "id": layer})
                if double.error:
                    self._send({"errorDetail": {"message": double.error}, "error": double.error})
                    return
                for layer in ids:
                    self._send({"status": "Extracting", "id": layer,
                                "progressDetail": {"current": double.layer_size, "total": double.layer_size}})
                    self._send({"status": "Pull complete", "progressDetail": {}, "id": layer})
                image = double._inspect(name)
                self._send({"status": "Digest: " + image["RepoDigests"][0].split("@")[1]})
                self._send({"status": "Status: Downloaded newer image for %s" % name})
                with double._lock:
                    double.images[name] = image

            def _tag(self, name, query):
                image = double.find(name)
                if image is None:
                    return self._json(404, {"message": "No such image: %s" % name})
                target = "%s:%s" % (query.get("repo", [""])[0], query.get("tag", ["latest"])[0])
                with double._lock:
                    for other in double.images.values():
                        if target in other["RepoTags"]:
                            other["RepoTags"].remove(target)
                    double.images = dict((key, value) for key, value in double.images.items() if key != target)
                    image["RepoTags"].append(target)
                    double.images[target] = image
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, message):
                body = (json.dumps(message) + "\r\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                self.wfile.flush()

            def _json(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _log(self, method, path, query):
                with double._lock:
                    double.requests.append({"method": method, "path": path, "query": query,
                                            "auth": bool(self.headers.get("X-Registry-Auth"))})

        return Handler


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--rate", type=int)
    args = parser.parse_args()
    double = DockerApiDouble(args.socket, rate=args.rate).start()
    print("serving the Docker API double at %s" % double.docker_host, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
