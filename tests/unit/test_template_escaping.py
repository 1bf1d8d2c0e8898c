# -*- coding: utf-8 -*-
"""Hostile values through the templates that write configuration files: Ansible's own templar renders them as the
template module does (trim_blocks, the collection's filters and tests), and the result is read back the way its
consumer reads it. The router's systemd unit (roles/vllm_router/templates/vllm-router.service.j2) keeps its lines and
gives vllm-router exactly the argv and environment it was handed, whatever they hold; the endpoint proxy's nginx
files (roles/endpoint_proxy/templates) keep every value inside its own quoted token."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[2]
ROUTER_UNIT = ROOT / "roles" / "vllm_router" / "templates" / "vllm-router.service.j2"
PROXY = ROOT / "roles" / "endpoint_proxy" / "templates"

INJECTED = "ExecStartPre=/bin/sh -c 'id > /tmp/owned'"
HOSTILE = ["info\n" + INJECTED, "\r\n" + INJECTED, "%n%h%%", "$HOME ${PATH} $$", 'say "hi"', "back\\slash\\", ";",
           "tab\there", "nul\x00byte", "line\u2028sep", "caf\u00e9", "", " ", "'single'", "#comment", "a=b c"]
UNIT_KEYS = {"Description", "After", "Wants", "Type", "Environment", "EnvironmentFile", "ExecStart", "Restart",
             "RestartSec", "TimeoutStopSec", "LimitNOFILE", "WantedBy"}


def render(path, variables):
    """A template file as the template module renders it (Ansible's templar, trim_blocks, trailing newline kept)."""
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(path.read_text()), overrides={"trim_blocks": True},
                            escape_backslashes=False, preserve_trailing_newlines=True)


# ------------------------------------------------------------------------------------------------ systemd
_ESCAPE = re.compile(r'\\(["\\nrtbf]|u[0-9a-fA-F]{4})')


def systemd_words(text, dollar):
    """The words systemd makes of a setting's value: specifiers (`%%`) first, then double-quoted words with C escapes
    (the subset the template writes; anything else fails here), then `$$` (ExecStart= only)."""
    text = text.replace("%%", "\ue000")
    assert "%" not in text, "an unescaped specifier: %r" % text
    words, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            body = text[i + 1:end]
            assert _ESCAPE.sub("", body).count("\\") == 0, "an escape systemd may read otherwise: %r" % body
            words.append(json.loads('"%s"' % body))
            i = end + 1
            assert i == len(text) or text[i] == " ", "a quoted word runs on: %r" % text
        else:
            end = text.find(" ", i)
            end = len(text) if end < 0 else end
            word = text[i:end]
            assert not set(word) & set('"\\\'$;'), "a bare word systemd would read otherwise: %r" % word
            words.append(word)
            i = end
    words = [w.replace("\ue000", "%") for w in words]
    return [w.replace("$$", "$") for w in words] if dollar else words


def unit_variables(venv, argv, env, secret_args=None):
    svc = {"name": "deepseek-v4-router\n" + INJECTED, "plan_hash": "abc\r\nUser=root", "argv": argv, "env": env,
           "secret_args": secret_args or {}}
    plan = {"topology": "h200_pd%n\nUser=root", "router_version": "0.1.17\n" + INJECTED, "model": "org/model\\"}
    return {"ansible_managed": "managed", "_vllm_router_svc": svc, "_vllm_router_unit_argv": argv,
            "vllm_router_plan": plan, "vllm_router_venv": venv, "vllm_router_secret_dir": "/etc/deepseek-v4"}


def check_unit_lines(unit):
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            assert line.split("=", 1)[0] in UNIT_KEYS, "a line the template did not write: %r" % line
    assert INJECTED not in [x.split("=", 1)[-1] for x in unit.splitlines()]
    assert sum(1 for x in unit.splitlines() if x.startswith("ExecStart=")) == 1
    assert not any(x.startswith(("ExecStartPre", "User=")) for x in unit.splitlines())


