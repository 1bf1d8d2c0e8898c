"""Outcomes of the endpoint_proxy scenario inside the instance: nginx in front of the stand-in router."""

import json

import pytest

PORT = 8443
CONF = "/etc/nginx/deepseek-v4"
KEYS = ["Molecule-Key-One.abcDEF123", "molecule+key/two="]
# Runs inside the instance: one HTTPS request to the proxy (certificate not verified: a self-signed or test CA).
PROBE = r"""
import json, ssl, sys, urllib.request, urllib.error
method, path, key = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request("https://127.0.0.1:%d" + path, method=method, data=b"{}" if method == "POST" else None)
if key != "-":
    req.add_header("Authorization", key)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    resp = urllib.request.urlopen(req, context=ctx, timeout=10)
except urllib.error.HTTPError as err:
    resp = err
print(json.dumps({"status": resp.status, "headers": dict(resp.headers), "body": resp.read().decode()}))
""" % PORT


def request(host, path, authorization="-", method="GET"):
    out = host.check_output("python3 -c %s %s %s %s" % (_quote(PROBE), method, path, _quote(authorization)))
    return json.loads(out)


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_nginx_running_and_enabled(host):
    service = host.service("nginx")
    assert service.is_running and service.is_enabled


def test_listens_where_told_only(host):
    assert host.socket("tcp://127.0.0.1:%d" % PORT).is_listening
    assert not host.socket("tcp://0.0.0.0:%d" % PORT).is_listening
    # The distribution's default site (port 80, every interface) is gone.
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert not host.socket("tcp://0.0.0.0:80").is_listening


@pytest.mark.parametrize("path, mode", [
    (CONF, 0o700), (CONF + "/api-keys.map", 0o600), (CONF + "/upstream-auth.conf", 0o600),
    (CONF + "/endpoint.key", 0o600), (CONF + "/selfsigned.key", 0o600), (CONF + "/endpoint.crt", 0o644),
    ("/etc/nginx/conf.d/deepseek-v4-endpoint.conf", 0o644),
])
def test_file_modes(host, path, mode):
    f = host.file(path)
    assert f.exists and f.user == "root" and f.group == "root" and f.mode == mode


def test_keys_only_in_the_root_only_files(host):
    assert all(key not in host.file("/etc/nginx/conf.d/deepseek-v4-endpoint.conf").content_string for key in KEYS)
    keys_map = host.file(CONF + "/api-keys.map").content_string
    assert "Molecule\\-Key\\-One\\.abcDEF123" in keys_map


@pytest.mark.parametrize("authorization", ["-", "Bearer wrong-key", "Bearer " + KEYS[0].lower(), KEYS[0],
                                           "Bearer " + KEYS[0] + "x", "Basic " + KEYS[0]])
def test_without_the_right_key_401(host, authorization):
    answer = request(host, "/v1/models", authorization)
    assert answer["status"] == 401
    assert "X-Upstream-Double" not in answer["headers"]
    assert answer["headers"].get("WWW-Authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("key", KEYS)
def test_with_a_key_200_from_the_upstream(host, key):
    answer = request(host, "/v1/models", "Bearer " + key)
    assert answer["status"] == 200
    assert answer["headers"]["X-Upstream-Double"] == "router"
    assert json.loads(answer["body"])["data"][0]["id"] == "deepseek-ai/DeepSeek-V4-Flash"
    # The client's key stops at the proxy; the upstream gets the upstream key.
    assert answer["headers"]["X-Upstream-Authorization"] == "Bearer upstream-key-123"


def test_chat_completion_through_the_proxy(host):
    answer = request(host, "/v1/chat/completions", "Bearer " + KEYS[0], method="POST")
    assert answer["status"] == 200 and "323" in answer["body"]


@pytest.mark.parametrize("path, method", [("/workers", "GET"), ("/list_workers", "GET"), ("/add_worker", "POST"),
                                          ("/remove_worker", "POST"), ("/metrics", "GET"), ("/", "GET"),
                                          ("/v1/../workers", "GET")])
def test_admin_routes_never_exposed(host, path, method):
    answer = request(host, path, "Bearer " + KEYS[0], method=method)
    assert answer["status"] == 404
    assert "X-Upstream-Double" not in answer["headers"]


def test_health_without_a_key(host):
    answer = request(host, "/health")
    assert answer["status"] == 200 and answer["headers"]["X-Upstream-Double"] == "router"


def test_given_certificate_served(host):
    out = host.check_output("echo | openssl s_client -connect 127.0.0.1:%d 2>/dev/null | openssl x509 -noout "
                            "-subject" % PORT)
    assert "CN = given.example.test" in out


# The failure policy (fallback): last in this file, since a failed router is left out for a few seconds.
def _chat(host):
    return request(host, "/v1/chat/completions", "Bearer " + KEYS[0], method="POST")


def test_fallback_config_says_never_after_the_first_byte(host):
    conf = host.file("/etc/nginx/conf.d/deepseek-v4-endpoint.conf").content_string
    assert "server 127.0.0.1:8001 backup max_fails=0;" in conf
    # The line playbooks/upgrade.yml marks down while it restarts the router (roles/upgrade/tasks/router.yml).
    assert "server 127.0.0.1:30000 max_fails=1 fail_timeout=5s;  # the router\n" in conf
    assert "proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent;" in conf
    assert "proxy_request_buffering on;" in conf


def test_a_request_the_router_fails_is_served_by_the_fallback(host):
    host.check_output("echo 500 > /run/router-double.fail")
    try:
        answer = _chat(host)
    finally:
        host.check_output("rm -f /run/router-double.fail")
    assert answer["status"] == 200 and "323" in answer["body"]
    assert answer["headers"]["X-Upstream-Double"] == "decode"


def test_a_dead_router_does_not_reach_the_client(host):
    host.check_output("systemctl stop router-upstream-double.service")
    try:
        answers = [_chat(host) for _attempt in range(5)]
    finally:
        host.check_output("systemctl start router-upstream-double.service")
    assert [a["status"] for a in answers] == [200] * 5
    assert {a["headers"]["X-Upstream-Double"] for a in answers} == {"decode"}
    log = host.file("/var/log/nginx/deepseek-v4-endpoint.access.log").content_string
    assert "upstream=127.0.0.1:8001" in log, "the access log names the engine that served (the fallback count)"


def test_the_router_serves_again_after_the_fail_timeout(host):
    import time
    time.sleep(6)
    answer = _chat(host)
    assert answer["status"] == 200 and answer["headers"]["X-Upstream-Double"] == "router"
