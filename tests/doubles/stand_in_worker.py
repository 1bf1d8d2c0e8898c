#!/usr/bin/env python3
"""TEST DOUBLE: a stand-in vLLM worker for the vllm_router and smoke_test scenarios (standard library only).

Answers what vllm-router and the smoke test ask of a vLLM engine, instantly: /health, /v1/models,
/v1/completions, /v1/chat/completions (plain and streamed, with reasoning content when
chat_template_kwargs.thinking is set, and kv_transfer_params for prefill requests) and the Mooncake
bootstrap /query ({dp_rank: {engine_id, worker_addr}}). The engine scenario and the rehearsal use the
real vLLM rehearsal image instead; this keeps the router scenarios fast. It listens on 127.0.0.1 inside
the scenario instances, which have their own network namespace (not the host network), so the plan's
ports (8000, 8001, 8998, 9889) never meet the rehearsal's on the host.

    stand_in_worker.py --port 8000 --model NAME [--bootstrap-port 8998] [--dp-size 1]
"""

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "323"
REASONING = "17*19 = 17*20 - 17 = 340 - 17 = 323."


def make_handler(args):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def _json(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/health":
                self._json(200, {})
            elif path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": args.model, "object": "model", "owned_by": "stand-in"}]})
            elif path == "/query":
                self._json(200, {str(rank): {"engine_id": "stand-in-%d-%d" % (args.port, rank),
                                             "worker_addr": {"0": {"0": "127.0.0.1:%d" % (args.port + 100)}}}
                                 for rank in range(args.dp_size)})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?")[0]
            if path == "/v1/completions":
                self._json(200, {"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "model": args.model,
                                 "choices": [{"index": 0, "text": "!", "finish_reason": "length"}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
            elif path == "/v1/chat/completions":
                self._chat(body)
            else:
                self._json(404, {"error": "not found"})

        def _chat(self, body):
            kv = body.get("kv_transfer_params") or {}
            thinking = bool((body.get("chat_template_kwargs") or {}).get("thinking"))
            cid = "chatcmpl-" + uuid.uuid4().hex
            usage = {"prompt_tokens": 20, "completion_tokens": 12 if thinking else 2, "total_tokens": 32 if thinking else 22}
            if kv.get("do_remote_decode"):  # prefill leg of a disaggregated request
                self._json(200, {"id": cid, "object": "chat.completion", "model": args.model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                              "finish_reason": "length"}],
                                 "usage": usage,
                                 "kv_transfer_params": {"do_remote_prefill": True, "do_remote_decode": False,
                                                        "remote_engine_id": "stand-in-%d-0" % args.port,
                                                        "remote_host": "127.0.0.1", "remote_port": args.port + 100}})
                return
            reasoning = REASONING if thinking else None
            if not body.get("stream"):
                message = {"role": "assistant", "content": ANSWER}
                if reasoning:
                    message["reasoning"] = message["reasoning_content"] = reasoning
                self._json(200, {"id": cid, "object": "chat.completion", "model": args.model,
                                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()

            def send(delta, finish=None, use=None):
                chunk = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": args.model,
                         "choices": [] if use else [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if use:
                    chunk["usage"] = use
                self.wfile.write(("data: " + json.dumps(chunk) + "\n\n").encode())
                self.wfile.flush()

            send({"role": "assistant", "content": ""})
            if reasoning:
                for word in reasoning.split(" "):
                    send({"reasoning": word + " ", "reasoning_content": word + " "})
            send({"content": ANSWER})
            send({}, finish="stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                send(None, use=usage)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="deepseek-ai/DeepSeek-V4-Flash")
    parser.add_argument("--bootstrap-port", type=int)
    parser.add_argument("--dp-size", type=int, default=1)
    args = parser.parse_args()
    servers = [ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args))]
    if args.bootstrap_port:
        servers.append(ThreadingHTTPServer(("127.0.0.1", args.bootstrap_port), make_handler(args)))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # As vLLM does: SIGTERM (docker stop) ends the server; nothing is in flight long enough here to drain. Without
    # a handler, PID 1 of a container ignores SIGTERM and Docker waits out the whole stop timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
