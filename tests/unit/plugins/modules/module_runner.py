# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Run a module's main() in-process with the given arguments and return its JSON result; the local image the modules'
tests run real containers from; a real HTTP server on a free loopback port for the health URLs they probe."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def run_main(main, args, capsys):
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core < 2.19
        patch_module_args = None
    if patch_module_args is not None:
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                main()
    else:
        from ansible.module_utils import basic
        from ansible.module_utils.common.text.converters import to_bytes
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        with pytest.raises(SystemExit):
            main()
    return json.loads(capsys.readouterr().out)


def local_systemd_image():
    """The rehearsal's base image on this Docker engine (built locally, never pulled), or None."""
    if not shutil.which("docker"):
        return None
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True,
                         check=False)
    images = [i for i in out.stdout.split() if "deepseek-v4-systemd" in i] if out.returncode == 0 else []
    return images[0] if images else None


@contextlib.contextmanager
def http_server(handler):
    """A real HTTP server with HANDLER (a BaseHTTPRequestHandler class) on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:{0}".format(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def status_handler(codes):
    """A handler class that answers each path of CODES (path -> HTTP status) with its status, any other with 404."""
    class _Status(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(codes.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass
    return _Status
