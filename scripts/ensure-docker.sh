#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`. On machines without systemd (test machines,
# containers) it starts dockerd in the background and waits for it. Idempotent.
#   DOCKERD_LOG   where dockerd writes its log (default /var/log/dockerd.log)
#   DOCKER_WAIT   seconds to wait for the engine (default 60)
set -euo pipefail

WAIT=${DOCKER_WAIT:-60}
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

if docker info >/dev/null 2>&1; then
  echo "docker engine running"
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || { echo "dockerd not installed (run: make setup)" >&2; exit 1; }

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl start docker || true
fi

if ! docker info >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "starting dockerd needs root" >&2; exit 1; }
  echo "starting dockerd in the background (log: $LOG)"
  mkdir -p "$(dirname "$LOG")"
  # A stale pid file from a dead engine stops a new one from starting.
  rm -f /var/run/docker.pid
  nohup dockerd >>"$LOG" 2>&1 </dev/null &
  disown || true
fi

for _ in $(seq "$WAIT"); do
  if docker info >/dev/null 2>&1; then
    echo "docker engine running"
    exit 0
  fi
  sleep 1
done
echo "docker engine did not answer within ${WAIT}s; last log lines:" >&2
tail -n 20 "$LOG" >&2 2>/dev/null || true
exit 1
