#!/usr/bin/env bash
# Installs the hardware TEST DOUBLES of tests/doubles/ into a rehearsal node container (never on a real host), so
# that the playbooks' gpu_preflight and rdma roles run for real against it. Used by scripts/rehearse.sh and
# scripts/rehearse-cluster.sh; the molecule scenarios use the same layout.
#
#   scripts/install-hardware-doubles.sh NODE KIND
#
# KIND (one row each below):
#   h200   nvidia-smi and the NVIDIA tools it plays with the recorded healthy 8x H200 profile (h200_hgx8), NVSwitch
#          device stand-ins and an active nvidia-fabricmanager stand-in unit
#   gb200  the recorded healthy 4x GB200 tray (gb200_4), an IMEX channel stand-in
#          (/dev/nvidia-caps-imex-channels/channel0) and the aarch64 CPU architecture of a Grace CPU for the Python
#          that runs the modules (tests/doubles/arch_aarch64/, /usr/local/bin/python3-aarch64-double)
#   plain  nothing: a host without GPUs (a router host)
# Every GPU kind also gets the recorded RDMA sysfs tree with ACTIVE InfiniBand/RoCE ports (case "mixed", read through
# rdma_sysfs_root; with the HGX H200 PCI tree under it, so that the rdma role derives each rank's NIC from it and
# nvidia-smi topo -m) and its ibv_devinfo. The `docker` the nvidia-smi double plays answers only `docker info` (the
# NVIDIA runtime); the engine containers are managed through the Docker socket, not a CLI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE=${1:?usage: install-hardware-doubles.sh NODE KIND}
KIND=${2:?usage: install-hardware-doubles.sh NODE KIND}

# kind -> nvidia-smi profile, fabric manager (yes/no), IMEX channel (yes/no), aarch64 (yes/no)
case "$KIND" in
  h200) PROFILE=h200_hgx8 FABRIC=yes IMEX=no AARCH64=no ;;
  gb200) PROFILE=gb200_4 FABRIC=no IMEX=yes AARCH64=yes ;;
  plain) exit 0 ;;
  *) echo "unknown hardware double kind '$KIND' (h200, gb200, plain)" >&2; exit 2 ;;
esac

# The sysfs trees are made here: their PCI device directories (0000:18:00.0) and the NICs' `device` links, which
# nvidia-smi topo -m's layouts need (tests/doubles/make_rdma_topology.py), hold colons no file of the collection may.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
python3 "$ROOT/tests/doubles/make_rdma_topology.py" --sysfs "$STAGE/rdma_sysfs"
tar -cf - -C "$ROOT/tests/doubles" nvidia-smi nvidia_smi_profiles ibv_devinfo arch_aarch64 -C "$STAGE" rdma_sysfs \
  | docker exec -i -e PROFILE="$PROFILE" -e FABRIC="$FABRIC" -e IMEX="$IMEX" -e AARCH64="$AARCH64" "$NODE" sh -euc '
    share=/usr/local/share
    mkdir -p $share/nvidia-smi-double/profiles $share/ibv-devinfo-double/rdma_sysfs /etc/nvidia-smi-double \
      /etc/ibv-devinfo-double
    tmp=$(mktemp -d); tar -x -C "$tmp"
    rm -rf $share/nvidia-smi-double/profiles/* $share/ibv-devinfo-double/rdma_sysfs/*
    cp -a "$tmp"/nvidia_smi_profiles/. $share/nvidia-smi-double/profiles/
    cp -a "$tmp"/rdma_sysfs/. $share/ibv-devinfo-double/rdma_sysfs/
    for tool in nvidia-smi nv-fabricmanager nvidia-ctk nvidia-container-cli nvidia-container-runtime-hook docker; do
      install -m 0755 "$tmp"/nvidia-smi /usr/local/bin/$tool
    done
    install -m 0755 "$tmp"/ibv_devinfo /usr/local/bin/ibv_devinfo
    if [ "$AARCH64" = yes ]; then
      mkdir -p $share/arch-aarch64-double
      install -m 0644 "$tmp"/arch_aarch64/sitecustomize.py $share/arch-aarch64-double/sitecustomize.py
      install -m 0755 "$tmp"/arch_aarch64/python3-aarch64-double /usr/local/bin/python3-aarch64-double
    fi
    rm -rf "$tmp"
    echo "$PROFILE" > /etc/nvidia-smi-double/profile
    echo mixed > /etc/ibv-devinfo-double/case
    if [ "$IMEX" = yes ]; then
      mkdir -p /dev/nvidia-caps-imex-channels
      [ -e /dev/nvidia-caps-imex-channels/channel0 ] || : > /dev/nvidia-caps-imex-channels/channel0
    fi
    if [ "$FABRIC" = yes ]; then
      for dev in nvidia-nvswitchctl nvidia-nvswitch0 nvidia-nvswitch1 nvidia-nvswitch2 nvidia-nvswitch3; do
        [ -e /dev/$dev ] || : > /dev/$dev
      done
      unit=/etc/systemd/system/nvidia-fabricmanager.service
      if [ ! -f $unit ]; then
        printf "%s\n" "# TEST DOUBLE of nvidia-fabricmanager.service (rehearsal node): an active unit of that name." \
          "[Unit]" "Description=NVIDIA fabric manager service (test double)" "" \
          "[Service]" "ExecStart=/bin/sleep infinity" "" "[Install]" "WantedBy=multi-user.target" > $unit
        systemctl daemon-reload
      fi
      systemctl enable --now --quiet nvidia-fabricmanager.service
    fi
  '
