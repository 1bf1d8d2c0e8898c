# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Input syntax: every value a person sets is in the syntax of what consumes it, before anything is built from it.

No string of any plan_* setting or per-host value (nested lists and mappings walked, keys included) holds a control
character: a newline would end a line of the router's systemd unit, of a printed command or of a container's
environment. Paths are absolute, normalised, not a system directory, and free of what a Docker bind specification
reads as a separator; revisions follow git's reference syntax, model ids Hugging Face's org/name, interface names
Linux's, image references Docker's grammar, addresses are host names or IP literals. Each check returns
Problems (settings.var names the variable); the plan reports them all at once. Pure Python, no Ansible imports.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import flag_key, parse_len
from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

PREFIX = "plan_"
# C0 controls, DEL, and the Unicode line breaks some parsers honour (NEL, LINE and PARAGRAPH SEPARATOR).
CONTROL = re.compile(u"[\x00-\x1f\x7f\x85\u2028\u2029]")
_CONTROL_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def _var(name: str) -> str:
    return PREFIX + name


def _where(location: tuple[Any, ...]) -> str:
    if not location:
        return ""
    parts = ["item %d" % p if isinstance(p, int) else json.dumps(str(p)) for p in location]
    return " (in %s)" % " > ".join(parts)


def strings(value: Any, location: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location, text) of every string in a value: nested lists and mappings walked, mapping keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield location + (key,), str(key)
            yield from strings(item, location + (key,))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from strings(item, location + (i,))
    elif isinstance(value, str):
        yield location, value


def control_problem(variable: str, value: Any, host: Optional[str] = None) -> Optional[Problem]:
    """The problem of the first control character in a value (None when there is none)."""
    for location, text in strings(value):
        match = CONTROL.search(text)
        if match:
            char = match.group(0)
            what = _CONTROL_NAMES.get(char, "the control character U+%04X" % ord(char))
            return Problem(variable, value, "holds %s%s: a value ends at a line break in the router's systemd unit, "
                           "the printed commands and the containers' environment, so it could add a line of its "
                           "own." % (what, _where(location)), "remove the control character: write the value on one "
                           "line, with spaces instead of tabs.", host)
    return None


# ------------------------------------------------------------------------------------------------ paths
# Directories a cache or a shared mount must never be: the system's own trees (anything under them), and top-level
# directories that hold more than this (the directory itself; a directory of its own below them is fine).
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/lib", "/lib32", "/lib64",
                "/libx32", "/run", "/var/run", "/var/lib/docker")
SYSTEM_DIRS = ("/", "/var", "/root", "/home", "/srv", "/opt", "/mnt", "/media", "/tmp", "/var/lib", "/var/cache",
               "/var/log", "/var/tmp", "/snap")
_PATH_CHAR = re.compile(r"[A-Za-z0-9._@+/-]")
_PATH_FIX = "use a directory of its own, e.g. /var/lib/deepseek-v4/hf-cache or /mnt/shared."


def _path_chars_problem(variable: str, text: str, body: str) -> Optional[Problem]:
    bad = sorted(set(_PATH_CHAR.sub("", body)))
    if not bad:
        return None
    why = []
    if ":" in bad or "," in bad:
        why.append("Docker reads ':' and ',' in a bind mount as separators (a second mount or options)")
    if any(c.isspace() for c in bad):
        why.append("spaces are lost in the printed commands")
    return Problem(variable, text, "holds %s%s." % (" ".join(repr(c) for c in bad), (": " + "; ".join(why))
                                                    if why else ""),
                   "choose a directory whose path has only letters, digits and . _ - @ + /.")


def path_problem(variable: str, value: Any, empty_ok: bool = False) -> Optional[Problem]:
    """The problem of a host directory mounted into the engines (None when it is fine)."""
    text = "" if value is None else str(value)
    if text == "":
        return None if empty_ok else Problem(variable, value, "is empty.", "set an absolute directory; %s" % _PATH_FIX)
    home = text.startswith("~/") or text == "~"
    body = text[1:] or "/" if home else text
    if not body.startswith("/"):
        return Problem(variable, text, "is not an absolute path: the containers would mount a Docker volume of that "
                       "name, or a directory relative to wherever the task runs.",
                       "write it from the root (/...) or from the home directory (~/...); %s" % _PATH_FIX)
    problem = _path_chars_problem(variable, text, body)
    if problem:
        return problem
    norm = posixpath.normpath(body)
    if norm != body or "//" in body:
        return Problem(variable, text, "is not a normalised path ('..', '.', '//' or a trailing '/').",
                       "write %s%s." % ("~" if home and norm != "/" else "", norm))
    if norm in SYSTEM_DIRS or any(norm == t or norm.startswith(t + "/") for t in SYSTEM_TREES):
        what = "the home directory itself" if home and norm == "/" else "/ or a system directory"
        return Problem(variable, text, "is %s: the engines mount it read-write as root." % what, _PATH_FIX)
    return None


