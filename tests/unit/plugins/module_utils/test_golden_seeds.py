# -*- coding: utf-8 -*-
"""Golden tests: with the example inventories' settings, the plan emits exactly the source documents' commands."""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import HARDENING, ROUTER_RESILIENCE

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SEEDS = os.path.join(TESTS, "fixtures", "seeds")
ROOT = os.path.dirname(TESTS)


def seed_text(name):
    with open(os.path.join(SEEDS, name), encoding="utf-8") as f:
        return f.read()


def commands(text, start):
    """Every command starting with `start`, continuation lines joined, split as the shell would."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip().startswith(start):
            continue
        parts = []
        j = i
        while True:
            cur = lines[j].rstrip()
            parts.append(cur[:-1] if cur.endswith("\\") else cur)
            if not cur.endswith("\\"):
                break
            j += 1
        out.append(shlex.split(" ".join(parts)))
    return out


def inventory_settings(name):
    """The plan_* settings an example inventory sets (uncommented lines of group_vars/all.yml)."""
    settings = {}
    path = os.path.join(ROOT, "inventories", name, "group_vars", "all.yml")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^plan_(\w+):\s*(.+)$", line)
            if m:
                settings[m.group(1)] = m.group(2).strip().strip('"')
    return settings


def without_hardening(kind, tokens, command=False):
    """The tokens with the plan's hardening additions (profiles.HARDENING: a flag and its value each) removed; each
    must be there exactly once. Any other difference from the source documents still fails the golden tests. In a
    printed command also the flags vllm_engine adds at run time and the environment the plan adds (``-e KEY=1``)."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    tokens = list(tokens)
    flags = list(HARDENING.get(kind, {})) + list(P.PERFORMANCE.get(kind, {})) + (
        list(P.HARDENING_RUN_TIME.get(kind, {})) if command else [])
    env = ["%s=1" % key for key in P.HARDENING_ENV.get(kind, {})] if command else []
    for flag in flags + env:
        assert tokens.count(flag) == 1, "hardening %s of %s missing or repeated" % (flag, kind)
        at = tokens.index(flag) - (flag in env)
        del tokens[at:at + 2]
    return with_recipe_privileges(kind, without_cache(kind, tokens)) if command else tokens


def without_cache(kind, tokens):
    """A printed command without the kernel cache vllm_engine mounts at run time (profiles.ENGINE_CACHE_*): its
    volume and the environment that points each cache into it, each there once."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    if kind != "engine":
        return tokens
    tokens = list(tokens)
    volumes = [i for i in range(len(tokens) - 1) if tokens[i] == "-v" and tokens[i + 1].endswith(
        ":" + P.ENGINE_CACHE_MOUNT)]
    assert len(volumes) == 1, "the engine cache volume missing or repeated"
    del tokens[volumes[0]:volumes[0] + 2]
    for key, sub in P.ENGINE_CACHE_ENV.items():
        entry = "%s=%s/%s" % (key, P.ENGINE_CACHE_MOUNT, sub)
        assert tokens.count(entry) == 1, "engine cache environment %s missing or repeated" % key
        at = tokens.index(entry)
        del tokens[at - 1:at + 1]
    return tokens


def rdma_options():
    """The docker run options plan_engine_privileges: rdma_devices gives an engine that uses RDMA."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    return ([["--device", "%s:%s" % (P.RDMA_DEVICE, P.RDMA_DEVICE)]] + [["--cap-add", c] for c in P.RDMA_CAPABILITIES]
            + [["--ulimit", u.replace(":", "=", 1)] for u in P.RDMA_ULIMITS])


def with_recipe_privileges(kind, tokens):
    """A printed command with the least-privilege options (profiles.HARDENING_CONTAINER) turned back into the
    recipe's --privileged, right before --ipc as the recipes write it: each option must be there once."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    if "--privileged" not in P.HARDENING_CONTAINER.get(kind, {}) or "--privileged" in tokens:
        return tokens
    tokens = list(tokens)
    for option in rdma_options():
        pairs = [i for i in range(len(tokens) - 1) if tokens[i:i + 2] == option]
        assert len(pairs) == 1, "least-privilege option %s of %s missing or repeated" % (" ".join(option), kind)
        del tokens[pairs[0]:pairs[0] + 2]
    ipc = next(i for i, token in enumerate(tokens) if token.startswith("--ipc"))
    tokens.insert(ipc, "--privileged")
    return tokens


def without_hardening_env(kind, env):
    """An engine's environment without what the plan adds (profiles.HARDENING_ENV), each there."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    env = dict(env)
    for key in P.HARDENING_ENV.get(kind, {}):
        assert env.pop(key) == "1", "hardening environment %s of %s missing" % (key, kind)
    return env


def by_role(plan, role):
    return [s for s in plan["services"] if s["role"] == role]


