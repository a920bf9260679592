#!/usr/bin/env bash
# shellcheck disable=SC2154  # repo and work are set by lib/release-check.sh
# Build the collection as users get it, check what the tarball holds, install it offline into
# a fresh collections path and use the modules, a role and the docs from that installed copy.
# Nothing on this host changes: the modules read a saved dump and run in check mode, and the
# role stops at its input check.
set -euo pipefail

source "$(dirname "$0")/lib/release-check.sh"

safe=""
echo "== build"
ansible-galaxy collection build --output-path "$work/dist" "$repo" >/dev/null
tarballs=("$work"/dist/hardened-openresty-*.tar.gz)
if [ "${#tarballs[@]}" -ne 1 ] || [ ! -f "${tarballs[0]}" ]; then
  fail "expected one tarball in $work/dist"
fi
tarball=${tarballs[0]}
echo "built $(basename "$tarball")"

echo "== tarball contents"
tar -tzf "$tarball" | sed -e 's#^\./##' -e 's#/$##' | sort >"$work/contents"
# What a user never needs: hidden files (.git, .venv, .cache, .config, ...), test and
# development trees, caches, build outputs, images and tarballs.
forbidden='(^|/)\.[^/]
^(tests|molecule|scripts|images)(/|$)
^changelogs/fragments(/|$)
(^|/)__pycache__(/|$)
\.py[co]$
\.(tar|tar\.gz|tgz|img|qcow2)$
^(Makefile|requirements-(test|gixy)\.txt|BENCHMARKS\.md)$'
if grep -E -f <(printf '%s\n' "$forbidden") "$work/contents" >"$work/forbidden"; then
  echo "paths that must not be in the tarball (add them to build_ignore in galaxy.yml):" >&2
  sed 's/^/  /' "$work/forbidden" >&2
  fail "forbidden paths in $(basename "$tarball")"
fi

# What a user needs: every plugin and role, the docs, the metadata and what
# meta/execution-environment.yml points ansible-builder at.
required=(README.md LICENSE meta/runtime.yml docs/rules.md)
for optional in CHANGELOG.md changelogs/changelog.yaml meta/execution-environment.yml; do
  if [ -f "$repo/$optional" ]; then required+=("$optional"); fi
done
while IFS= read -r path; do
  required+=("$path")
done < <(cd "$repo" && find plugins roles playbooks -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' 2>/dev/null | sort)
if [ -f "$repo/meta/execution-environment.yml" ]; then
  while IFS= read -r path; do
    required+=("$path")
  done < <(python - "$repo/meta/execution-environment.yml" <<'PY'
import sys

import yaml

with open(sys.argv[1]) as handle:
    dependencies = (yaml.safe_load(handle) or {}).get("dependencies") or {}
for key in ("python", "system"):
    if isinstance(dependencies.get(key), str):
        print(dependencies[key])
PY
  )
fi
missing=0
for path in "${required[@]}"; do
  if ! grep -qxF "$path" "$work/contents"; then
    echo "missing from the tarball: $path" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || fail "needed paths missing from $(basename "$tarball")"
grep -qx 'roles/server' "$work/contents" || fail "roles/server missing"
echo "$(wc -l <"$work/contents") entries, none forbidden, ${#required[@]} needed paths present"

echo "== install offline into a fresh collections path"
collections="$work/collections"
# From here on only the fresh path is visible: no repository, roles path, config or copies
# installed in the user's home (which would also make the install a no-op).
export ANSIBLE_COLLECTIONS_PATH="$collections"
export ANSIBLE_HOME="$work/ansible-home"
export ANSIBLE_CONFIG="$work/ansible.cfg"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_DEPRECATION_WARNINGS=0
unset ANSIBLE_ROLES_PATH ANSIBLE_LIBRARY ANSIBLE_MODULE_UTILS ANSIBLE_FILTER_PLUGINS PYTHONPATH
: >"$ANSIBLE_CONFIG"
cd "$work"

ansible-galaxy collection install --offline -p "$collections" "$tarball" >/dev/null
installed="$collections/ansible_collections/hardened/openresty"
[ -f "$installed/MANIFEST.json" ] || fail "no installed collection at $installed"
ansible-galaxy collection list hardened.openresty --format json >"$work/list.json"
python - "$work/list.json" "$collections/ansible_collections" <<'PY'
import json
import sys

with open(sys.argv[1]) as handle:
    found = {path for path, names in json.load(handle).items() if "hardened.openresty" in names}
assert found == {sys.argv[2]}, "hardened.openresty found in %s, expected only %s" % (sorted(found), sys.argv[2])
PY
ansible-galaxy collection verify --offline hardened.openresty >/dev/null ||
  fail "installed files do not match the tarball's checksums"
echo "only the installed copy is visible; its files match MANIFEST.json"

cat >"$work/inventory.ini" <<EOF
localhost ansible_connection=local ansible_python_interpreter=$(command -v python)
EOF

echo "== lua_sandbox_verify and sealed_tree from the installed copy"
# A dump with lua_code_cache off and ';;' in the search path, and the hardened http block
# docs/rules.md shows, which must pass every configuration rule.
cat >"$work/bad-nginx-T.txt" <<'EOF'
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
user www-data;
events {}
http {
    lua_package_path "./?.lua;;";
    lua_code_cache off;
    server {
        listen 80;
        location / {
            content_by_lua_block { ngx.say("hello") }
        }
    }
}
EOF
cat >"$work/good-nginx-T.txt" <<'EOF'
# configuration file /etc/nginx/nginx.conf:
user www-data;
events {}
http {
    lua_package_path "/srv/lua/app/current/?.lua;/srv/lua/lib/?.lua;/usr/share/lua/5.1/?.lua";
    lua_package_cpath "/srv/lua/lib/?.so";
    lua_code_cache on;
    lua_socket_connect_timeout 2s;
    lua_socket_send_timeout 5s;
    lua_socket_read_timeout 5s;
    lua_socket_keepalive_timeout 60s;
    lua_regex_match_limit 100000;
    lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
    lua_ssl_verify_depth 3;
    lua_ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 80;
        location / {
            content_by_lua_block { ngx.say("hello") }
        }
    }
}
EOF