# ------------------------------------------------------------------------------------------------ names
# git check-ref-format, plus a commit id (hex): what huggingface_hub and vLLM's --revision take.
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|^\.|/\.|\.lock$|\.lock/|\.$|^@$")
# Hugging Face repository ids: org/name, letters, digits, '-', '_', '.', neither '--' nor '..', at most 96 each.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(r"^%s/%s$" % (_REPO_PART, _REPO_PART))
# Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest]; the digest itself is
# checked by rules.images_pinned.
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = r"(?:%s(?:\.%s)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?" % (_DOMAIN_PART, _DOMAIN_PART)
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(r"^(?:%s/)?%s(?:/%s)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z0-9_+.-]+:[A-Za-z0-9]+)?$"
                    % (_DOMAIN, _PATH_PART, _PATH_PART))
# Linux interface names: at most IFNAMSIZ - 1 = 15 bytes, no '/', ':' or white space, not '.' or '..'.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_!-]{0,63}$")
_GROUP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_DEVICES = re.compile(r"^[A-Za-z0-9_.:-]{1,64}(?:, ?[A-Za-z0-9_.:-]{1,64})*$")
_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:+-]{0,255}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def revision_problem(variable: str, value: Any) -> Optional[Problem]:
    text = str(value)
    if text and not _REF_BAD.search(text) and len(text) <= 255:
        return None
    return Problem(variable, value, "is not a git revision: a branch, a tag or a commit id, in git's reference "
                   "syntax (no '..', spaces, ~ ^ : ? * [ \\, no leading or trailing '/' or '.').",
                   "copy the commit id (40 hex digits) or the branch/tag name from the model page's history, or "
                   "set null for the default branch.")


def model_problem(variable: str, value: Any) -> Optional[Problem]:
    text = str(value)
    if _REPO_ID.fullmatch(text) and "--" not in text and ".." not in text:
        return None
    return Problem(variable, value, "is not a Hugging Face model id (org/name: letters, digits, '-', '_', '.'; no "
                   "path, URL or space).", "write the id as the model page names it, e.g. "
                   "deepseek-ai/DeepSeek-V4-Flash, or set null for the recipe's.")


def image_problem(variable: str, value: Any) -> Optional[Problem]:
    text = str(value)
    if _IMAGE.fullmatch(text) and len(text.split("@", 1)[0]) <= 255 + 128:
        return None
    return Problem(variable, value, "is not a Docker image reference ([registry/]repository[:tag][@digest]; the "
                   "repository in lower case, the tag of letters, digits, '_', '.', '-').",
                   "write it as `docker pull` takes it, e.g. vllm/vllm-openai:deepseekv4-cu130.")


def ifnames_problem(variable: str, value: Any) -> Optional[Problem]:
    names = str(value).split(",")
    bad = [n for n in names if not _IFNAME.fullmatch(n) or n in (".", "..")]
    if not bad:
        return None
    return Problem(variable, value, "%s is not a Linux interface name (1 to 15 letters, digits, '_', '.', '-'; "
                   "several: comma-separated, no spaces; NCCL's ^ and = prefixes do not apply to "
                   "GLOO_SOCKET_IFNAME)." % ", ".join(repr(n) for n in bad),
                   "name the interface as `ip -br link` shows it, e.g. eth0 or ens1f0np0.")


def address_problem(variable: str, value: Any, host: Optional[str] = None) -> Optional[Problem]:
    """The problem of an address a service binds or is reached on: an IP literal or a host name."""
    text = str(value)
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ipaddress.ip_address(literal)
        return None
    except ValueError:
        pass
    if _HOSTNAME.fullmatch(text) and not text.replace(".", "").isdigit():
        return None
    return Problem(variable, value, "is neither an IP address nor a host name.",
                   "write an address such as 10.0.0.11 or ::1, or a host name such as node-1.example.com "
                   "(no scheme, port or path).", host)


def _pattern_check(pattern: re.Pattern[str], message: str, fix: str) -> Callable[[str, Any], Optional[Problem]]:
    def check(variable: str, value: Any) -> Optional[Problem]:
        if pattern.fullmatch(str(value)):
            return None
        return Problem(variable, value, message, fix)
    return check


SYNTAX = {
    "model": model_problem,
    "image": image_problem,
    "lmcache_image": image_problem,
    "weights_revision": revision_problem,
    "socket_ifname": ifnames_problem,
    "router_host": address_problem,
    "mooncake_device_name": _pattern_check(_DEVICES, "is not a list of RDMA device names.", "write the names "
                                           "`ibv_devices` lists, comma-separated, e.g. mlx5_0,mlx5_1."),
    "vllm_version": _pattern_check(_VERSION, "is not a version.", "write a release version, e.g. 0.20.0."),
    "router_version": _pattern_check(_VERSION, "is not a version.", "write a release version, e.g. 0.1.17."),
    "lmcache_eviction_policy": _pattern_check(_WORD, "is not an eviction policy name.", "write a policy name "
                                              "such as LRU."),
}
for _group in [name for name in P.SETTINGS if name.endswith("_group")]:
    SYNTAX[_group] = _pattern_check(_GROUP, "is not an inventory group name.", "write the group's name: letters, "
                                    "digits, '_', '-' and '.'.")
