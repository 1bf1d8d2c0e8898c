# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""module_utils/_docker_api: the collection's own Docker Engine API client.

Against a double of the Engine API on a unix socket (what the requests look like, how the answers are read) and
on TLS with a certificate of a throw-away CA; the modules' results against the real Docker engine are in
tests/unit/plugins/modules/test_docker_modules.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api as api


def _frame(stream, data):
    return struct.pack(">BxxxI", stream, len(data)) + data


class _EngineDouble(BaseHTTPRequestHandler):
    """Answers the three calls of the client as the Docker Engine API documents them."""

    protocol_version = "HTTP/1.1"
    seen = []
    content_type = "application/vnd.docker.multiplexed-stream"

    def address_string(self):
        return "unix"

    def _send(self, code, body, content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append(self.path)
        if self.path.startswith("/v1.41/containers/engine%2F1/json") or self.path == "/containers/engine%2F1/json":
            self._send(200, json.dumps({"Id": "abc123", "State": {"Status": "exited", "ExitCode": 2},
                                        "Config": {"Tty": False}}).encode())
        elif self.path.startswith("/containers/abc123/logs?"):
            self._send(200, _frame(1, b"out 1\n") + _frame(2, b"err 2\n") + _frame(1, b"out 3\n"), self.content_type)
        elif self.path.startswith("/containers/abc123/archive?path=%2Fnone"):
            self._send(404, b'{"message": "Could not find the file /none in container abc123"}')
        elif self.path.startswith("/containers/abc123/archive?"):
            self._send(200, b"TAR", "application/x-tar")
        elif self.path.startswith("/containers/broken/json"):
            self._send(500, b'{"message": "the daemon broke"}')
        else:
            self._send(404, b'{"message": "No such container"}')

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture()
def engine(tmp_path):
    path = str(tmp_path / "docker.sock")
    server = _UnixServer(path, _EngineDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _EngineDouble.seen[:] = []
    yield "unix://" + path
    server.shutdown()
    server.server_close()


def test_demultiplex_keeps_the_order_of_stdout_and_stderr():
    raw = _frame(1, b"a\n") + _frame(2, b"b\n") + _frame(1, b"") + _frame(1, b"c")
    assert api.demultiplex(raw) == b"a\nb\nc"


def test_inspect_quotes_the_name_and_says_none_for_a_missing_container(engine):
    client = api.DockerClient({"docker_host": engine})
    assert client.inspect_container("engine/1")["Id"] == "abc123"
    assert client.inspect_container("gone") is None
    assert _EngineDouble.seen == ["/containers/engine%2F1/json", "/containers/gone/json"]


def test_a_pinned_api_version_prefixes_every_path(engine):
    client = api.DockerClient({"docker_host": engine, "api_version": "1.41"})
    assert client.inspect_container("engine/1")["Id"] == "abc123"
    assert _EngineDouble.seen == ["/v1.41/containers/engine%2F1/json"]


@pytest.mark.parametrize("content_type, tty", [("application/vnd.docker.multiplexed-stream", True),
                                               ("text/plain; charset=utf-8", False)])
def test_logs_are_demultiplexed_by_content_type_or_else_by_the_tty(engine, content_type, tty):
    _EngineDouble.content_type = content_type
    client = api.DockerClient({"docker_host": engine})
    container = {"Id": "abc123", "Config": {"Tty": tty}}
    try:
        assert client.container_logs(container, 3, timestamps=True) == b"out 1\nerr 2\nout 3\n"
    finally:
        _EngineDouble.content_type = "application/vnd.docker.multiplexed-stream"
    assert _EngineDouble.seen == ["/containers/abc123/logs?stdout=1&stderr=1&tail=3&timestamps=1"]


def test_archive_of_a_missing_path_is_none(engine):
    client = api.DockerClient({"docker_host": engine})
    assert client.container_archive("abc123", "/results") == b"TAR"
    assert client.container_archive("abc123", "/none") is None


def test_daemon_errors_carry_status_and_message(engine):
    with pytest.raises(api.DockerError) as err:
        api.DockerClient({"docker_host": engine}).inspect_container("broken")
    assert err.value.status == 500 and "the daemon broke" in str(err.value)


def test_an_unreachable_daemon_names_the_option(tmp_path):
    host = "unix://" + str(tmp_path / "nothing.sock")
    with pytest.raises(api.DockerError) as err:
        api.DockerClient({"docker_host": host}).inspect_container("x")
    assert host in str(err.value) and "docker_host" in str(err.value)


@pytest.mark.parametrize("host", ["ssh://user@host", "npipe:////./pipe/docker_engine", "tcp://"])
def test_an_unsupported_docker_host_is_refused(host):
    with pytest.raises(api.DockerError) as err:
        api.DockerClient({"docker_host": host}).inspect_container("x")
    assert "unix://" in str(err.value) and "tcp://" in str(err.value)


def _certificates(directory):
    """A CA and a server certificate for the name docker.test, made with cryptography (ansible-core needs it)."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def make(subject, issuer, key, signer, ca):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = make("test CA", "test CA", ca_key, ca_key, True)
    server_cert = make("docker.test", "test CA", server_key, ca_key, False)
    paths = {name: os.path.join(directory, name) for name in ("ca.pem", "server.pem", "server-key.pem")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.pem"], "wb") as f:
        f.write(server_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["server-key.pem"], "wb") as f:
        f.write(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return paths


@pytest.fixture()
def tls_engine(tmp_path):
    import ssl
    paths = _certificates(str(tmp_path))
    server = HTTPServer(("127.0.0.1", 0), _EngineDouble)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["server.pem"], paths["server-key.pem"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "tcp://127.0.0.1:{0}".format(server.server_address[1]), paths
    server.shutdown()
    server.server_close()


def test_tls_checks_the_certificate_against_ca_path_and_tls_hostname(tls_engine, monkeypatch):
    host, paths = tls_engine
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    checked = {"docker_host": host, "validate_certs": True, "ca_path": paths["ca.pem"], "tls_hostname": "docker.test"}
    assert api.DockerClient(checked).inspect_container("engine/1")["Id"] == "abc123"
    # The certificate names docker.test, not 127.0.0.1: checked without tls_hostname, it is refused.
    with pytest.raises(api.DockerError) as err:
        api.DockerClient(dict(checked, tls_hostname=None)).inspect_container("engine/1")
    assert "certificate" in str(err.value).lower()
    # tls without validate_certs encrypts and checks nothing (Docker's --tls).
    assert api.DockerClient({"docker_host": host, "tls": True}).inspect_container("engine/1")["Id"] == "abc123"
    # Plain HTTP to a TLS endpoint fails with the address in the message.
    with pytest.raises(api.DockerError) as err:
        api.DockerClient({"docker_host": host}).inspect_container("engine/1")
    assert host in str(err.value)


def test_docker_cert_path_supplies_the_ca(tls_engine, monkeypatch):
    host, paths = tls_engine
    monkeypatch.setenv("DOCKER_CERT_PATH", os.path.dirname(paths["ca.pem"]))
    client = api.DockerClient({"docker_host": host, "validate_certs": True, "tls_hostname": "docker.test"})
    assert client.inspect_container("engine/1")["Id"] == "abc123"
