#!/usr/bin/env bash
# CPU rehearsal of a multi-node topology on the local Docker engine: the nodes of tests/rehearsal/$TOPOLOGY/
# (rehearsal.conf: node table, network, playbook; inventory/: hosts and settings), with the settings every such
# rehearsal shares in tests/rehearsal/cluster_common/. Called by scripts/rehearse.sh for TOPOLOGY=gb200_pd_cluster,
# single_node, lmcache_tp8, multi_node_dep, ... (any directory with a rehearsal.conf).
#
#   scripts/rehearse-cluster.sh              build missing images, create the network and the nodes, run the rollout
#   scripts/rehearse-cluster.sh --teardown   run playbooks/teardown.yml against the nodes
#   scripts/rehearse-cluster.sh --upgrade    run playbooks/upgrade.yml (a rolling upgrade; pass the change after --)
#   scripts/rehearse-cluster.sh --destroy    teardown, then remove the nodes, the network, the data dirs and reports
#   scripts/rehearse-cluster.sh --node       only make sure the network and the nodes run (with their doubles)
# Extra arguments after `--` go to ansible-playbook.
#
# Each node is a systemd container from the base image with its own network namespace on the rehearsal's Docker
# network (fixed addresses $NET.<n>) and the Docker socket, so the engines it starts are siblings that join its
# namespace (container:<node>); NET_ADMIN lets the role cluster_firewall apply its nftables table in that namespace.
# Nothing is published on this machine's own network. Environment:
# DSV4_REHEARSAL_IMAGE, ANSIBLE_PLAYBOOK, as scripts/rehearse.sh; DSV4_REHEARSAL_NODE_IMAGE, the nodes' image
# (default: the base image of scripts/build-base-image.sh); DSV4_REHEARSAL_NET, the first three numbers of the
# network's addresses (default: NET_DEFAULT of rehearsal.conf); DSV4_REHEARSAL_DIR, a rehearsal directory kept
# elsewhere (rehearsal.conf + inventory/, e.g. the N-host one benchmarks/scale_bench.py generates) instead of
# tests/rehearsal/$TOPOLOGY (TOPOLOGY still names its topology; its reports go to rehearsal-out/$NAME).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

TOPOLOGY=${TOPOLOGY:-gb200_pd_cluster}
REHEARSAL_DIR=${DSV4_REHEARSAL_DIR:-tests/rehearsal/$TOPOLOGY}
CONF=$REHEARSAL_DIR/rehearsal.conf
[ -f "$CONF" ] || { echo "no rehearsal of TOPOLOGY=$TOPOLOGY ($CONF missing)" >&2; exit 2; }
# rehearsal.conf sets NAME (containers, network, data dir), PLAYBOOK, NET_DEFAULT (the network; DSV4_REHEARSAL_NET
# overrides it), NODES ("host:address:kind ...", kind = a row of scripts/install-hardware-doubles.sh) and optionally
# IMAGES (more image build scripts, e.g. the LMCache server's).
IMAGES=""
# shellcheck source=/dev/null
. "$CONF"
INVENTORY=$REHEARSAL_DIR/inventory
COMMON_INVENTORY=tests/rehearsal/cluster_common
NETWORK=deepseek-v4-$NAME-rehearsal
NET=${DSV4_REHEARSAL_NET:-$NET_DEFAULT}
export DSV4_REHEARSAL_NET=$NET
PREFIX=$NETWORK-
DATA_DIR=/var/lib/$NETWORK
OUT_DIR=rehearsal-out/$TOPOLOGY
[ -z "${DSV4_REHEARSAL_DIR:-}" ] || OUT_DIR=rehearsal-out/$NAME
LABEL=inference.deepseek_v4.rehearsal=$TOPOLOGY-node

ACTION=rollout
case "${1:-}" in
  --teardown) ACTION=teardown; shift ;;
  --destroy) ACTION=destroy; shift ;;
  --node) ACTION=node; shift ;;
  --upgrade) ACTION=upgrade; shift ;;
  --help|-h) sed -n '2,18p' "$0"; exit 0 ;;
esac
[ "${1:-}" = "--" ] && shift

if [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
  if [ -x "$ROOT/.venv/bin/ansible-playbook" ]; then ANSIBLE_PLAYBOOK=$ROOT/.venv/bin/ansible-playbook
  else ANSIBLE_PLAYBOOK=$(command -v ansible-playbook); fi
fi

running() {
  [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null || true)" = "true" ]
}

all_running() {
  local spec
  for spec in $NODES; do running "$PREFIX${spec%%:*}" || return 1; done
}

ensure_network() {
  if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
    echo "creating network $NETWORK ($NET.0/24)"
    docker network create --driver bridge --subnet "$NET.0/24" --gateway "$NET.1" \
      --label "$LABEL" "$NETWORK" >/dev/null
  fi
}

# Each node's systemd takes several inotify instances of the host's (shared) per-user limit. Past it, a node's systemd
# exits at once with status 255 and no log: 33 nodes need more than the kernel's default of 128.
ensure_inotify() {
  local count want have
  count=$(wc -w <<<"$NODES")
  want=$(( 256 + 16 * count ))
  have=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo "$want")
  [ "$have" -ge "$want" ] && return 0
  if [ "$(id -u)" = 0 ] && sysctl -qw "fs.inotify.max_user_instances=$want"; then
    echo "raised fs.inotify.max_user_instances from $have to $want for $count node containers"
    return 0
  fi
  echo "fs.inotify.max_user_instances is $have; $count node containers need about $want (their systemd exits without" \
    "it). Fix: sudo sysctl -w fs.inotify.max_user_instances=$want" >&2
  exit 1
}