def test_the_router_unit_carries_hostile_argv_and_environment_exactly(tmp_path):
    venv = str(tmp_path / "venv")
    argv = ["vllm-router", "--policy", "round_robin"] + HOSTILE
    env = {"A": "x\n" + INJECTED, "B": "$HOME%n", "C": 'q"uote\\'}
    unit = render(ROUTER_UNIT, unit_variables(venv, argv, env))
    check_unit_lines(unit)
    (start,) = [x[len("ExecStart="):] for x in unit.splitlines() if x.startswith("ExecStart=")]
    assert systemd_words(start, dollar=True) == [venv + "/bin/vllm-router"] + argv[1:]
    environment = [w for x in unit.splitlines() if x.startswith("Environment=")
                   for w in systemd_words(x[len("Environment="):], dollar=False)]
    assert environment == ["%s=%s" % kv for kv in env.items()]
    description = [x for x in unit.splitlines() if x.startswith("Description=")][0]
    assert "%n" not in description.replace("%%", "") and "\\" not in description


def test_the_router_unit_with_the_launcher_keeps_its_lines(tmp_path):
    unit = render(ROUTER_UNIT, unit_variables(str(tmp_path), ["vllm-router"] + HOSTILE, {},
                                              secret_args={"--api-key": "deepseek_v4_api_key"}))
    check_unit_lines(unit)
    (start,) = [x[len("ExecStart="):] for x in unit.splitlines() if x.startswith("ExecStart=")]
    assert systemd_words(start, dollar=True)[2:] == HOSTILE
    assert len([x for x in unit.splitlines() if x.startswith("EnvironmentFile=")]) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit_with_hostile_values(tmp_path):
    """systemd's own parser reads the unit without an error (a NUL byte cannot be written: left out here)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "vllm-router").write_text("#!/bin/sh\n")
    (venv / "bin" / "vllm-router").chmod(0o755)
    argv = ["vllm-router"] + [h for h in HOSTILE if "\x00" not in h]
    unit = tmp_path / "deepseek-v4-router.service"
    unit.write_text(render(ROUTER_UNIT, unit_variables(str(venv), argv, {"A": "x\n" + INJECTED})))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "Ignoring" not in done.stderr and "Unknown" not in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------------ nginx
def nginx_tokens(text):
    """nginx's tokenizer (ngx_conf_read_token): words, quoted strings with \\" \\\\ escapes, ; { } ends, # comments."""
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif c in ";{}":
            tokens.append(c)
            i += 1
        elif c in "\"'":
            end, value = i + 1, ""
            while text[end] != c:
                if text[end] == "\\" and text[end + 1] in "\"'\\":
                    end += 1
                value += text[end]
                end += 1
            tokens.append(("q", value))
            i = end + 1
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] not in ";{}\"'":
                end += 1
            tokens.append(text[i:end])
            i = end
    return tokens


def test_bearer_keys_stay_inside_their_quoted_map_entries():
    keys = ['k1" 1;\ninclude /etc/shadow; "', "k2\\", "k3\n}", "plain-key_0"]
    text = render(PROXY / "api-keys.map.j2", {"ansible_managed": "managed", "endpoint_proxy_api_keys": keys,
                                              "endpoint_proxy_site_file": "/etc/nginx/sites-enabled/x"})
    tokens = nginx_tokens(text)
    assert tokens.count(";") == len(keys) and "include" not in tokens and "}" not in tokens
    for key, (quoted, one, end) in zip(keys, [tokens[i:i + 3] for i in range(0, len(tokens), 3)]):
        assert quoted[0] == "q" and one == "1" and end == ";"
        assert re.fullmatch(quoted[1][1:], "Bearer " + key), (quoted, key)


def test_the_upstream_key_stays_inside_its_header_value():
    key = 'abc";\n    return 200 "owned'
    text = render(PROXY / "upstream-auth.conf.j2", {"ansible_managed": "managed",
                                                    "endpoint_proxy_upstream_api_key": key})
    tokens = nginx_tokens(text)
    assert tokens == ["proxy_set_header", "Authorization", ("q", "Bearer " + key), ";"]