@pytest.fixture(scope="module")
def h200_plan():
    hosts = [{"name": "h200-node-1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
    return build_plan(inventory_settings("h200_pd"), hosts)


@pytest.fixture(scope="module")
def h200_seed():
    text = seed_text("000_23be139418635e2c.txt")
    docker = commands(text, "docker run")
    router = commands(text, "vllm-router")
    assert len(docker) == 2 and len(router) == 1, "the seed's three commands were found"
    return {"prefill": docker[0], "decode": docker[1], "router": router[0]}


@pytest.mark.parametrize("role", ["prefill", "decode", "router"])
def test_h200_pd_equals_the_seed_flag_for_flag(h200_plan, h200_seed, role):
    (service,) = by_role(h200_plan, role)
    rendered = shlex.split(service["command"].replace("\\\n", " "))
    assert without_hardening(service["kind"], rendered, command=True) == h200_seed[role]


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_h200_pd_argv_and_env_are_the_seed(h200_plan, h200_seed, role):
    (service,) = by_role(h200_plan, role)
    seed = h200_seed[role]
    image_at = seed.index("vllm/vllm-openai:deepseekv4-cu130")
    assert service["image"] == seed[image_at]
    assert without_hardening("engine", service["argv"]) == seed[image_at + 1:]
    assert service["argv"][service["argv"].index("--host") + 1] == "127.0.0.1", "one host: engines on loopback"
    seed_env = [seed[i + 1] for i, tok in enumerate(seed[:image_at]) if tok == "-e"]
    assert ["%s=%s" % kv for kv in without_hardening_env("engine", service["env"]).items()] == seed_env
    assert "--revision" not in service["argv"], "vllm_engine adds the commit hf_cache verified at run time"
    assert service["gpus"] == [int(g) for g in service["env"]["CUDA_VISIBLE_DEVICES"].split(",")]


def test_h200_pd_router_is_the_seed(h200_plan, h200_seed):
    (router,) = by_role(h200_plan, "router")
    assert without_hardening("router", router["argv"]) == h200_seed["router"]


def test_lmcache_tp8_equals_the_seed():
    text = seed_text("003_196fbb0241e5a361.txt")
    (server,) = commands(text, "lmcache server")
    (serve,) = commands(text, "vllm serve")
    plan = build_plan(inventory_settings("lmcache_tp8"), [{"name": "h200-node-1", "groups": ["serving"]}])
    (engine,) = by_role(plan, "single")
    (lmcache,) = by_role(plan, "lmcache")
    assert without_hardening("lmcache", lmcache["argv"]) == server
    assert lmcache["argv"][-2:] == ["--http-host", "127.0.0.1"], "the LMCache HTTP API (/env, /run_script) on loopback"
    assert serve[:2] == ["vllm", "serve"]
    assert without_hardening("engine", engine["argv"]) == serve[2:]
    cfg = engine["argv"][engine["argv"].index("--kv-transfer-config") + 1]
    assert json.loads(cfg) == {"kv_connector": "LMCacheMPConnector", "kv_role": "kv_both"}
    assert without_hardening_env("engine", engine["env"]) == {}, "the LMCache seed sets no environment"


def test_seed_fixtures_are_the_source_documents():
    """The copies under tests/fixtures/seeds are the project's source documents, byte for byte, where present."""
    shared = os.path.join(os.path.dirname(ROOT), "shared", "seeds")
    if not os.path.isdir(shared):
        pytest.skip("the source documents folder is not beside this checkout")
    for name in os.listdir(SEEDS):
        with open(os.path.join(shared, name), "rb") as a, open(os.path.join(SEEDS, name), "rb") as b:
            assert a.read() == b.read(), name


def test_hardening_is_the_only_difference_and_each_addition_says_why():
    """The hardening table is small and explained: a plan with default settings differs from the source documents
    only by these flags (README, Security)."""
    assert HARDENING == {"engine": {"--host": HARDENING["engine"]["--host"],
                                    "--shutdown-timeout": HARDENING["engine"]["--shutdown-timeout"]},
                         "lmcache": {"--http-host": HARDENING["lmcache"]["--http-host"]},
                         "router": {flag: HARDENING["router"][flag] for flag, _s, _scale in ROUTER_RESILIENCE}}
    assert all(len(why) > 40 for flags in HARDENING.values() for why in flags.values())
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    assert P.PERFORMANCE == {"engine": {"--safetensors-load-strategy":
                                        P.PERFORMANCE["engine"]["--safetensors-load-strategy"]}}


def test_the_engines_weights_hardening_is_explained():
    """The other additions to the recipes' engines: offline weights (environment) and the revision vllm_engine adds
    (printed command), each with its reason (README, Security: the served weights are the provisioned ones)."""
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
    assert P.HARDENING_ENV == {"engine": {"HF_HUB_OFFLINE": P.HARDENING_ENV["engine"]["HF_HUB_OFFLINE"]}}
    assert P.HARDENING_RUN_TIME == {"engine": {"--revision": P.HARDENING_RUN_TIME["engine"]["--revision"]}}
    assert all(len(why) > 40 for table in (P.HARDENING_ENV, P.HARDENING_RUN_TIME) for flags in table.values()
               for why in flags.values())