ensure_nodes() {
  local base spec host ip node state
  base=$(bash scripts/build-base-image.sh --print)
  bash scripts/build-base-image.sh >/dev/null
  # A node image of the caller's, built on the base image (benchmarks/scale_bench.py: trays whose RDMA user space is
  # installed, as DOCA or MLNX OFED trays come).
  base=${DSV4_REHEARSAL_NODE_IMAGE:-$base}
  ensure_network
  ensure_inotify
  for spec in $NODES; do
    IFS=: read -r host ip _ <<<"$spec"
    node=$PREFIX$host
    if ! running "$node"; then
      docker rm -f "$node" >/dev/null 2>&1 || true
      echo "starting node container $node ($NET.$ip, $base)"
      docker run -d --name "$node" --hostname "$host" \
        --network "$NETWORK" --ip "$NET.$ip" \
        --tmpfs /run --tmpfs /run/lock \
        -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
        -v /var/run/docker.sock:/var/run/docker.sock \
        --cap-add NET_ADMIN \
        --label "$LABEL" \
        "$base" /lib/systemd/systemd >/dev/null
    fi
  done
  for spec in $NODES; do
    node=$PREFIX${spec%%:*}
    state=""
    for _ in $(seq 90); do
      state=$(docker exec "$node" systemctl is-system-running 2>/dev/null || true)
      case "$state" in running|degraded) continue 2 ;; esac
      sleep 1
    done
    echo "systemd in $node did not come up (state: ${state:-unknown})" >&2
    exit 1
  done
}

# Each node's "hardware": the TEST DOUBLES of its kind (scripts/install-hardware-doubles.sh).
install_doubles() {
  local spec host kind
  for spec in $NODES; do
    IFS=: read -r host _ kind <<<"$spec"
    bash scripts/install-hardware-doubles.sh "$PREFIX$host" "$kind"
  done
}

# Engine containers of this rehearsal (their names carry their node's), for the last-resort cleanup of --destroy.
engine_containers() {
  docker ps -aq --filter "name=^${PREFIX}" --filter "label=inference.deepseek_v4.topology=$TOPOLOGY"
}

case "$ACTION" in
  node)
    ensure_nodes
    install_doubles
    ;;
  rollout|upgrade)
    bash scripts/ensure-docker.sh >/dev/null
    if [ -z "${DSV4_REHEARSAL_IMAGE:-}" ]; then
      bash scripts/build-rehearsal-image.sh
      DSV4_REHEARSAL_IMAGE=$(bash scripts/build-rehearsal-image.sh --print)
    fi
    export DSV4_REHEARSAL_IMAGE
    for build in $IMAGES; do bash "scripts/$build"; done
    ensure_nodes
    install_doubles
    mkdir -p "$OUT_DIR"
    [ "$ACTION" = rollout ] || PLAYBOOK=playbooks/upgrade.yml
    "$ANSIBLE_PLAYBOOK" -i "$COMMON_INVENTORY" -i "$INVENTORY" "$PLAYBOOK" "$@"
    ;;
  teardown|destroy)
    DSV4_REHEARSAL_IMAGE=${DSV4_REHEARSAL_IMAGE:-$(bash scripts/build-rehearsal-image.sh --print)}
    export DSV4_REHEARSAL_IMAGE
    if all_running; then
      # The rehearsal confirms the teardown on the command line (teardown.yml asks otherwise).
      "$ANSIBLE_PLAYBOOK" -i "$COMMON_INVENTORY" -i "$INVENTORY" playbooks/teardown.yml -e deepseek_v4_teardown_confirm=yes "$@"
    else
      echo "the node containers ${PREFIX}* are not all running: nothing to tear down with Ansible"
    fi
    if [ "$ACTION" = destroy ]; then
      left=$(engine_containers)
      if [ -n "$left" ]; then
        # shellcheck disable=SC2086
        docker rm -f $left >/dev/null && echo "removed engine containers left by a failed run"
      fi
      for spec in $NODES; do
        node=$PREFIX${spec%%:*}
        # `docker rm -f` also succeeds for a container that does not exist.
        if docker inspect "$node" >/dev/null 2>&1 && docker rm -f "$node" >/dev/null; then
          echo "removed node container $node"
        fi
      done
      if docker network rm "$NETWORK" >/dev/null 2>&1; then echo "removed network $NETWORK"; fi
      rm -rf "$DATA_DIR" "$OUT_DIR"
    fi
    ;;
esac