PATHS = {"hf_cache_dir": False, "shared_dir": True}
CONTAINER_HF_CACHE = "/root/.cache/huggingface"


# ------------------------------------------------------------------------------------------------ flags and env
def _flag_values(tokens: Iterable[Any]) -> Iterator[tuple[str, Optional[str]]]:
    """(flag key, value or None) of each flag of a token list (--flag value or --flag=value)."""
    tokens = [str(t) for t in tokens]
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            if "=" in token:
                yield flag_key(token), token.split("=", 1)[1]
            else:
                nxt = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("-") else None
                yield flag_key(token), nxt


def args_problems(variable: str, tokens: Sequence[Any]) -> list[Problem]:
    """Extra flags: each one a string (not a mapping or a list), a served model name in its syntax."""
    nested = [t for t in tokens if isinstance(t, (dict, list, tuple)) or t is None]
    if nested:
        return [Problem(variable, tokens, "item(s) %s are not strings (YAML reads `- --flag: value` as a mapping)."
                        % nested, "write each flag and each value as its own string: ['--max-num-seqs', '16'].")]
    for key, value in _flag_values(tokens):
        if key == "served-model-name" and value is not None and not _SERVED_NAME.fullmatch(value):
            return [Problem(variable, tokens, "--served-model-name %r is not a model name clients can send "
                            "(letters, digits, '.', '_', '-', '/', ':', '+')." % value,
                            "write a name such as deepseek-v4-flash.")]
    return []


def env_problems(variable: str, mapping: Mapping[Any, Any]) -> list[Problem]:
    """Extra environment: names a shell and Docker take, values that are scalars."""
    problems = []
    bad = sorted(str(k) for k in mapping if not _ENV_NAME.fullmatch(str(k)))
    if bad:
        problems.append(Problem(variable, bad, "%s is not an environment variable name." % ", ".join(bad),
                                "use letters, digits and '_', not starting with a digit (e.g. NCCL_DEBUG)."))
    nested = sorted(str(k) for k, v in mapping.items() if isinstance(v, (dict, list, tuple)))
    if nested:
        problems.append(Problem(variable, nested, "the value of %s is a list or a mapping." % ", ".join(nested),
                                "give each variable one string value (quote numbers and booleans)."))
    return problems


def _mounts_problem(s: Mapping[str, Any]) -> Optional[Problem]:
    shared = str(s.get("shared_dir") or "")
    target = CONTAINER_HF_CACHE
    if shared and (shared == target or shared.startswith(target + "/") or target.startswith(shared + "/")):
        return Problem(_var("shared_dir"), shared, "is mounted at the same path in the containers, over (or under) "
                       "the Hugging Face cache mount %s." % target, "choose a shared directory outside %s, e.g. "
                       "/mnt/shared." % target)
    return None


def _length_problem(s: Mapping[str, Any]) -> Optional[Problem]:
    value = s.get("max_model_len")
    if value is None or "think_max" in (s.get("reasoning_modes") or []):
        return None  # rules.think_max_context reads it with Think Max on
    try:
        parse_len(value)
        return None
    except ValueError:
        return Problem(_var("max_model_len"), value, "is not a length vLLM understands.",
                       "use a number such as 393216, 384K, or auto.")


def check(user: Optional[Mapping[str, Any]], s: Mapping[str, Any]) -> list[Problem]:
    """Problems of every value the user set (``user``: the plan_* mapping as given, ``s``: the settings resolved and
    typed): control characters anywhere, then each setting's own syntax."""
    problems = [p for p in (control_problem(_var(n), v) for n, v in sorted((user or {}).items(), key=lambda x: x[0])
                            if n in s and v is not None) if p]
    shown = {p.variable for p in problems}
    for name, value in sorted(s.items()):
        variable = _var(name)
        if variable in shown or value is None:
            continue
        problems.extend(_syntax(name, variable, value))
    problems.extend(p for p in (_mounts_problem(s), _length_problem(s)) if p and p.variable not in shown)
    return problems


def _syntax(name: str, variable: str, value: Any) -> list[Problem]:
    if name in PATHS:
        found = path_problem(variable, value, empty_ok=PATHS[name])
        return [found] if found else []
    if name in SYNTAX and isinstance(value, (str, int)) and not isinstance(value, bool):
        found = SYNTAX[name](variable, value)
        return [found] if found else []
    if name.endswith("_args") and isinstance(value, (list, tuple)):
        return args_problems(variable, value)
    if name.endswith("_env") and isinstance(value, dict):
        return env_problems(variable, value)
    return []