def proxy_variables(conf_dir, **over):
    values = {"ansible_managed": "managed", "endpoint_proxy_upstream": "http://127.0.0.1:30000",
              "endpoint_proxy_locations": ["/v1/"], "endpoint_proxy_health_location": "/health",
              "endpoint_proxy_failure_policy": "fallback", "endpoint_proxy_fallbacks": ["http://127.0.0.1:8001"],
              "endpoint_proxy_fail_timeout": 10, "endpoint_proxy_conf_dir": str(conf_dir),
              "endpoint_proxy_listen_address": "127.0.0.1", "endpoint_proxy_listen_port": 18443,
              "_endpoint_proxy_cert": "%s/selfsigned.crt" % conf_dir, "_endpoint_proxy_key": "%s/selfsigned.key" % conf_dir,
              "endpoint_proxy_client_max_body_size": "16m", "endpoint_proxy_connect_timeout": 5,
              "endpoint_proxy_retry_timeout": 60, "endpoint_proxy_read_timeout": 600,
              "endpoint_proxy_standby": "http://127.0.0.1:30001", "endpoint_proxy_retry_tries": 6}
    values.update(over)
    return values


HOSTILE_PROXY = {
    "endpoint_proxy_upstream": "http://127.0.0.1:30000;\n}\nserver {\n    listen 0.0.0.0:80",
    "endpoint_proxy_fallbacks": ["http://127.0.0.1:8001 backup; server 10.9.9.9:80"],
    "endpoint_proxy_standby": "http://127.0.0.1:30001 backup;  # the router\n    server 10.9.9.9:80",
    "endpoint_proxy_locations": ["/v1/ {\n return 200 'open'; }\n location /x"],
    "endpoint_proxy_health_location": '/health" { return 200; } location "/y',
    "endpoint_proxy_listen_address": "0.0.0.0:80 ssl;\n    listen 0.0.0.0",
    "endpoint_proxy_client_max_body_size": "16m;\n    include /etc/passwd",
    "endpoint_proxy_read_timeout": "600;\n    autoindex on;\n    root /",
    "endpoint_proxy_conf_dir": "/etc/nginx/x\\",
}


def test_nginx_values_are_one_token_each_whatever_they_hold(tmp_path):
    """The same file with plain and with hostile values has the same directives: every value is one token."""
    plain = nginx_tokens(render(PROXY / "endpoint.conf.j2", proxy_variables(tmp_path)))
    hostile = nginx_tokens(render(PROXY / "endpoint.conf.j2", proxy_variables(tmp_path, **HOSTILE_PROXY)))
    assert len(hostile) == len(plain)
    differ = [(a, b) for a, b in zip(plain, hostile) if a != b]
    assert differ and all(isinstance(b, tuple) and b[0] == "q" for _a, b in differ), differ
    assert "autoindex" not in hostile and "root" not in hostile and hostile.count("listen") == 1


def test_plain_nginx_values_are_written_as_before(tmp_path):
    conf = render(PROXY / "endpoint.conf.j2", proxy_variables(tmp_path))
    for line in ("server 127.0.0.1:30000 max_fails=1 fail_timeout=10s;  # the router",
                 "server 127.0.0.1:8001 backup max_fails=0;",
                 "server 127.0.0.1:30001 backup max_fails=0;  # the standby router",
                 "listen 127.0.0.1:18443 ssl;", "location /v1/ {", "location = /health {",
                 "client_max_body_size 16m;", "proxy_read_timeout 600s;", "include %s/api-keys.map;" % tmp_path):
        assert "    " + line in conf.splitlines() or line in conf.splitlines(), line