# sealed_tree refuses a tree under a directory others can write (as /tmp is), so the tree it
# may seal lives under /run when we can write there (as root).
mkdir -p "$work/shared/tree/lib"
chmod 0777 "$work/shared"
echo 'return {}' >"$work/shared/tree/lib/app.lua"
if [ -w /run ] && [ "$(stat -c %u:%a /run)" = "0:755" ]; then
  safe=$(mktemp -d /run/hardened-openresty-test.XXXXXX)
  cleanup_also "$safe"
  chmod 0755 "$safe"
  mkdir -p "$safe/tree/lib"
  echo 'return {}' >"$safe/tree/lib/app.lua"
  chmod 0777 "$safe/tree/lib"
  chmod 0666 "$safe/tree/lib/app.lua"
else
  echo "note: /run is not writable, so only the refusal of sealed_tree is tested"
fi

cat >"$work/modules.yml" <<'YAML'
---
- name: Use the modules of the installed collection
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Audit a bad dump without failing
      hardened.openresty.lua_sandbox_verify:
        dump: "{{ work }}/bad-nginx-T.txt"
        check_filesystem: false
        check_processes: false
        fail_on: none
      register: bad_audit

    - name: The bad dump has findings, among them lua_code_cache off at its line
      ansible.builtin.assert:
        that:
          - not bad_audit.passed
          - bad_audit.summary.high > 0
          - >-
            bad_audit.findings | selectattr('rule', 'eq', 'lua-code-cache-off')
            | selectattr('file', 'eq', '/etc/nginx/nginx.conf') | selectattr('line', 'eq', 5) | list | length == 1
          - bad_audit.findings | selectattr('rule', 'eq', 'lua-package-path-default-fallback') | list | length == 1
        fail_msg: "unexpected report: {{ bad_audit.findings | to_json }}"

    - name: Audit the same dump with the default fail_on
      hardened.openresty.lua_sandbox_verify:
        dump: "{{ work }}/bad-nginx-T.txt"
        check_filesystem: false
        check_processes: false
      register: bad_strict
      ignore_errors: true

    - name: High findings fail the task
      ansible.builtin.assert:
        that:
          - bad_strict is failed
          - "'lua-code-cache-off' in bad_strict.msg"

    - name: Audit the hardened dump
      hardened.openresty.lua_sandbox_verify:
        dump: "{{ work }}/good-nginx-T.txt"
        check_filesystem: false
        check_processes: false
        fail_on: low
      register: good_audit

    - name: The hardened dump passes every configuration rule
      ansible.builtin.assert:
        that:
          - good_audit.passed
          - good_audit.findings == []

    - name: Seal a tree under a directory others can write, in check mode
      hardened.openresty.sealed_tree:
        path: "{{ work }}/shared/tree"
      check_mode: true
      register: unsafe_seal
      ignore_errors: true

    - name: The tree is refused because of its writable ancestor
      ansible.builtin.assert:
        that:
          - unsafe_seal is failed
          - (work ~ '/shared') in unsafe_seal.msg
        fail_msg: "{{ unsafe_seal | to_json }}"

    - name: Seal a drifted tree in check mode
      hardened.openresty.sealed_tree:
        path: "{{ safe }}/tree"
      check_mode: true
      register: safe_seal
      when: safe | length > 0

    - name: Read the drifted file after the check-mode run
      ansible.builtin.stat:
        path: "{{ safe }}/tree/lib/app.lua"
      register: drifted_file
      when: safe | length > 0

    - name: Check mode reports the drift and changes nothing
      ansible.builtin.assert:
        that:
          - safe_seal is changed
          - (safe_seal.fixed | map(attribute='path') | list) is superset([safe ~ '/tree', safe ~ '/tree/lib', safe ~ '/tree/lib/app.lua'])
          - drifted_file.stat.mode == '0666'
        fail_msg: "{{ safe_seal | to_json }}"
      when: safe | length > 0
YAML
problems=0
problem() {
  echo "FAIL: $*" >&2
  problems=$((problems + 1))
}

