#!/usr/bin/env bash
# CPU rehearsal of playbooks/h200_pd.yml on the local Docker engine (see tests/rehearsal/inventory/).
#
#   scripts/rehearse.sh              build missing images, create the node container, run the rollout
#   scripts/rehearse.sh --teardown   run playbooks/teardown.yml against the node, confirmed (rehearsal-teardown)
#   scripts/rehearse.sh --destroy    teardown, then remove the node container, the rehearsal data dirs and reports
#   scripts/rehearse.sh --node       only make sure the node container runs (with its hardware doubles)
#   scripts/rehearse.sh --upgrade    run playbooks/upgrade.yml (a rolling upgrade; pass the change after --)
# Extra arguments after `--` go to ansible-playbook (for example -e plan_decode_flag_overrides=...).
#
# TOPOLOGY picks the rehearsal: h200_pd (default, the one "H200 node" below) or any topology with a
# tests/rehearsal/<topology>/rehearsal.conf (gb200_pd_cluster, single_node, lmcache_tp8, multi_node_dep: nodes with a
# network namespace each, scripts/rehearse-cluster.sh).
#
# Environment: DSV4_REHEARSAL_NODE (node container name), DSV4_REHEARSAL_IMAGE (engine image to use
# instead of building scripts/build-rehearsal-image.sh's), ANSIBLE_PLAYBOOK (ansible-playbook to use,
# default .venv/bin/ansible-playbook, else the one on PATH).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

TOPOLOGY=${TOPOLOGY:-h200_pd}
if [ "$TOPOLOGY" != h200_pd ]; then
  if [ -f "$ROOT/tests/rehearsal/$TOPOLOGY/rehearsal.conf" ]; then
    export TOPOLOGY
    exec bash "$ROOT/scripts/rehearse-cluster.sh" "$@"
  fi
  known=$(find "$ROOT/tests/rehearsal" -mindepth 2 -maxdepth 2 -name rehearsal.conf -printf '%h\n' | xargs -n1 basename \
    | sort | tr '\n' ' ')
  echo "unknown TOPOLOGY=${TOPOLOGY} (rehearsals: h200_pd ${known})" >&2
  exit 2
fi

NODE=${DSV4_REHEARSAL_NODE:-deepseek-v4-rehearsal-node}
export DSV4_REHEARSAL_NODE=$NODE
DATA_DIR=/var/lib/deepseek-v4-rehearsal
ACTION=rollout
case "${1:-}" in
  --teardown) ACTION=teardown; shift ;;
  --destroy) ACTION=destroy; shift ;;
  --node) ACTION=node; shift ;;
  --upgrade) ACTION=upgrade; shift ;;
  --help|-h) sed -n '2,15p' "$0"; exit 0 ;;
esac
[ "${1:-}" = "--" ] && shift

