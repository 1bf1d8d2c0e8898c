#!/usr/bin/env python3
"""TEST DOUBLE: the entrypoint of the scale benchmark's engine image (benchmarks/scale_bench.py).

Takes the container command a plan gives the vLLM image (``MODEL --flag ... --host H --port N``), waits a fixed
time as an engine loading its weights would (``DSV4_SCALE_ENGINE_READY_S``, baked into the image at build time,
default 60 s; /health is not answered meanwhile), then serves what vllm-router and the smoke test ask of a vLLM
engine with the stand-in worker (tests/doubles/stand_in_worker.py: /health, /v1/models, completions, chat with
reasoning when thinking is set, kv_transfer_params on the NIXL prefill leg, the Mooncake bootstrap /query). It
costs a few MiB per engine, so 32 hosts fit on a small machine. Standard library only.
"""

import argparse
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stand_in_worker import make_handler  # noqa: E402  pylint: disable=wrong-import-position


def flag(argv, name, default=None):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def main(argv):
    model = argv[0] if argv and not argv[0].startswith("-") else flag(argv, "--model", "deepseek-ai/DeepSeek-V4-Flash")
    args = argparse.Namespace(
        port=int(flag(argv, "--port", "8000")),
        model=flag(argv, "--served-model-name", model),
        dp_size=int(flag(argv, "--data-parallel-size", "1")),
    )
    host = flag(argv, "--host", "0.0.0.0")
    ready_s = float(os.environ.get("DSV4_SCALE_ENGINE_READY_S", "60"))
    # As vLLM does, SIGTERM (docker stop) ends the engine, loading or serving: PID 1 of a container has no default
    # action for it, and Docker would wait out the whole stop timeout (the plan's drain and a margin).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("scale engine double: %s on %s:%d, ready in %.0f s" % (args.model, host, args.port, ready_s), flush=True)
    time.sleep(ready_s)
    servers = [ThreadingHTTPServer((host, args.port), make_handler(args))]
    bootstrap = os.environ.get("VLLM_MOONCAKE_BOOTSTRAP_PORT")
    if bootstrap and "MooncakeConnector" in " ".join(argv):
        servers.append(ThreadingHTTPServer((host, int(bootstrap)), make_handler(args)))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("scale engine double: ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
