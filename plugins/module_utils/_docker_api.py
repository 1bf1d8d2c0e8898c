# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the Docker Engine API client of its modules. May change without notice; other
# collections must not use it.

"""The few Docker Engine API calls this collection's modules make, over HTTP with the standard library only.

``docker_host`` is a ``unix://`` socket (the default, ``unix:///var/run/docker.sock``) or a ``tcp://`` address,
optionally with TLS (``tls``, ``validate_certs``, ``ca_path``, ``client_cert``, ``client_key``, ``tls_hostname``).
The options, their aliases and their environment variables are those of the community.docker modules, so a task
that sets them for one sets them the same way for the other. Calls: inspect a container, read its log (stdout and
stderr, demultiplexed), read a path of it as a tar archive, inspect an image, ask the registry for an image's digest
(the distribution endpoint), open a streamed answer (an image pull).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import http.client as http_client
import json
import os
import socket
import ssl
import struct
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import quote, urlencode, urlsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.text.converters import to_native

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60

# The connection options every module of this collection that talks to Docker takes (doc fragment
# inference.deepseek_v4._docker_api documents them).
ARGUMENT_SPEC = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, aliases=["docker_url"],
                     fallback=(env_fallback, ["DOCKER_HOST"])),
    api_version=dict(type="str", default="auto", aliases=["docker_api_version"],
                     fallback=(env_fallback, ["DOCKER_API_VERSION"])),
    timeout=dict(type="int", default=DEFAULT_TIMEOUT, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
    tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", default=False, aliases=["tls_verify"],
                        fallback=(env_fallback, ["DOCKER_TLS_VERIFY"])),
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert", "cacert_path"]),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"], no_log=False),
    tls_hostname=dict(type="str", fallback=(env_fallback, ["DOCKER_TLS_HOSTNAME"])),
)
REQUIRED_TOGETHER = [["client_cert", "client_key"]]

# Content types of the log endpoint (API 1.42 and later name them; older daemons follow the container's TTY).
_RAW_STREAM = "application/vnd.docker.raw-stream"
_MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


class DockerError(Exception):
    """The daemon could not be reached, or answered with an error."""

    def __init__(self, msg: str, status: Optional[int] = None) -> None:
        super(DockerError, self).__init__(msg)
        self.status = status


class _UnixHTTPConnection(http_client.HTTPConnection):
    """HTTP over a unix socket (the Docker daemon's default endpoint)."""

    def __init__(self, path: str, timeout: float) -> None:
        http_client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class _TLSConnection(http_client.HTTPConnection):
    """HTTPS to a TCP endpoint, with the server name to check given apart from the address (tls_hostname)."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext, server_hostname: str) -> None:
        http_client.HTTPConnection.__init__(self, host, port, timeout=timeout)
        self.context = context
        self.server_hostname = server_hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.server_hostname)


def _cert_path(params: Mapping[str, Any], option: str, file_name: str) -> Optional[str]:
    """An option's path, or the file of that name in $DOCKER_CERT_PATH (as the Docker CLI reads it)."""
    if params.get(option):
        return params[option]
    directory = os.environ.get("DOCKER_CERT_PATH")
    if directory and os.path.exists(os.path.join(directory, file_name)):
        return os.path.join(directory, file_name)
    return None


def tls_context(params: Mapping[str, Any]) -> ssl.SSLContext:
    """The SSL context of a TLS connection: certificates checked with validate_certs only (Docker's tls/tlsverify)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if params.get("validate_certs"):
        ca_path = _cert_path(params, "ca_path", "ca.pem")
        if ca_path:
            context.load_verify_locations(cafile=ca_path)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client_cert = _cert_path(params, "client_cert", "cert.pem")
    client_key = _cert_path(params, "client_key", "key.pem")
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


def demultiplex(raw: bytes) -> bytes:
    """The payloads of Docker's multiplexed stream (8-byte frame headers: stream, 0, 0, 0, size), in order."""
    chunks = []
    offset = 0
    while offset + 8 <= len(raw):
        size = struct.unpack(">I", raw[offset + 4:offset + 8])[0]
        chunks.append(raw[offset + 8:offset + 8 + size])
        offset += 8 + size
    return b"".join(chunks)


class DockerClient(object):
    """One Docker daemon, as the connection options name it."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.docker_host = params.get("docker_host") or DEFAULT_DOCKER_HOST
        version = params.get("api_version") or "auto"
        self.prefix = "" if version == "auto" else "/v" + version.lstrip("v")

    def _connection(self) -> http_client.HTTPConnection:
        url = urlsplit(self.docker_host)
        timeout = self.params.get("timeout") or DEFAULT_TIMEOUT
        if url.scheme == "unix":
            return _UnixHTTPConnection(url.path, timeout)
        if url.scheme not in ("tcp", "http", "https") or not url.hostname:
            raise DockerError("docker_host {0!r}: use unix:///path/to/docker.sock or tcp://host:port".format(
                self.docker_host))
        secure = url.scheme == "https" or self.params.get("tls") or self.params.get("validate_certs")
        if not secure:
            return http_client.HTTPConnection(url.hostname, url.port or 2375, timeout=timeout)
        return _TLSConnection(url.hostname, url.port or 2376, timeout, tls_context(self.params),
                              self.params.get("tls_hostname") or url.hostname)

    def request(self, path: str, query: Optional[Mapping[str, Any]] = None,
                headers: Optional[Mapping[str, str]] = None) -> tuple[int, str, bytes]:
        """(status, content type, body bytes) of a GET of an API path."""
        url = self.prefix + path + ("?" + urlencode(query) if query else "")
        try:
            connection = self._connection()
            try:
                connection.request("GET", url, headers=dict({"Accept-Encoding": "identity"}, **(headers or {})))
                response = connection.getresponse()
                return response.status, response.getheader("Content-Type") or "", response.read()
            finally:
                connection.close()
        except (OSError, http_client.HTTPException, ssl.SSLError) as e:
            raise DockerError("cannot talk to the Docker daemon at {0} (option docker_host, or DOCKER_HOST): {1}"
                              .format(self.docker_host, e))

    def get(self, path: str, query: Optional[Mapping[str, Any]] = None, missing_ok: bool = True,
            headers: Optional[Mapping[str, str]] = None) -> Optional[tuple[str, bytes]]:
        """The body of a successful GET; None for a 404 where missing_ok; DockerError otherwise."""
        status, content_type, body = self.request(path, query, headers)
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            try:
                message = json.loads(body.decode("utf-8")).get("message")
            except ValueError:
                message = body.decode("utf-8", "replace").strip()
            raise DockerError("Docker answered {0} to GET {1}: {2}".format(status, path, message), status=status)
        return content_type, body

    def open_stream(self, method: str, path: str, query: Optional[Mapping[str, Any]] = None,
                    headers: Optional[Mapping[str, str]] = None,
                    timeout: Optional[float] = None) -> tuple[http_client.HTTPConnection, http_client.HTTPResponse]:
        """Send a request whose answer is a stream (an image pull's JSON lines); returns (connection, response).
        The caller reads the response and closes the connection (closing it cancels the daemon's work). ``timeout``:
        seconds a read may wait (default the connection's timeout option)."""
        url = self.prefix + path + ("?" + urlencode(query) if query else "")
        try:
            connection = self._connection()
            if timeout is not None:
                connection.timeout = timeout
            connection.request(method, url, headers=dict({"Accept-Encoding": "identity"}, **(headers or {})))
            return connection, connection.getresponse()
        except (OSError, http_client.HTTPException, ssl.SSLError) as e:
            raise DockerError("cannot talk to the Docker daemon at {0} (option docker_host, or DOCKER_HOST): {1}"
                              .format(self.docker_host, e))

    def inspect_image(self, name: str) -> Optional[dict[str, Any]]:
        """`docker image inspect` of an image by reference or ID, None where it is not on the host."""
        got = self.get("/images/{0}/json".format(quote(name, safe="/:@")))
        return None if got is None else json.loads(got[1].decode("utf-8"))

    def distribution(self, name: str, auth: Optional[str] = None) -> dict[str, Any]:
        """The registry's descriptor of an image reference (``GET /distribution/{name}/json``: the manifest's digest,
        asked of the registry through the daemon, nothing pulled); ``auth``: the X-Registry-Auth value."""
        got = self.get("/distribution/{0}/json".format(quote(name, safe="/:@")), missing_ok=False,
                       headers={"X-Registry-Auth": auth} if auth else None)
        return json.loads(got[1].decode("utf-8"))

    def inspect_container(self, name: str) -> Optional[dict[str, Any]]:
        """`docker inspect` of a container by name or ID, None where it does not exist."""
        got = self.get("/containers/{0}/json".format(quote(name, safe="")))
        return None if got is None else json.loads(got[1].decode("utf-8"))

    def container_logs(self, container: Mapping[str, Any], tail: int, timestamps: bool = False) -> bytes:
        """The last ``tail`` lines of a container's stdout and stderr (as written, interleaved), as bytes."""
        query = {"stdout": 1, "stderr": 1, "tail": str(max(int(tail), 0)), "timestamps": 1 if timestamps else 0}
        content_type, body = self.get("/containers/{0}/logs".format(quote(container["Id"], safe="")), query,
                                      missing_ok=False)
        if content_type.startswith(_MULTIPLEXED_STREAM):
            return demultiplex(body)
        if content_type.startswith(_RAW_STREAM) or (container.get("Config") or {}).get("Tty"):
            return body
        return demultiplex(body)

    def container_archive(self, container_id: str, path: str) -> Optional[bytes]:
        """A tar archive of a path of a container (`docker cp`), None where the path does not exist."""
        got = self.get("/containers/{0}/archive".format(quote(container_id, safe="")), {"path": path})
        return None if got is None else got[1]


def run_module(argument_spec: Mapping[str, Any], run: Callable[[AnsibleModule], None],
               errors: Iterable[type[Exception]] = ()) -> None:
    """The main() of a module of this collection that talks to the Docker daemon: its options with the connection
    options, check mode, and a failure (a DockerError, or one of ``errors``) said as the module's message."""
    module = AnsibleModule(argument_spec=dict(ARGUMENT_SPEC, **argument_spec), supports_check_mode=True,
                           required_together=REQUIRED_TOGETHER)
    try:
        run(module)
    except (DockerError,) + tuple(errors) as e:
        module.fail_json(msg=to_native(e))
