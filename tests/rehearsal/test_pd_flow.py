"""Rehearsal of the H200 single-host prefill/decode (Mooncake) flow on a CPU machine.

The seed's own prefill, decode and router commands are run: the engines in the rehearsal engine image
(scripts/build-rehearsal-image.sh; real vLLM parser and CPU engine, tiny model, PD double for the
KV transfer), the router as the real `vllm-router`, and the requests through the real `openai`
client. See tests/rehearsal/README.md.

Skipped when Docker, the image, vllm-router or openai is missing, unless DSV4_REQUIRE_REHEARSAL=1
(then those fail). Ports: the seed's own (8000, 8001, 8998, 9889, 30000) when they are all free,
else the same shifted by DSV4_REHEARSAL_PORT_OFFSET (default 20000); DSV4_REHEARSAL_PORT_OFFSET set
explicitly always applies.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# `rehearsal` once pytest.ini registers it (the repository runs pytest with --strict-markers).
_MARKS = [pytest.mark.slow, pytest.mark.docker]
if re.search(r"^\s+rehearsal:", (ROOT / "pytest.ini").read_text(encoding="utf-8") if (ROOT / "pytest.ini").exists()
             else "", re.M):
    _MARKS.append(pytest.mark.rehearsal)
pytestmark = _MARKS
SEED = ROOT / "tests" / "fixtures" / "seeds" / "000_23be139418635e2c.txt"
REQUIRE = os.environ.get("DSV4_REQUIRE_REHEARSAL") == "1"
MODEL = "deepseek-ai/DeepSeek-V4-Flash"
QUESTION = [{"role": "user", "content": "What is 17*19? Return only the final integer."}]
ENGINE_READY_TIMEOUT = float(os.environ.get("DSV4_REHEARSAL_READY_TIMEOUT", "900"))
# Docker options of the seed left out here: the GPU request, --privileged (there for the RDMA devices;
# a nested Docker engine like the rehearsal's cannot grant it), the Hugging Face cache and shared-dir
# mounts (the tiny model is in the image) and published ports (ignored under --network host anyway).
# --ipc=host stays: vLLM needs more /dev/shm than Docker's default 64 MiB, on a CPU too.
GPU_ONLY_OPTIONS = {"--gpus", "--privileged", "-p", "-v"}


def unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"rehearsal required (DSV4_REQUIRE_REHEARSAL=1) but {reason}")
    pytest.skip(f"rehearsal skipped: {reason} (set DSV4_REQUIRE_REHEARSAL=1 to make this an error)")


# ---- the seed's commands ----------------------------------------------------------------------
def seed_commands() -> dict[str, list[str]]:
    """The seed's `docker run` (prefill, decode) and `vllm-router` commands, as argv lists."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    commands: list[list[str]] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("docker run") or line.startswith("vllm-router"):
            parts = []
            while True:
                cur = lines[i].strip()
                parts.append(cur[:-1] if cur.endswith("\\") else cur)
                if not cur.endswith("\\") or i + 1 >= len(lines):
                    break
                i += 1
            commands.append(shlex.split(" ".join(parts)))
        i += 1
    dockers = [c for c in commands if c[0] == "docker"]
    routers = [c for c in commands if c[0] == "vllm-router"]
    assert len(dockers) == 2 and len(routers) == 1, f"unexpected seed layout: {commands}"
    return {"prefill": dockers[0], "decode": dockers[1], "router": routers[0]}


