#!/usr/bin/env bash
# CPU rehearsal of playbooks/h200_pd.yml on the local Docker engine (see inventories/rehearsal/).
#
#   scripts/rehearse.sh              build missing images, create the node container, run the rollout
#   scripts/rehearse.sh --teardown   run playbooks/teardown.yml against the node (rehearsal-teardown)
#   scripts/rehearse.sh --destroy    teardown, then remove the node container and the rehearsal data dirs
#   scripts/rehearse.sh --node       only make sure the node container runs
# Extra arguments after `--` go to ansible-playbook (for example -e plan_decode_flag_overrides=...).
#
# Environment: DSV4_REHEARSAL_NODE (node container name), DSV4_REHEARSAL_IMAGE (engine image to use
# instead of building scripts/build-rehearsal-image.sh's), ANSIBLE_PLAYBOOK (ansible-playbook to use,
# default .venv/bin/ansible-playbook, else the one on PATH).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

NODE=${DSV4_REHEARSAL_NODE:-deepseek-v4-rehearsal-node}
export DSV4_REHEARSAL_NODE=$NODE
DATA_DIR=/var/lib/deepseek-v4-rehearsal
ACTION=rollout
case "${1:-}" in
  --teardown) ACTION=teardown; shift ;;
  --destroy) ACTION=destroy; shift ;;
  --node) ACTION=node; shift ;;
  --help|-h) sed -n '2,12p' "$0"; exit 0 ;;
esac
[ "${1:-}" = "--" ] && shift

if [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
  if [ -x "$ROOT/.venv/bin/ansible-playbook" ]; then ANSIBLE_PLAYBOOK=$ROOT/.venv/bin/ansible-playbook
  else ANSIBLE_PLAYBOOK=$(command -v ansible-playbook); fi
fi

node_running() {
  [ "$(docker inspect -f '{{.State.Running}}' "$NODE" 2>/dev/null || true)" = "true" ]
}

ensure_node() {
  local base
  base=$(bash scripts/build-base-image.sh --print)
  bash scripts/build-base-image.sh >/dev/null
  if ! node_running; then
    docker rm -f "$NODE" >/dev/null 2>&1 || true
    echo "starting node container $NODE ($base)"
    docker run -d --name "$NODE" \
      --network host \
      --tmpfs /run --tmpfs /run/lock \
      -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
      -v /var/run/docker.sock:/var/run/docker.sock \
      --label inference.deepseek_v4.rehearsal=node \
      "$base" /lib/systemd/systemd >/dev/null
  fi
  # Wait for systemd to come up inside the node.
  for _ in $(seq 60); do
    state=$(docker exec "$NODE" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) return 0 ;; esac
    sleep 1
  done
  echo "systemd in $NODE did not come up (state: ${state:-unknown})" >&2
  exit 1
}

case "$ACTION" in
  node)
    ensure_node
    ;;
  rollout)
    bash scripts/ensure-docker.sh >/dev/null
    if [ -z "${DSV4_REHEARSAL_IMAGE:-}" ]; then
      bash scripts/build-rehearsal-image.sh
      DSV4_REHEARSAL_IMAGE=$(bash scripts/build-rehearsal-image.sh --print)
    fi
    export DSV4_REHEARSAL_IMAGE
    ensure_node
    mkdir -p rehearsal-out
    "$ANSIBLE_PLAYBOOK" -i inventories/rehearsal playbooks/h200_pd.yml "$@"
    ;;
  teardown|destroy)
    DSV4_REHEARSAL_IMAGE=${DSV4_REHEARSAL_IMAGE:-$(bash scripts/build-rehearsal-image.sh --print)}
    export DSV4_REHEARSAL_IMAGE
    if node_running; then
      "$ANSIBLE_PLAYBOOK" -i inventories/rehearsal playbooks/teardown.yml "$@"
    else
      echo "node container $NODE is not running: nothing to tear down with Ansible"
    fi
    if [ "$ACTION" = destroy ]; then
      docker rm -f "$NODE" >/dev/null 2>&1 && echo "removed node container $NODE" || true
      rm -rf "$DATA_DIR"
    fi
    ;;
esac