if [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
  if [ -x "$ROOT/.venv/bin/ansible-playbook" ]; then ANSIBLE_PLAYBOOK=$ROOT/.venv/bin/ansible-playbook
  else ANSIBLE_PLAYBOOK=$(command -v ansible-playbook); fi
fi

node_running() {
  [ "$(docker inspect -f '{{.State.Running}}' "$NODE" 2>/dev/null || true)" = "true" ]
}

# A node started by an older version of this script lacks the shared $DATA_DIR or NET_ADMIN: it is started again.
node_current() {
  node_running && docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "$NODE" | grep -qw -- "$DATA_DIR" \
    && docker inspect -f '{{.HostConfig.CapAdd}}' "$NODE" | grep -q NET_ADMIN
}

ensure_node() {
  local base
  base=$(bash scripts/build-base-image.sh --print)
  bash scripts/build-base-image.sh >/dev/null
  if ! node_current; then
    docker rm -f "$NODE" >/dev/null 2>&1 || true
    echo "starting node container $NODE ($base)"
    # Like a host after a Docker daemon restart, the node comes back (with its systemd units) by its restart policy.
    # The node drives the Docker engine of this machine, so a path the roles write on the node and an engine mounts
    # (the Hugging Face cache, the engines' kernel caches) must be the same directory on both: $DATA_DIR is shared.
    # NET_ADMIN: the role cluster_firewall applies the plan's nftables table (the engines' Mooncake bootstrap ports,
    # which vLLM binds on every address, limited to the node's own addresses) in the network namespace the node
    # shares with this machine; the teardown removes it.
    mkdir -p "$DATA_DIR"
    docker run -d --name "$NODE" --restart unless-stopped \
      --network host --cap-add NET_ADMIN \
      --tmpfs /run --tmpfs /run/lock \
      -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
      -v /var/run/docker.sock:/var/run/docker.sock \
      -v "$DATA_DIR:$DATA_DIR" \
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

# The node's "hardware" (TEST DOUBLES of tests/doubles/, never on a real host): the recorded healthy 8x H200 node with
# its RDMA ports, so that the playbook's gpu_preflight and rdma roles run for real against it.
install_doubles() {
  bash scripts/install-hardware-doubles.sh "$NODE" h200
}

# The engines run without --privileged (plan_engine_privileges: rdma_devices): Docker passes them /dev/infiniband,
# which must exist on the Docker engine's host. Where it does not (no RDMA NIC), a TEST DOUBLE takes its place: a
# directory with one character device of /dev/null's numbers (1:3) named uverbs0, and a marker that --destroy reads
# to remove it again. A real /dev/infiniband is used as it is and never touched.
RDMA_DEV=/dev/infiniband
RDMA_DOUBLE_MARKER=$RDMA_DEV/.deepseek-v4-rehearsal-double
rdma_device_double() {
  if [ -e "$RDMA_DEV" ]; then return 0; fi
  mkdir -p "$RDMA_DEV" && mknod "$RDMA_DEV/uverbs0" c 1 3 && touch "$RDMA_DOUBLE_MARKER"
  echo "RDMA device double: $RDMA_DEV/uverbs0 (numbers of /dev/null) for the engines' --device $RDMA_DEV"
}

# Whether this Docker engine can grant the plan's unlimited memlock ulimit (--ulimit memlock=-1:-1). A Docker engine
# that itself runs in a container without CAP_SYS_RESOURCE cannot raise the limit ("error setting rlimit type 8");
# then the rehearsal passes no ulimit (vllm_engine_pass_ulimits: false) and says so. Exported for group_vars.
memlock_probe() {
  if docker run --rm --ulimit memlock=-1:-1 --entrypoint true "$(bash scripts/build-base-image.sh --print)" \
      >/dev/null 2>&1; then
    DSV4_REHEARSAL_MEMLOCK=unlimited
  else
    DSV4_REHEARSAL_MEMLOCK=limited
    echo "this Docker engine cannot grant --ulimit memlock=-1:-1: the engines start without the plan's ulimit"
  fi
  export DSV4_REHEARSAL_MEMLOCK
}

case "$ACTION" in
  node)
    ensure_node
    install_doubles
    ;;
  upgrade|rollout)
    bash scripts/ensure-docker.sh >/dev/null
    if [ -z "${DSV4_REHEARSAL_IMAGE:-}" ]; then
      bash scripts/build-rehearsal-image.sh
      DSV4_REHEARSAL_IMAGE=$(bash scripts/build-rehearsal-image.sh --print)
    fi
    export DSV4_REHEARSAL_IMAGE
    ensure_node
    install_doubles
    rdma_device_double
    memlock_probe
    mkdir -p rehearsal-out
    if [ "$ACTION" = upgrade ]; then PLAYBOOK=playbooks/upgrade.yml; else PLAYBOOK=playbooks/h200_pd.yml; fi
    "$ANSIBLE_PLAYBOOK" -i tests/rehearsal/inventory "$PLAYBOOK" "$@"
    ;;
  teardown|destroy)
    DSV4_REHEARSAL_IMAGE=${DSV4_REHEARSAL_IMAGE:-$(bash scripts/build-rehearsal-image.sh --print)}
    export DSV4_REHEARSAL_IMAGE
    if node_running; then
      # The rehearsal confirms the teardown on the command line (teardown.yml asks otherwise).
      "$ANSIBLE_PLAYBOOK" -i tests/rehearsal/inventory playbooks/teardown.yml -e deepseek_v4_teardown_confirm=yes "$@"
    else
      echo "node container $NODE is not running: nothing to tear down with Ansible"
    fi
    if [ "$ACTION" = destroy ]; then
      if docker rm -f "$NODE" >/dev/null 2>&1; then echo "removed node container $NODE"; fi
      rm -rf "$DATA_DIR" rehearsal-out/preflight rehearsal-out/smoke-summary.json
      if [ -e "$RDMA_DOUBLE_MARKER" ]; then rm -rf "$RDMA_DEV"; echo "removed the RDMA device double $RDMA_DEV"; fi
    fi
    ;;
esac
