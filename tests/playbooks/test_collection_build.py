# -*- coding: utf-8 -*-
"""`ansible-galaxy collection build` makes a tarball that installs and runs `ansible-playbook inference.deepseek_v4.plan`."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tool(name):
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else name


def test_build_install_and_run_the_installed_playbook(tmp_path):
    out = tmp_path / "dist"
    subprocess.run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), ROOT], check=True,
                   capture_output=True, text=True, cwd=ROOT)
    (tarball,) = glob.glob(str(out / "inference-deepseek_v4-*.tar.gz"))
    installed = tmp_path / "collections"
    subprocess.run([tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(installed),
                    tarball], check=True, capture_output=True, text=True, cwd=str(tmp_path))
    assert (installed / "ansible_collections" / "inference" / "deepseek_v4" / "playbooks" / "plan.yml").exists()
    # Run from outside the repository so that only the installed copy can be found.
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_CONFIG=str(cfg), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([tool("ansible-playbook"), "inference.deepseek_v4.plan", "-i",
                           os.path.join(ROOT, "inventories", "h200_pd"), "-e", "deepseek_v4_plan_dir=%s" % tmp_path],
                          capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "plan.json").read_text())["topology"] == "h200_pd"