def split_docker_run(cmd: list[str]) -> tuple[list[str], dict[str, str], str, list[str]]:
    """docker run argv -> (docker options, env, image, container argv)."""
    assert cmd[:2] == ["docker", "run"]
    opts, env = [], {}
    i = 2
    while i < len(cmd):
        tok = cmd[i]
        if not tok.startswith("-"):
            return opts, env, tok, cmd[i + 1:]
        name, _sep, inline = tok.partition("=")
        takes_value = name in {"-e", "--env", "-p", "-v", "--ipc", "--network", "--gpus", "--name"} and not inline
        value = cmd[i + 1] if takes_value else inline
        if name in ("-e", "--env"):
            key, _sep, val = value.partition("=")
            env[key] = val
        else:
            opts.append((name, value))
        i += 2 if takes_value else 1
    raise AssertionError("no image in docker run command")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def choose_ports() -> dict[str, int]:
    seed = {"prefill": 8000, "decode": 8001, "prefill_bootstrap": 8998, "decode_bootstrap": 9889,
            "router": 30000, "router_metrics": 29000}
    explicit = os.environ.get("DSV4_REHEARSAL_PORT_OFFSET")
    if explicit is None and all(port_free(p) for p in seed.values()):
        return seed
    offset = int(explicit or 20000)
    shifted = {k: v + offset for k, v in seed.items()}
    busy = [p for p in shifted.values() if not port_free(p)]
    if busy:
        unavailable(f"ports {busy} are in use (set DSV4_REHEARSAL_PORT_OFFSET)")
    return shifted


# ---- helpers ----------------------------------------------------------------------------------
def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def container_state(name: str) -> str:
    r = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name, check=False)
    return r.stdout.strip()


def logs(name: str, tail: int = 60) -> str:
    r = docker("logs", "--tail", str(tail), name, check=False)
    return r.stdout + r.stderr