if ansible-playbook -i "$work/inventory.ini" -e "work=$work" -e "safe=$safe" "$work/modules.yml" >"$work/modules.log" 2>&1; then
  grep -E '^localhost' "$work/modules.log"
else
  cat "$work/modules.log" >&2
  problem "the modules playbook failed"
fi

echo "== ansible-doc from the installed copy"
# nginx_reload needs a running nginx; its documentation is what can be checked here.
if ! ansible-doc hardened.openresty.nginx_reload >"$work/nginx_reload.txt" 2>&1; then
  cat "$work/nginx_reload.txt" >&2
  problem "ansible-doc hardened.openresty.nginx_reload failed"
elif ! grep -qF "$installed/plugins/modules/nginx_reload.py" "$work/nginx_reload.txt"; then
  problem "ansible-doc did not render nginx_reload from the installed copy"
elif ! grep -q 'timeout' "$work/nginx_reload.txt"; then
  problem "nginx_reload's options are not rendered"
else
  echo "ansible-doc hardened.openresty.nginx_reload (text): ok"
fi
for module in "$installed"/plugins/modules/*.py; do
  name=$(basename "$module" .py)
  if ! ansible-doc -t module --json "hardened.openresty.$name" >"$work/doc.json" 2>"$work/doc.err"; then
    cat "$work/doc.err" >&2
    problem "ansible-doc hardened.openresty.$name failed"
  elif ! python - "$work/doc.json" "hardened.openresty.$name" <<'PY'
import json
import sys

doc = json.load(open(sys.argv[1]))[sys.argv[2]]["doc"]
assert doc["options"] and doc["short_description"], doc
PY
  then
    problem "ansible-doc hardened.openresty.$name rendered no options"
  else
    echo "ansible-doc hardened.openresty.$name: ok"
  fi
done
for role in "$installed"/roles/*/; do
  name=$(basename "$role")
  if ! ansible-doc -t role --json "hardened.openresty.$name" >"$work/role.json" 2>"$work/doc.err"; then
    cat "$work/doc.err" >&2
    problem "ansible-doc -t role hardened.openresty.$name failed"
  elif ! python - "$work/role.json" "hardened.openresty.$name" <<'PY'
import json
import sys

entry_points = json.load(open(sys.argv[1]))[sys.argv[2]]["entry_points"]
assert entry_points.get("main", {}).get("options"), entry_points
PY
  then
    problem "ansible-doc -t role hardened.openresty.$name has no entry points"
  else
    echo "ansible-doc -t role hardened.openresty.$name: ok"
  fi
done

echo "== the playbooks of the installed copy, by collection name"
# What a user's site playbook or molecule verify.yml imports: each must resolve to the
# installed file and pass the syntax check.
for playbook in "$installed"/playbooks/*.yml; do
  name=$(basename "$playbook" .yml)
  if ! ansible-playbook -i "$work/inventory.ini" --syntax-check "hardened.openresty.$name" >"$work/syntax.log" 2>&1; then
    cat "$work/syntax.log" >&2
    problem "ansible-playbook --syntax-check hardened.openresty.$name failed"
  elif ! grep -qxF "playbook: $playbook" "$work/syntax.log"; then
    cat "$work/syntax.log" >&2
    problem "hardened.openresty.$name did not resolve to $playbook"
  else
    echo "ansible-playbook --syntax-check hardened.openresty.$name: ok"
  fi
done

echo "== the server role from the installed copy stops at its input check"
cat >"$work/role.yml" <<'YAML'
---
- name: Include the installed server role with a relative module root
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the server role
      ansible.builtin.include_role:
        name: hardened.openresty.server
      vars:
        server_lua_module_roots: [relative]
YAML
if ansible-playbook -i "$work/inventory.ini" "$work/role.yml" >"$work/role.log" 2>&1; then
  cat "$work/role.log" >&2
  problem "the server role accepted server_lua_module_roots: [relative]"
elif ! grep -q 'TASK \[hardened.openresty.server : Refuse bad input before anything on the host changes\]' "$work/role.log"; then
  cat "$work/role.log" >&2
  problem "the role did not stop at its input check"
elif ! grep -qF "Origin: $installed/roles/server/tasks/main.yml" "$work/role.log"; then
  cat "$work/role.log" >&2
  problem "the role that ran is not the installed copy"
elif ! grep -qF "server_lua_module_roots[0]: 'relative' is not an absolute path" "$work/role.log"; then
  cat "$work/role.log" >&2
  problem "the failure does not name server_lua_module_roots"
elif grep -E '^TASK ' "$work/role.log" | grep -v -e 'Run the server role' -e 'Refuse bad input' -e 'Validating arguments' >&2; then
  problem "tasks ran after the failed input check"
else
  grep -E '^localhost' "$work/role.log"
  echo "the installed role failed at its input check, naming server_lua_module_roots[0]"
fi

[ "$problems" -eq 0 ] || fail "$problems check(s) of the installed collection failed (above)"
echo "PASS: $(basename "$tarball") builds clean, installs offline, and its modules, role and docs work"