@pytest.mark.parametrize("tries, standby", [(2, ""), (6, "http://127.0.0.1:30001"), (9, "")])
def test_the_retry_policy_passes_a_request_through_the_router_each_try(tmp_path, tries, standby):
    """nginx tries each server line once per request: under retry, the router has one line per try (never left out:
    max_fails=0), and proxy_next_upstream_tries counts them (and the standby's)."""
    conf = render(PROXY / "endpoint.conf.j2", proxy_variables(
        tmp_path, endpoint_proxy_failure_policy="retry", endpoint_proxy_retry_tries=tries,
        endpoint_proxy_standby=standby))
    servers = [line.strip() for line in conf.splitlines() if line.strip().startswith("server ")]
    router = [line for line in servers if line.endswith("# the router")]
    assert router == ["server 127.0.0.1:30000 max_fails=0;  # the router"] + \
        ["server 127.0.0.1:30000 backup max_fails=0;  # the router"] * (tries - 1)
    assert "    proxy_next_upstream_tries %d;" % (tries + (1 if standby else 0)) in conf.splitlines()
    assert "passed through it again, %d tries in all" % tries in conf


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None, reason="needs nginx and openssl")
@pytest.mark.parametrize("policy", ["fallback", "retry"])
def test_nginx_accepts_the_configuration_with_quoted_values(tmp_path, policy):
    """nginx -t reads the site with its keys and certificate; quoted locations are valid prefixes to it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test", "-days", "1",
                    "-keyout", str(tmp_path / "selfsigned.key"), "-out", str(tmp_path / "selfsigned.crt")],
                   capture_output=True, check=True, timeout=60)
    keys = {"ansible_managed": "m", "endpoint_proxy_api_keys": ['k"1\\'], "endpoint_proxy_site_file": "x",
            "endpoint_proxy_upstream_api_key": 'up"key'}
    (tmp_path / "api-keys.map").write_text(render(PROXY / "api-keys.map.j2", keys))
    (tmp_path / "upstream-auth.conf").write_text(render(PROXY / "upstream-auth.conf.j2", keys))
    site = render(PROXY / "endpoint.conf.j2", proxy_variables(
        tmp_path, endpoint_proxy_locations=["/v1/ {\n return 200; }"], endpoint_proxy_health_location='/he"alth',
        endpoint_proxy_failure_policy=policy))
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = " ".join("%s_temp_path %s;" % (kind, tmp_path / kind) for kind in kinds)
    site = site.replace("/var/log/nginx/", str(tmp_path) + "/")
    (tmp_path / "nginx.conf").write_text("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n%s\n%s\n}\n"
                                         % (tmp_path, tmp_path, temp, site))
    done = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e",
                           str(tmp_path / "error.log")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _upgrade_marks():
    """The regular expressions with which playbooks/upgrade.yml marks the router down and up again in the site."""
    tasks = yaml.safe_load((ROOT / "roles" / "upgrade" / "tasks" / "router.yml").read_text())[0]
    by_name = {t["name"]: t for t in tasks["block"] + tasks["always"]}
    down = by_name["Mark the router down in the endpoint front"]["ansible.builtin.replace"]
    up = by_name["Mark the router up again in the endpoint front"]["ansible.builtin.replace"]
    return (down["regexp"], down["replace"]), (up["regexp"], up["replace"])


def _replace(text, regexp, replacement):
    # ansible.builtin.replace: re.MULTILINE, Python's replacement syntax.
    return re.compile(regexp, re.MULTILINE).sub(replacement.replace("\\", "\\"), text)


@pytest.mark.parametrize("policy", ["fallback", "retry", "fail"])
def test_the_upgrade_marks_every_router_line_down_and_up_and_nothing_else(tmp_path, policy):
    """While the upgrade restarts the router, the front's only servers are the standby (and the fallbacks): each line
    of the router is marked down, and marking it up again gives back the very file."""
    conf = render(PROXY / "endpoint.conf.j2", proxy_variables(tmp_path, endpoint_proxy_failure_policy=policy))
    (down, down_with), (up, up_with) = _upgrade_marks()
    marked = _replace(conf, down, down_with)
    servers = [line.strip() for line in marked.splitlines() if line.strip().startswith("server ")]
    router = [line for line in servers if line.endswith("# the router")]
    assert router and all(" down;" in line for line in router), servers
    others = [line for line in servers if not line.endswith("# the router")]
    assert others and not any(" down" in line for line in others), servers
    assert "server 127.0.0.1:30001 backup max_fails=0;  # the standby router" in others
    assert _replace(marked, down, down_with) == marked  # marking twice changes nothing
    assert _replace(marked, up, up_with) == conf