def wait_health(name: str, url: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        state = container_state(name)
        if not state.startswith("running"):
            pytest.fail(f"{name} stopped ({state}) before {url} was ready:\n{logs(name)}")
        code, _body = http_get(url, timeout=3)
        if code == 200:
            return time.monotonic() - start
        time.sleep(2)
    pytest.fail(f"{url} not ready after {timeout:.0f} s:\n{logs(name)}")


def find_router() -> str | None:
    for cand in (os.environ.get("DSV4_VLLM_ROUTER"), str(ROOT / ".venv" / "bin" / "vllm-router"),
                 "/tmp/probe-venv/bin/vllm-router", shutil.which("vllm-router")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def reasoning_of(obj) -> str | None:
    """vLLM >= 0.11 names the field `reasoning`; older servers and clients `reasoning_content`."""
    for name in ("reasoning", "reasoning_content"):
        val = getattr(obj, name, None)
        if val is None and getattr(obj, "model_extra", None):
            val = obj.model_extra.get(name)
        if val:
            return val
    return None


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        unavailable("docker is not installed")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        unavailable("the Docker engine is not reachable")
    tag = subprocess.run(["bash", str(ROOT / "scripts" / "build-rehearsal-image.sh"), "--print"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if docker("image", "inspect", tag, check=False).returncode != 0:
        unavailable(f"image {tag} is missing (build it: bash scripts/build-rehearsal-image.sh)")
    return tag


class Engines:
    def __init__(self, image: str, ports: dict[str, int]):
        self.image = image
        self.ports = ports
        self.suffix = f"{os.getpid()}-{int(time.time())}"
        self.names: list[str] = []

    def run_cmd(self, role: str, seed_cmd: list[str], extra_argv: list[str] | None = None) -> tuple[str, list[str]]:
        """The seed's docker run for `role`, on the rehearsal image, with GPU-only options removed."""
        opts, env, _seed_image, argv = split_docker_run(seed_cmd)
        seed_port = 8000 if role == "prefill" else 8001
        port = self.ports[role]
        env["VLLM_MOONCAKE_BOOTSTRAP_PORT"] = str(self.ports[f"{role}_bootstrap"])
        argv = [str(port) if (a == str(seed_port) and argv[i - 1] == "--port") else a for i, a in enumerate(argv)]
        name = f"dsv4-rehearsal-{role}-{self.suffix}"
        cmd = ["run", "-d", "--name", name, "--label", "inference.deepseek_v4.rehearsal-test=1"]
        for opt, value in opts:
            if opt in GPU_ONLY_OPTIONS:
                continue
            cmd += [f"{opt}={value}"] if value else [opt]
        for key, val in env.items():
            cmd += ["-e", f"{key}={val}"]
        cmd += [self.image, *argv, *(extra_argv or [])]
        return name, cmd

    def start(self, role: str, seed_cmd: list[str], extra_argv: list[str] | None = None) -> str:
        name, cmd = self.run_cmd(role, seed_cmd, extra_argv)
        self.names.append(name)
        docker(*cmd)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return choose_ports()


@pytest.fixture(scope="module")
def pd_stack(image, ports):
    """Prefill and decode containers from the seed, then the seed's router; torn down at the end."""
    try:
        import openai  # noqa: F401
    except ImportError:
        unavailable("the openai package is not installed")
    router_bin = find_router()
    if router_bin is None:
        unavailable("vllm-router is not installed (.venv/bin, /tmp/probe-venv/bin or PATH)")
    seed = seed_commands()
    engines = Engines(image, ports)
    router = None
    router_log = Path(os.environ.get("DSV4_REHEARSAL_OUT", ROOT / "rehearsal-out")) / f"router-{engines.suffix}.log"
    router_log.parent.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        prefill = engines.start("prefill", seed["prefill"])
        decode = engines.start("decode", seed["decode"])
        timings["prefill_ready_s"] = wait_health(prefill, f"http://127.0.0.1:{ports['prefill']}/health",
                                                 ENGINE_READY_TIMEOUT)
        timings["decode_ready_s"] = wait_health(decode, f"http://127.0.0.1:{ports['decode']}/health",
                                                ENGINE_READY_TIMEOUT)
        timings["engines_ready_s"] = time.monotonic() - t0

        argv = list(seed["router"])
        subst = {"http://localhost:8000": f"http://localhost:{ports['prefill']}",
                 "http://localhost:8001": f"http://localhost:{ports['decode']}"}
        argv = [subst.get(a, a) for a in argv]
        argv[argv.index("--port") + 1] = str(ports["router"])
        if ports["prefill_bootstrap"] != 8998:
            # vllm-router --prefill URL [BOOTSTRAP_PORT]: the prefill's Mooncake bootstrap port.
            argv.insert(argv.index(f"http://localhost:{ports['prefill']}") + 1, str(ports["prefill_bootstrap"]))
        if ports["router_metrics"] != 29000 or not port_free(29000):
            argv += ["--prometheus-port", str(ports["router_metrics"])]
        argv[0] = router_bin
        t1 = time.monotonic()
        with open(router_log, "w", encoding="utf-8") as fh:
            router = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{ports['router']}"
        while True:
            if router.poll() is not None:
                pytest.fail(f"vllm-router exited with {router.returncode}:\n{router_log.read_text()[-4000:]}")
            if http_get(base + "/readiness", timeout=3)[0] == 200:
                break
            if time.monotonic() - t1 > 300:
                pytest.fail(f"router not ready:\n{router_log.read_text()[-4000:]}")
            time.sleep(1)
        timings["router_ready_s"] = time.monotonic() - t1
        print(f"rehearsal timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield {"prefill": prefill, "decode": decode, "router_url": base, "engines": engines, "ports": ports,
               "router_argv": argv, "router_log": router_log, "seed": seed}
    finally:
        if router is not None and router.poll() is None:
            router.terminate()
            try:
                router.wait(timeout=15)
            except subprocess.TimeoutExpired:
                router.kill()
        engines.cleanup()


@pytest.fixture(scope="module")
def client(pd_stack):
    from openai import OpenAI

    return OpenAI(base_url=pd_stack["router_url"] + "/v1", api_key="EMPTY", timeout=120, max_retries=0)


# ---- tests ------------------------------------------------------------------------------------
def test_models_through_router(client):
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids


@pytest.mark.parametrize(
    "mode,extra_body",
    [
        ("non_think_seed", None),  # the seed's Non-think request: no chat_template_kwargs
        ("non_think_explicit", {"chat_template_kwargs": {"thinking": False}}),
        ("think_high", {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "high"}}),
        ("think_max", {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "max"}}),
    ],
)
def test_reasoning_modes(client, mode, extra_body):
    kwargs = {"extra_body": extra_body} if extra_body else {}
    resp = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=1.0, top_p=1.0,
                                          max_tokens=64, **kwargs)
    msg = resp.choices[0].message
    assert resp.model == MODEL
    assert msg.content and "323" in msg.content, f"{mode}: {resp}"
    reasoning = reasoning_of(msg)
    if mode.startswith("think"):
        assert reasoning, f"{mode}: no reasoning in {resp}"
    if mode == "non_think_explicit":
        assert not reasoning, f"{mode}: unexpected reasoning {reasoning!r}"


def test_streaming(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=64, stream=True,
        extra_body={"chat_template_kwargs": {"thinking": True, "reasoning_effort": "high"}})
    content, reasoning, chunks = "", "", 0
    for chunk in stream:
        chunks += 1
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += reasoning_of(delta) or ""
    assert chunks > 2
    assert "323" in content
    assert reasoning


def test_kv_transfer_seen_by_decode(pd_stack, client):
    """The decode double got Mooncake kv_transfer_params for a transfer the prefill double served."""
    client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=16)
    ports = pd_stack["ports"]
    _status, body = http_get(f"http://127.0.0.1:{ports['decode']}/rehearsal/pd")
    decode_view = json.loads(body)
    _status, body = http_get(f"http://127.0.0.1:{ports['prefill']}/rehearsal/pd")
    prefill_view = json.loads(body)
    assert decode_view["connector"] == "MooncakeConnector"
    received = [e for e in decode_view["events"] if e["kind"] == "decode_received"]
    pulled = [e for e in decode_view["events"] if e["kind"] == "decode_pulled"]
    failed = [e for e in decode_view["events"] if e["kind"] == "decode_kv_load_failed"]
    assert received and pulled and not failed, decode_view
    params = received[-1]["params"]
    assert params["do_remote_prefill"] is True
    assert params["remote_bootstrap_addr"].endswith(f":{ports['prefill_bootstrap']}")
    assert params["remote_engine_id"] in prefill_view["engine_ids"]
    assert len(prefill_view["engine_ids"]) == 4  # --data-parallel-size 4
    sent = {e["transfer_id"] for e in prefill_view["events"] if e["kind"] == "side_channel_sent"}
    assert params["transfer_id"] in sent
    prefill_params = [e["params"] for e in prefill_view["events"] if e["kind"] == "prefill_received"]
    assert any(p.get("do_remote_decode") and p.get("transfer_id") == params["transfer_id"] for p in prefill_params)


