#!/usr/bin/env bash
# The local demo fleet: three systemd Debian hosts as containers. `up` converges them with
# site.yml, rolls the sample Lua application (examples/lua_app) out with deploy.yml, shows the
# release every worker of every host runs, and audits the fleet with audit.yml.
#   scripts/demo.sh up | down
# Requests go to 127.0.0.1 inside each host (docker exec), never to container addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${HARDENED_DEMO_PREFIX:-hardened-demo}
hosts=("$prefix-1:${HARDENED_IMAGE_DEBIAN12:-hardened-openresty/debian12:latest}"
       "$prefix-2:${HARDENED_IMAGE_DEBIAN13:-hardened-openresty/debian13:latest}"
       "$prefix-3:${HARDENED_IMAGE_DEBIAN12:-hardened-openresty/debian12:latest}")
state=.cache/demo
read -r -a systemd_command <<<"${HARDENED_SYSTEMD_COMMAND:-/lib/systemd/systemd}"

up() {
  mkdir -p "$state"
  {
    echo "[openresty]"
    for entry in "${hosts[@]}"; do echo "${entry%%:*}"; done
    echo
    echo "[openresty:vars]"
    echo "ansible_connection=community.docker.docker"
    echo "ansible_python_interpreter=/usr/bin/python3"
    echo "server_apt_cache_valid_time=31536000"
  } >"$state/inventory.ini"
  for entry in "${hosts[@]}"; do
    name=${entry%%:*} image=${entry#*:}
    if ! docker container inspect "$name" >/dev/null 2>&1; then
      docker run -d --name "$name" --hostname "$name" \
        --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
        "$image" "${systemd_command[@]}" >/dev/null
    fi
  done
  for entry in "${hosts[@]}"; do
    name=${entry%%:*}
    for _ in $(seq 1 30); do
      docker exec "$name" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
      sleep 1
    done
  done
  ansible-playbook -i "$state/inventory.ini" playbooks/site.yml
  echo
  echo "Rolling the sample application out, one host at a time:"
  ansible-playbook -i "$state/inventory.ini" playbooks/deploy.yml \
    -e lua_app_src="$PWD/examples/lua_app" -e deploy_serial=1
  echo
  echo "The release every worker runs (status server on each host's loopback):"
  for entry in "${hosts[@]}"; do
    name=${entry%%:*}
    docker exec "$name" curl -s --max-time 5 http://127.0.0.1:8399/hardened-openresty/release |
      python3 -c 'import json, sys
status = json.load(sys.stdin)
releases = sorted({w["release"] or "-" for w in status["workers"]})
alive = sum(1 for w in status["workers"] if w["alive"])
print("  %-16s release %s on %d of %d workers" % (sys.argv[1], ",".join(releases), alive, status["worker_count"]))' "$name"
  done
  echo
  echo "Each host answers on its own loopback:"
  for entry in "${hosts[@]}"; do
    name=${entry%%:*}
    printf '  %-16s %s\n' "$name" "$(docker exec "$name" curl -s --max-time 5 'http://127.0.0.1:8080/?name=Ada')"
  done
  echo
  echo "The Lua hardening each host runs:"
  docker exec "${hosts[0]%%:*}" sh -c "nginx -T 2>/dev/null | grep -E '^\s*lua_' | sed 's/^ */  /'"
  echo
  echo "Auditing the fleet (fails on high findings; Debian 12 hosts show low version drift):"
  ansible-playbook -i "$state/inventory.ini" playbooks/audit.yml -e audit_report_dir="$PWD/$state/audit-reports"
  echo
  echo "Audit reports:"
  for report in audit.json audit.sarif audit.junit.xml; do echo "  $PWD/$state/audit-reports/$report"; done
  echo
  echo "Remove the fleet with: make demo-clean"
}

down() {
  for entry in "${hosts[@]}"; do
    docker rm -f "${entry%%:*}" >/dev/null 2>&1 || true
  done
  rm -rf "$state"
  echo "demo fleet removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
