"""Checks on a host after the lua_app scenario's side effects: v2 (release 2.0.0) is live.

Traffic stays on loopback inside the host: every request is a curl run on the host itself.
"""

import json
import re

import pytest

ROOT = "/opt/hardened-openresty/app"
STATUS = "http://127.0.0.1:8399/hardened-openresty/release"
# The server role's local fact: it records the shared dict names its Lua helpers use.
FACT = "/etc/ansible/facts.d/hardened_openresty.fact"


def get(host, url):
    return host.check_output("curl -s --max-time 10 %s", url)


@pytest.fixture(scope="module")
def status(host):
    return json.loads(get(host, STATUS))


def worker_pids(host):
    out = host.check_output("ps -o pid=,args= --ppid $(cat /run/nginx.pid)")
    return sorted(int(line.split()[0]) for line in out.splitlines() if line.split(None, 1)[1] == "nginx: worker process")


def test_every_worker_runs_release_2(host, status):
    assert status["worker_count"] == len(status["workers"]) > 0
    assert {w["release"] for w in status["workers"]} == {"2.0.0"}
    assert all(w["alive"] and w["error"] is None for w in status["workers"])
    assert sorted(w["pid"] for w in status["workers"]) == worker_pids(host)


def test_the_application_answers_with_release_2(host):
    assert get(host, "http://127.0.0.1:8080/").startswith("app v2 (release 2.0.0, worker ")
    assert get(host, "http://127.0.0.1:8080/health").strip() == "ok"


def test_current_and_previous_are_links_into_releases(host):
    current = host.file(ROOT + "/current")
    assert current.is_symlink and current.linked_to == ROOT + "/releases/2.0.0"
    previous = host.file(ROOT + "/previous")
    assert previous.is_symlink and previous.linked_to.startswith(ROOT + "/releases/")


def test_releases_are_sealed(host):
    entries = host.check_output("find %s/releases -mindepth 1 -printf '%%u:%%g %%m %%y %%P\\n'", ROOT).splitlines()
    assert entries
    bad = [e for e in entries if not (e.startswith("root:root 555 d ") or e.startswith("root:root 444 f "))]
    assert bad == []


def test_refused_release_left_nothing_and_rolled_back_one_is_kept(host):
    names = host.check_output("ls -A %s/releases", ROOT).split()
    # The server role's empty initial release, v1, 2.0.0 and v4 (built, rolled back, kept
    # for inspection); v3 never got a directory.
    assert len(names) == 4 and "2.0.0" in names and "initial" in names
    assert not [n for n in names if n.startswith(".")]
    assert host.check_output("ls -A /var/lib/hardened-openresty/lua-app-staging") == ""


def test_the_release_is_loaded_through_current(host):
    effective = host.check_output("nginx -T 2>/dev/null")
    assert ROOT + "/current/?.lua" in effective
    release_dict = json.loads(host.file(FACT).content_string)["lua_names"]["release_dict"]
    assert "lua_shared_dict %s 1m;" % release_dict in effective
    # The one init_worker_by_lua* nginx accepts is the server role's.
    assert len(re.findall(r"^\s*init_worker_by_lua", effective, re.M)) == 1


def test_status_server_listens_on_loopback_only(host):
    listening = host.check_output("ss -Hltn")
    addresses = [line.split()[3] for line in listening.splitlines()]
    assert "127.0.0.1:8399" in addresses
    assert not [a for a in addresses if a.endswith(":8399") and a != "127.0.0.1:8399"]


def test_staging_directory_is_root_only(host):
    staging = host.file("/var/lib/hardened-openresty/lua-app-staging")
    assert (staging.user, staging.group, staging.mode) == ("root", "root", 0o700)