def test_broken_wiring_fails_decode(pd_stack):
    """A decode request whose bootstrap address is wrong fails, as a real Mooncake KV load would."""
    ports = pd_stack["ports"]
    body = json.dumps({
        "model": MODEL, "messages": QUESTION, "max_tokens": 8,
        "kv_transfer_params": {"do_remote_decode": False, "do_remote_prefill": True, "transfer_id": "xfer-nowhere",
                               "remote_bootstrap_addr": "http://127.0.0.1:9", "remote_engine_id": "nobody_dp0"},
    }).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{ports['decode']}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=120)
    assert err.value.code == 500
    assert "KV cache load failed" in err.value.read().decode()


def test_wrong_flag_is_rejected_by_vllm_parser(image, pd_stack):
    """A wrong flag in the engine argv makes the container exit with vLLM's parser error."""
    engines: Engines = pd_stack["engines"]
    name, cmd = engines.run_cmd("prefill", pd_stack["seed"]["prefill"], extra_argv=["--kv-cache-dtype", "fp9"])
    name = name.replace("prefill", "badflag")
    cmd[cmd.index("--name") + 1] = name
    cmd = [c for c in cmd if c != "--network=host"]  # nothing is served: no host ports needed
    engines.names.append(name)
    docker(*cmd)
    deadline = time.monotonic() + 300
    while container_state(name).startswith(("running", "created")) and time.monotonic() < deadline:
        time.sleep(1)
    state = container_state(name)
    out = logs(name, tail=200)
    assert state.startswith("exited") and not state.endswith(" 0"), f"{state}\n{out}"
    assert re.search(r"vllm serve: error: argument --kv-cache-dtype: invalid choice: 'fp9'", out), out
