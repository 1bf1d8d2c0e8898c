"""TEST DOUBLE: a stand-in for vllm-router behind the endpoint proxy (molecule scenario endpoint_proxy).

Standard library only. Answers GET /v1/models, /health and POST /v1/chat/completions as an OpenAI server would, and
vllm-router's admin routes (/workers, /list_workers, /add_worker, /remove_worker) with 200, so that a 404 through the
proxy proves the proxy refused them. Every answer carries X-Upstream-Double: <name> (router by default) and echoes the Authorization
header it received (X-Upstream-Authorization), so a test sees what the proxy forwards.

With --name decode it stands in for an engine the proxy falls back to. While the file given by --fail-file holds a
status code, chat completions answer it (what vllm-router answers while a prefill or decode it picked is down).

    router_upstream_double.py --port 30000 [--host 127.0.0.1] [--name router] [--fail-file /run/router-double.fail]
"""

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "deepseek-ai/DeepSeek-V4-Flash"
ADMIN = ("/workers", "/list_workers", "/add_worker", "/remove_worker")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream-Double", self.server.name)
        self.send_header("X-Upstream-Authorization", self.headers.get("Authorization", "(none)"))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            return self._json(200, {"status": "ok", "double": self.server.name})
        if path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        if path == "/v1/chat/completions":
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            failing = self._failing()
            if failing:
                return self._json(failing, {"error": "Request processing failed: Prefill request failed"})
            return self._json(200, {"object": "chat.completion", "model": MODEL, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "323"}, "finish_reason": "stop"}]})
        if path.startswith(ADMIN):
            return self._json(200, {"admin": path, "double": self.server.name})
        return self._json(404, {"error": "not found"})

    def _failing(self):
        try:
            with open(self.server.fail_file, encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except (OSError, TypeError, ValueError):
            return 0

    do_GET = _route
    do_POST = _route


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--name", default="router")
    parser.add_argument("--fail-file", default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.name = args.name
    server.fail_file = args.fail_file if args.fail_file else os.devnull
    server.serve_forever()


if __name__ == "__main__":
    main()
