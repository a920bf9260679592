#!/usr/bin/env bash
# Make sure a Docker engine answers. Uses a running one; as root on an apt system with
# none running, installs docker.io and starts dockerd in the background. Otherwise it
# stops and says what to install.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/hardened-openresty-dockerd.log}

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if engine_answers; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<'EOT'
No Docker engine answers, and this script can only install one as root on a
Debian/Ubuntu machine. Install and start Docker (for example the docker.io package),
make sure `docker info` works for this user, then run the command again.
EOT
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "Installing docker.io (Debian package)..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker || true
fi

if ! engine_answers; then
  echo "Starting dockerd in the background (log: $log)..." >&2
  nohup dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 60); do
  if engine_answers; then
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60s; see $log" >&2
exit 1
