#!/usr/bin/env bash
# Builds the local systemd base image used by molecule scenarios and the rehearsal.
# No container registry is needed: the root filesystem comes from debootstrap, using the Debian
# mirror this machine's apt is already configured with. The image tag is keyed by the package list,
# so a change to it rebuilds, and an existing image is reused.
set -euo pipefail

SUITE=${BASE_IMAGE_SUITE:-bookworm}
# python3-venv: the router, smoke-test and hf_cache roles make virtualenvs; nftables: the cluster_firewall role's nft
# (the multi-host rehearsals apply it on every node). Baked in, their apt step is a no-op.
PACKAGES="python3,python3-apt,python3-requests,python3-venv,sudo,procps,iproute2,systemd,systemd-sysv,dbus,ca-certificates,nftables"
KEY=$(printf '%s %s v1' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
IMAGE=${BASE_IMAGE:-localhost/deepseek-v4-systemd:${SUITE}-${KEY}}

if [ "${1:-}" = "--print" ]; then
  echo "$IMAGE"
  exit 0
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE present"
  exit 0
fi

mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "$uri"
}

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
MIRROR=$(mirror)
[ -n "$MIRROR" ] || { echo "no Debian mirror found in the apt configuration" >&2; exit 1; }

ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
echo "building $IMAGE (debootstrap $SUITE)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/*
# Keep the image's apt pointed at the same mirror for roles that install packages.
echo "deb $MIRROR $SUITE main" > "$ROOTFS/etc/apt/sources.list"
tar -C "$ROOTFS" -c . | docker import -c 'ENV container=docker' -c 'CMD ["/lib/systemd/systemd"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
