# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Write the variable table of each role's README.md from its meta/argument_specs.yml.

The table (variable, type, default, description; one table per entry point) sits between two markers:

    <!-- BEGIN role-docs ... -->
    ...
    <!-- END role-docs -->

and only that part of the README is ever rewritten; running the script twice changes nothing. A README without the
markers gets them once: in place of its hand-written table of the role's variables (a table headed
``| variable | default ...`` whose every variable is an option of the spec), else appended at its end under a
``## Variables`` heading.

    python3 scripts/role-docs.py [--check] [ROLE ...]     (make role-docs; default: every role under roles/)

--check writes nothing and exits 1 naming every README whose table is stale (tests/unit/test_role_docs.py does the
same).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- BEGIN role-docs: generated from meta/argument_specs.yml by scripts/role-docs.py; do not edit -->"
END = "<!-- END role-docs -->"
_MARKED = re.compile(r"^<!-- BEGIN role-docs\b.*?^<!-- END role-docs -->$", re.S | re.M)
# Ansible's documentation markup, as Markdown.
_MARKUP = [
    (re.compile(r"\b(?:C|O|V|E|RV|M)\(([^)]*)\)"), r"`\1`"),
    (re.compile(r"\bI\(([^)]*)\)"), r"*\1*"),
    (re.compile(r"\bB\(([^)]*)\)"), r"**\1**"),
    (re.compile(r"\bL\(([^,)]*),\s*([^)]*)\)"), r"[\1](\2)"),
    (re.compile(r"\bU\(([^)]*)\)"), r"<\1>"),
]


def _cell(text):
    """One table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _prose(text):
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = str(text or "")
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def _value(value):
    """A default as YAML would write it inline, in a code span."""
    if isinstance(value, str):
        return "`%s`" % value if value else '`""`'
    dumped = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False)
    return "`%s`" % dumped.strip().removesuffix("...").strip()


def _row(name, option):
    kind = option.get("type", "str")
    if option.get("elements"):
        kind = "%s of %s" % (kind, option["elements"])
    if option.get("required"):
        default = "required"
    elif "default" in option:
        default = _value(option["default"])
    else:
        default = ""
    description = _prose(option.get("description"))
    if option.get("choices"):
        description += " One of %s." % ", ".join(_value(c) for c in option["choices"])
    return "| `%s` | %s | %s | %s |" % (name, _cell(kind), _cell(default), _cell(description.strip()))


def _table(options):
    if not options:
        return ["This entry point takes no variables."]
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    return rows + [_row(name, option or {}) for name, option in options.items()]


def render(specs):
    """The marked section (markers included) for a role's argument_specs."""
    entries = specs.get("argument_specs") or {}
    lines = [BEGIN]
    for entry, spec in entries.items():
        if len(entries) > 1 or entry != "main":
            how = "the role itself" if entry == "main" else "`tasks_from: %s`" % entry
            lines += ["", "Entry point `%s` (%s): %s" % (entry, how, _cell(_prose(spec.get("short_description"))))]
        lines += [""] + _table(spec.get("options") or {})
    return "\n".join(lines + ["", END])


def _hand_table(text, options):
    """(start, end) of the hand-written table of the role's variables, or None."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not re.match(r"^\|\s*variable\s*\|\s*default\s*\|", line):
            continue
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            j += 1
        names = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", " ".join(row.split("|")[1] for row in lines[i + 2:j])))
        if names and names <= set(options):
            start = sum(len(line) + 1 for line in lines[:i])
            return start, start + len("\n".join(lines[i:j]))
    return None


def update(readme, specs):
    """The README's text with its marked section written from the specs."""
    section = render(specs)
    if _MARKED.search(readme):
        return _MARKED.sub(lambda _: section, readme, count=1)
    options = {}
    for spec in (specs.get("argument_specs") or {}).values():
        options.update(spec.get("options") or {})
    found = _hand_table(readme, options)
    if found:
        return readme[:found[0]] + section + readme[found[1]:]
    heading = "## Variables: the full list" if re.search(r"^## Variables\s*$", readme, re.M) else "## Variables"
    return readme.rstrip("\n") + "\n\n" + heading + "\n\n" + section + "\n"


def roles(root=ROOT):
    base = os.path.join(root, "roles")
    return sorted(r for r in os.listdir(base) if os.path.isfile(os.path.join(base, r, "meta", "argument_specs.yml"))
                  and os.path.isfile(os.path.join(base, r, "README.md")))


def stale(role, root=ROOT, write=False):
    """Whether the role's README differs from what the script writes; with write, write it."""
    readme_path = os.path.join(root, "roles", role, "README.md")
    with open(os.path.join(root, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as f:
        specs = yaml.safe_load(f) or {}
    with open(readme_path, encoding="utf-8") as f:
        readme = f.read()
    wanted = update(readme, specs)
    if write and wanted != readme:
        with open(readme_path, "w", encoding="utf-8") as f:
            f.write(wanted)
    return wanted != readme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a README is stale")
    parser.add_argument("roles", nargs="*", help="roles to do (default: every role)")
    args = parser.parse_args(argv)
    changed = [role for role in (args.roles or roles()) if stale(role, write=not args.check)]
    for role in changed:
        print("roles/%s/README.md: %s" % (role, "stale (run scripts/role-docs.py)" if args.check else "written"))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
