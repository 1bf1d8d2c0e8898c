#!/usr/bin/env bash
# CPU rehearsal of playbooks/gb200_pd_cluster.yml on the local Docker engine, five hosts
# (tests/rehearsal/gb200_pd_cluster/inventory/). Called by scripts/rehearse.sh with TOPOLOGY=gb200_pd_cluster.
#
#   scripts/rehearse-cluster.sh              build missing images, create the network and the nodes, run the rollout
#   scripts/rehearse-cluster.sh --teardown   run playbooks/teardown.yml against the nodes
#   scripts/rehearse-cluster.sh --destroy    teardown, then remove the nodes, the network, the data dirs and reports
#   scripts/rehearse-cluster.sh --node       only make sure the network and the nodes run (with their doubles)
# Extra arguments after `--` go to ansible-playbook.
#
# Each node is a systemd container from the base image with its own network namespace on the Docker network
# deepseek-v4-gb200-rehearsal (fixed addresses, DSV4_GB200_REHEARSAL_NET.<n>, default 172.31.241.<n>) and the Docker
# socket, so the engines it starts are siblings that join its namespace (container:<node>). Nothing is published
# on this machine's own network. Environment: DSV4_REHEARSAL_IMAGE, ANSIBLE_PLAYBOOK, as scripts/rehearse.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

INVENTORY=tests/rehearsal/gb200_pd_cluster/inventory
PLAYBOOK=playbooks/gb200_pd_cluster.yml
NETWORK=deepseek-v4-gb200-rehearsal
NET=${DSV4_GB200_REHEARSAL_NET:-172.31.241}
export DSV4_GB200_REHEARSAL_NET=$NET
PREFIX=deepseek-v4-gb200-rehearsal-
DATA_DIR=/var/lib/deepseek-v4-gb200-rehearsal
OUT_DIR=rehearsal-out/gb200_pd_cluster
LABEL=inference.deepseek_v4.rehearsal=gb200_pd_cluster-node
# host  address  kind (tray: GB200 doubles; router: a plain host)
NODES="gb200-prefill-1:11:tray gb200-prefill-2:12:tray gb200-decode-1:21:tray gb200-decode-2:22:tray router-1:5:router"

ACTION=rollout
case "${1:-}" in
  --teardown) ACTION=teardown; shift ;;
  --destroy) ACTION=destroy; shift ;;
  --node) ACTION=node; shift ;;
  --help|-h) sed -n '2,15p' "$0"; exit 0 ;;
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

ensure_nodes() {
  local base spec host ip node state
  base=$(bash scripts/build-base-image.sh --print)
  bash scripts/build-base-image.sh >/dev/null
  ensure_network
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

# The trays' "hardware", so that gpu_preflight and rdma run for real against them: the TEST DOUBLES of
# tests/doubles/ (never on a real host) - nvidia-smi and the NVIDIA tools it plays with the recorded healthy 4x GB200
# tray (gb200_4), an IMEX channel stand-in (/dev/nvidia-caps-imex-channels/channel0), the aarch64 CPU architecture
# for the Python that runs the modules (arch_aarch64), and the recorded RDMA sysfs tree with ACTIVE ports ("mixed")
# with its ibv_devinfo. The router host gets none: it has no GPU and the plan checks nothing there.
install_tray_doubles() {
  tar -C tests/doubles -cf - nvidia-smi nvidia_smi_profiles ibv_devinfo rdma_sysfs arch_aarch64 \
    | docker exec -i "$1" sh -euc '
    share=/usr/local/share
    mkdir -p $share/nvidia-smi-double/profiles $share/ibv-devinfo-double/rdma_sysfs /etc/nvidia-smi-double \
      /etc/ibv-devinfo-double $share/arch-aarch64-double
    tmp=$(mktemp -d); tar -x -C "$tmp"
    rm -rf $share/nvidia-smi-double/profiles/* $share/ibv-devinfo-double/rdma_sysfs/*
    cp -a "$tmp"/nvidia_smi_profiles/. $share/nvidia-smi-double/profiles/
    cp -a "$tmp"/rdma_sysfs/. $share/ibv-devinfo-double/rdma_sysfs/
    for tool in nvidia-smi nv-fabricmanager nvidia-ctk nvidia-container-cli nvidia-container-runtime-hook docker; do
      install -m 0755 "$tmp"/nvidia-smi /usr/local/bin/$tool
    done
    install -m 0755 "$tmp"/ibv_devinfo /usr/local/bin/ibv_devinfo
    install -m 0644 "$tmp"/arch_aarch64/sitecustomize.py $share/arch-aarch64-double/sitecustomize.py
    install -m 0755 "$tmp"/arch_aarch64/python3-aarch64-double /usr/local/bin/python3-aarch64-double
    rm -rf "$tmp"
    echo gb200_4 > /etc/nvidia-smi-double/profile
    echo mixed > /etc/ibv-devinfo-double/case
    mkdir -p /dev/nvidia-caps-imex-channels
    [ -e /dev/nvidia-caps-imex-channels/channel0 ] || : > /dev/nvidia-caps-imex-channels/channel0
  '
}

install_doubles() {
  local spec host kind
  for spec in $NODES; do
    IFS=: read -r host _ kind <<<"$spec"
    [ "$kind" = tray ] && install_tray_doubles "$PREFIX$host"
  done
  return 0
}

# Engine containers of this rehearsal (their names carry their node's), for the last-resort cleanup of --destroy.
engine_containers() {
  docker ps -aq --filter "name=^${PREFIX}" --filter "label=inference.deepseek_v4.topology=gb200_pd_cluster"
}

case "$ACTION" in
  node)
    ensure_nodes
    install_doubles
    ;;
  rollout)
    bash scripts/ensure-docker.sh >/dev/null
    if [ -z "${DSV4_REHEARSAL_IMAGE:-}" ]; then
      bash scripts/build-rehearsal-image.sh
      DSV4_REHEARSAL_IMAGE=$(bash scripts/build-rehearsal-image.sh --print)
    fi
    export DSV4_REHEARSAL_IMAGE
    ensure_nodes
    install_doubles
    mkdir -p "$OUT_DIR"
    "$ANSIBLE_PLAYBOOK" -i "$INVENTORY" "$PLAYBOOK" "$@"
    ;;
  teardown|destroy)
    DSV4_REHEARSAL_IMAGE=${DSV4_REHEARSAL_IMAGE:-$(bash scripts/build-rehearsal-image.sh --print)}
    export DSV4_REHEARSAL_IMAGE
    if all_running; then
      "$ANSIBLE_PLAYBOOK" -i "$INVENTORY" playbooks/teardown.yml "$@"
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
