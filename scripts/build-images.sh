#!/usr/bin/env bash
# Build the local Debian systemd base images used by molecule and the demo.
# No container registry is needed: debootstrap from Debian's mirror, then `docker import`.
# An image that already exists is kept; FORCE=1 rebuilds.
#
# Usage: scripts/build-images.sh [debian12] [debian13]
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
prefix=${HARDENED_IMAGE_PREFIX:-hardened-openresty}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(debian12 debian13)

# Packages in every image: what systemd, Ansible and the tests need.
base_pkgs=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,procps,iproute2,iptables,curl,sudo,gnupg
# Downloaded (not installed) so that the role's real apt install runs quickly and offline
# from the image's cache: the install path itself is still exercised on every converge.
# The LuaJIT that nginx links: Debian 12 packages OpenResty's branch as luajit2, Debian 13 as luajit.
cache_pkgs="nginx libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache lua-check"

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing command: $1" >&2; return 1; }; }

ensure_tools() {
  if need debootstrap 2>/dev/null; then return 0; fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "debootstrap is needed to build the images (apt-get install debootstrap)" >&2
    exit 1
  fi
}

build_one() {
  local name=$1 suite luajit
  case "$name" in
    debian12) suite=bookworm luajit=luajit2 ;;
    debian13) suite=trixie luajit=luajit ;;
    *) echo "unknown image '$name' (known: debian12 debian13)" >&2; exit 2 ;;
  esac
  local tag="$prefix/$name:latest"
  if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "image $tag present"
    return 0
  fi
  local root
  root=$(mktemp -d "/var/tmp/$prefix-$name.XXXXXX")
  chmod 0755 "$root"
  trap 'rm -rf "$root"' RETURN
  echo "building $tag from $suite (debootstrap; a few minutes)..."
  debootstrap --variant=minbase --include="$base_pkgs" "$suite" "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  cat >"$root/etc/apt/sources.list" <<EOT
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main
EOT
  chroot "$root" apt-get update -qq 2>&1 | grep -v unsandboxed || true
  # shellcheck disable=SC2086
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only $cache_pkgs $luajit >/dev/null
  # Keep downloaded packages: Debian's docker-clean hook would delete them.
  rm -f "$root/etc/apt/apt.conf.d/docker-clean"
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$root/etc/apt/apt.conf.d/10keep-cache"
  # systemd in a container: no getty, no udev triggers, a machine-id made at boot.
  : >"$root/etc/machine-id"
  rm -f "$root/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
  ln -sf /dev/null "$root/etc/systemd/system/systemd-udevd.service"
  ln -sf /dev/null "$root/etc/systemd/system/systemd-udev-trigger.service"
  ln -sf /dev/null "$root/etc/systemd/system/systemd-timesyncd.service"
  echo "$name" >"$root/etc/hostname"
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    - "$tag" >/dev/null
  echo "built $tag"
}

need docker
ensure_tools
# The builds mostly wait on the mirror: run them side by side.
pids=()
for t in "${targets[@]}"; do
  build_one "$t" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit "$status"
