"""playbooks/verify.yml, the checks users import into their own molecule verify.yml.

Its syntax through the collection name; what the README's "Our checks in your molecule CI"
section shows and documents; and its behaviour: the real playbook, imported by name as a user
does, runs on localhost against stand-ins of the two modules it calls (which validate their
options against the real modules' documentation, so a misspelt option fails here too), a
local fact file and a loopback HTTP server that plays the status server, the metrics endpoint
and the default site.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import jinja2
import pytest
import yaml
from jinja2 import nodes

from ansible_collections.hardened.openresty.plugins.modules import lua_sandbox_verify, nginx_reload

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "playbooks", "verify.yml")
SECTION = "Our checks in your molecule CI"
# Bare Jinja expressions in these keys (the others are templated only inside {{ }}).
CONDITIONALS = ("when", "that", "failed_when", "changed_when", "until")
# What Ansible or Jinja provides, not a variable of the user.
PROVIDED = {"ansible_facts", "range"}
# The collection's own code the playbook runs as it is (the modules it calls are stand-ins).
REAL_PLUGINS = ("plugins/filter/release_proof.py", "plugins/filter/release_proof.yml",
                "plugins/module_utils/release_proof.py")


def _collections_path():
    """The directory above ansible_collections/hardened/openresty for this tree."""
    candidates = [os.path.dirname(os.path.dirname(os.path.dirname(REPO)))] + sys.path
    for candidate in candidates:
        collection = os.path.join(candidate or ".", "ansible_collections", "hardened", "openresty")
        if os.path.isdir(collection) and os.path.realpath(collection) == os.path.realpath(REPO):
            return os.path.abspath(candidate)
    pytest.fail("run the tests from a tree laid out as .../ansible_collections/hardened/openresty")


def _ansible_env(collections):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0", no_proxy="*", NO_PROXY="*")
    for name in ("ANSIBLE_ROLES_PATH", "ANSIBLE_CONFIG", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env.pop(name, None)
    return env


def _readme_section():
    with open(os.path.join(REPO, "README.md")) as handle:
        text = handle.read()
    match = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(SECTION), text, re.M | re.S)
    assert match, "README.md has no section '## %s'" % SECTION
    return match.group(1)


def _yaml_blocks(text):
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)]


def _header_comment():
    with open(PLAYBOOK) as handle:
        lines = handle.read().splitlines()
    return "\n".join(line for line in lines[1:] if line.startswith("#"))


# Variables the playbook reads ---------------------------------------------------------------

def _template_names(text):
    """(read, assigned) names of one template."""
    tree = jinja2.Environment().parse(text)
    names = list(tree.find_all(nodes.Name))
    return ({n.name for n in names if n.ctx == "load"}, {n.name for n in names if n.ctx != "load"})


def _walk(node, key=None):
    """Every template (with its key) in a YAML tree."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _walk(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child, key)
    elif isinstance(node, str):
        if key in CONDITIONALS:
            yield "{{ %s }}" % node
        elif "{{" in node or "{%" in node:
            yield node


def _defined(plays):
    """Variables the playbook defines itself: play and task vars, registered results."""
    defined = set()
    for play in plays:
        defined.update(play.get("vars") or {})
        for task in play.get("tasks") or []:
            defined.update(task.get("vars") or {})
            if "register" in task:
                defined.add(task["register"])
    return defined


def variables_read(plays):
    read = set()
    for template in _walk(plays):
        loaded, assigned = _template_names(template)
        read |= loaded - assigned
    return read - _defined(plays) - PROVIDED


@pytest.fixture(scope="module")
def plays():
    with open(PLAYBOOK) as handle:
        return yaml.safe_load(handle)


def test_variables_read_are_found_in_a_sample():
    sample = [{"hosts": "{{ wanted | default('all') }}", "vars": {"mine": "{{ other }}"},
               "tasks": [{"debug": {"msg": "{% for x in items %}{{ x ~ mine }}{% endfor %}"}, "register": "out",
                          "when": "flag and out is defined"}]}]
    assert variables_read(sample) == {"wanted", "other", "items", "flag"}


def test_every_variable_the_playbook_reads_is_documented(plays):
    read = variables_read(plays)
    # The user's variables and the role variables it shares: proof that the walk sees them.
    assert {"hardened_verify_hosts", "hardened_verify_fail_on", "hardened_verify_url", "hardened_verify_status",
            "lua_app_status_port", "server_metrics_port"} <= read
    assert not [name for name in read if name.startswith("__")], read
    section = _readme_section()
    undocumented = sorted(name for name in read if "`%s`" % name not in section)
    assert undocumented == [], "read by playbooks/verify.yml but not in the README section: %s" % undocumented
    header = _header_comment()
    missing = sorted(name for name in read if not re.search(r"\b%s\b" % re.escape(name), header))
    assert missing == [], "read by playbooks/verify.yml but not in its header comment: %s" % missing


def test_readme_example_verify_imports_playbooks_of_the_collection():
    imports = [play["ansible.builtin.import_playbook"] for block in _yaml_blocks(_readme_section())
               if isinstance(block, list) for play in block if "ansible.builtin.import_playbook" in play]
    assert "hardened.openresty.verify" in imports
    for name in imports:
        namespace, collection, playbook = name.split(".")
        assert (namespace, collection) == ("hardened", "openresty"), name
        assert os.path.isfile(os.path.join(REPO, "playbooks", playbook + ".yml")), name


def test_readme_example_molecule_yml_uses_the_systemd_settings_of_our_scenarios():
    with open(os.path.join(REPO, ".config", "molecule", "config.yml")) as handle:
        ours = yaml.safe_load(handle)["platforms"][0]
    examples = [block for block in _yaml_blocks(_readme_section()) if isinstance(block, dict) and "platforms" in block]
    assert len(examples) == 1
    example = examples[0]
    assert example["driver"]["name"] == "docker" and example["verifier"]["name"] == "ansible"
    platform = example["platforms"][0]
    for key in ("cgroupns_mode", "capabilities", "security_opts", "tmpfs", "volumes", "pre_build_image"):
        assert platform[key] == ours[key], key
    # Ours is ${HARDENED_SYSTEMD_COMMAND:-/lib/systemd/systemd}: the README shows the default.
    assert platform["command"] == re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", ours["command"]) == "/lib/systemd/systemd"
    assert not platform["image"].startswith("hardened-openresty/")


def test_fleet_scenario_imports_the_playbook_first():
    with open(os.path.join(REPO, "molecule", "fleet", "verify.yml")) as handle:
        fleet = yaml.safe_load(handle)
    assert fleet[0]["ansible.builtin.import_playbook"] == "hardened.openresty.verify"
    assert len(fleet) > 1


def test_syntax_check_through_the_collection_name(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,", "--syntax-check",
                             "hardened.openresty.verify"], capture_output=True, text=True, cwd=str(tmp_path),
                            env=_ansible_env(_collections_path()), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbooks/verify.yml" in result.stdout


# Behaviour --------------------------------------------------------------------------------
# One run of the real playbook on a local "fleet": every scenario below is a host (local
# connection) with its own fact, release root, loopback site and module answers, so that one
# ansible-playbook run covers them all.

STUB = '''#!/usr/bin/python
import json

from ansible.module_utils.basic import AnsibleModule

SPEC = %(spec)r
# The answer for each host, keyed by an option that differs between the hosts.
RESULTS = %(results)r
KEY = %(key)r
LOG = %(log)r
NAME = %(name)r
ORDER = ["low", "medium", "high"]


def main():
    module = AnsibleModule(argument_spec=SPEC, supports_check_mode=True)
    value = module.params[KEY]
    key = value[0] if isinstance(value, list) else value
    with open(LOG, "a") as handle:
        handle.write(json.dumps({"module": NAME, "key": key, "params": module.params,
                                 "check_mode": module.check_mode}) + "\\n")
    result = dict(RESULTS[key])
    if NAME == "nginx_reload":
        if not module.check_mode:
            module.fail_json(msg="the verify playbook reloaded nginx")
        module.exit_json(changed=True, **result)
    # As lua_sandbox_verify decides on its findings.
    fail_on = module.params["fail_on"]
    threshold = ORDER.index("low" if fail_on == "none" else fail_on)
    blocking = [f for f in result["findings"] if ORDER.index(f["severity"]) >= threshold]
    result["passed"] = not blocking
    if blocking and fail_on != "none":
        module.fail_json(msg="%%d finding(s) at or above %%s: %%s" %% (len(blocking), fail_on, blocking[0]["rule"]),
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
'''

FACT = {
    "flavor": "debian", "binary": "/usr/sbin/nginx", "service": "nginx", "conf_dir": "/etc/nginx",
    "main_config": "nginx.conf", "http_include_dir": "/etc/nginx/conf.d", "pid_file": "/run/nginx.pid",
    "error_log": "/var/log/nginx/error.log", "luajit": "/usr/bin/luajit", "user": "www-data",
    "lua_module_roots": ["/opt/hardened-openresty/lua"], "lua_app_roots": ["/opt/hardened-openresty/app"],
    "lua_package_path": "", "lua_package_cpath": "",
}

LOW = {"rule": "nginx-version-drift", "severity": "low", "message": "older nginx",
       "file": "/etc/nginx/nginx.conf", "line": 3}
HIGH = {"rule": "lua-code-cache-off", "severity": "high", "message": "lua_code_cache is off",
        "file": "/etc/nginx/conf.d/debug.conf", "line": 7}
MEDIUM = {"rule": "lua-module-dir-missing", "severity": "medium", "message": "no /srv/lua", "file": None, "line": None}
RUNNING = {"master_pid": 100, "old_worker_pids": [99, 101, 102], "action": "reloaded",
           "msg": "check mode: would send SIGHUP to master 100"}


def _workers(**changes):
    """The status server's workers: two running workers of master 100 on v2, with changes to worker 1."""
    workers = [{"id": 0, "pid": 101, "release": "v2", "alive": True, "error": None},
               {"id": 1, "pid": 102, "release": "v2", "alive": True, "error": None}]
    workers[1].update(changes)
    return workers


# name: what differs from a host that runs v2 on every worker with a clean verifier.
SCENARIOS = {
    "good": {"findings": [LOW]},
    "high": {"findings": [HIGH, MEDIUM]},
    "high_off": {"findings": [HIGH, MEDIUM],
                 "vars": {"hardened_verify_fail_on": "none", "hardened_verify_sealed_dirs": ["/srv/high_off/sealed"],
                          "hardened_verify_policy": {"socket_read_timeout_max": "5s"}}},
    "old_release": {"workers": _workers(release="v1")},
    "init_error": {"workers": _workers(error="app.init_worker() failed")},
    "not_running": {"workers": _workers(alive=False)},
    "foreign_pid": {"workers": _workers(pid=555)},
    "missing_slot": {"worker_count": 3},
    "metrics_wrong": {"metrics": [("0", "v2"), ("1", "v1")]},
    "metrics_off": {"metrics": [("0", "v2"), ("1", "v1")], "vars": {"server_metrics": False}},
    "initial": {"current": "releases/initial", "routes": ["/hardened-openresty/health"]},
    "wanted_other": {"vars": {"hardened_verify_release": "v3"}},
    "wanted_same": {"vars": {"hardened_verify_release": "v2"}},
    "url_expected_404": {"url": "/nothing-here", "vars": {"hardened_verify_status": [404]}},
    "url_unexpected_404": {"url": "/nothing-here"},
    "url_remote": {"url_host": "192.0.2.10"},
    "no_master": {"master": {"master_pid": None, "old_worker_pids": [], "action": "started",
                             "msg": "check mode: would start nginx"}},
    "no_fact": {"fact": False},
}


def _status(workers, count):
    return json.dumps({"worker_count": count, "serving_pid": workers[0]["pid"], "workers": workers})


def _metrics(releases):
    lines = ["# HELP openresty_lua_app_release_info Release of the lua_app role that each worker loaded (value 1).",
             "# TYPE openresty_lua_app_release_info gauge"]
    lines += ['openresty_lua_app_release_info{worker="%s",release="%s"} 1' % pair for pair in releases]
    return "\n".join(lines + ['openresty_lua_vm_bytes{worker="0"} 123456']) + "\n"


def _documented_options(module):
    """The top-level options of a module's DOCUMENTATION with those of its doc fragments."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc.get("options") or {})
    for name in doc.get("extends_documentation_fragment") or ():
        parts = name.split(".")
        fragment = importlib.import_module("ansible_collections.%s.%s.plugins.doc_fragments.%s" % tuple(parts[:3]))
        text = getattr(fragment.ModuleDocFragment, parts[3].upper() if len(parts) > 3 else "DOCUMENTATION")
        options.update(yaml.safe_load(text).get("options") or {})
    return options


def _spec(module):
    """The argument spec a module's documentation declares (top-level options)."""
    options = _documented_options(module)
    keys = ("type", "choices", "default", "elements", "required")
    return {name: {key: value for key, value in option.items() if key in keys} for name, option in options.items()}


class Site(object):
    """A loopback HTTP server: path -> (status, content type, body); records what was asked."""

    def __init__(self, routes):
        self.routes = routes
        self.asked = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                site.asked.append(self.path)
                status, kind, body = site.routes.get(self.path, (404, "text/plain", "not found\n"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Outcome(object):
    """What the run did on one host."""

    def __init__(self, name, report, calls, site):
        self.calls = [call for call in calls if call["key"] in (name, "/opt/%s/lua" % name, "/run/%s.pid" % name)
                      or call["key"].startswith("/srv/%s/" % name)]
        self.asked = site.asked
        self.port = site.port
        self.tasks = [(task["task"]["name"], task["hosts"][name]) for play in report["plays"]
                      for task in play["tasks"] if name in task["hosts"]]

    @property
    def failed(self):
        """(task name, message) of the failed task, or None."""
        failed = [(name, result.get("msg", "")) for name, result in self.tasks if result.get("failed")]
        assert len(failed) <= 1, failed
        return failed[0] if failed else None

    def result(self, prefix):
        found = [result for name, result in self.tasks if name.startswith(prefix)]
        assert len(found) == 1, (prefix, [name for name, _result in self.tasks])
        return found[0]

    def ran(self):
        return [name for name, result in self.tasks if not result.get("skipped")]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    collection = tmp / "collections" / "ansible_collections" / "hardened" / "openresty"
    (collection / "plugins" / "modules").mkdir(parents=True)
    (collection / "playbooks").mkdir()
    # The real filter the playbook judges the status server's answer with.
    for part in REAL_PLUGINS:
        (collection / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(REPO, part), str(collection / part))
    # The real playbook; its one setup task reads the fact from each host's own directory.
    with open(PLAYBOOK) as handle:
        verify = yaml.safe_load(handle)
    setups = [task for play in verify for task in play["tasks"] if "ansible.builtin.setup" in task]
    assert len(setups) == 1
    setups[0]["ansible.builtin.setup"]["fact_path"] = "{{ test_fact_path }}"
    (collection / "playbooks" / "verify.yml").write_text(yaml.safe_dump(verify, sort_keys=False))
    (tmp / "site.yml").write_text("---\n- name: The hardened.openresty checks, as a user imports them\n"
                                  "  ansible.builtin.import_playbook: hardened.openresty.verify\n")

    sites, hosts, findings, masters = {}, {}, {}, {}
    for name, scenario in SCENARIOS.items():
        workers = scenario.get("workers", _workers())
        routes = {
            "/hardened-openresty/release": (200, "application/json",
                                            _status(workers, scenario.get("worker_count", len(workers)))),
            "/metrics": (200, "text/plain; version=0.0.4", _metrics(scenario.get("metrics", [("0", "v2"), ("1", "v2")]))),
            "/hardened-openresty/health": (200, "text/plain", "ok\n"),
        }
        site = sites[name] = Site({path: route for path, route in routes.items()
                                   if path in scenario.get("routes", routes)})
        home = tmp / name
        (home / "facts.d").mkdir(parents=True)
        if scenario.get("fact", True):
            fact = dict(FACT, pid_file="/run/%s.pid" % name, lua_module_roots=["/opt/%s/lua" % name],
                        lua_app_roots=["/opt/%s/app" % name])
            (home / "facts.d" / "hardened_openresty.fact").write_text(json.dumps(fact))
        (home / "app" / "releases").mkdir(parents=True)
        os.symlink(scenario.get("current", "releases/v2"), str(home / "app" / "current"))
        findings[scenario.get("vars", {}).get("hardened_verify_sealed_dirs", ["/opt/%s/lua" % name])[0]] = {
            "findings": scenario.get("findings", []), "summary": {}}
        masters["/run/%s.pid" % name] = scenario.get("master", RUNNING)
        host = dict(ansible_connection="local", ansible_become=False, ansible_python_interpreter=sys.executable,
                    test_fact_path=str(home / "facts.d"), lua_app_root=str(home / "app"),
                    lua_app_status_port=site.port, server_metrics_port=site.port, server_listen=site.port)
        if "url" in scenario or "url_host" in scenario:
            host["hardened_verify_url"] = "http://%s:%d%s" % (scenario.get("url_host", "127.0.0.1"), site.port,
                                                              scenario.get("url", "/hardened-openresty/health"))
        host.update(scenario.get("vars", {}))
        hosts[name] = host

    log = tmp / "calls.jsonl"
    for module, results, key in ((lua_sandbox_verify, findings, "sealed_dirs"), (nginx_reload, masters, "pid_file")):
        name = module.__name__.rsplit(".", 1)[1]
        (collection / "plugins" / "modules" / (name + ".py")).write_text(
            STUB % dict(spec=_spec(module), results=results, key=key, log=str(log), name=name))
    (tmp / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))

    env = _ansible_env(str(tmp / "collections"))
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_HOME=str(tmp / "ansible-home"))
    try:
        result = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(tmp / "inventory.yml"),
                                 "-f", str(len(hosts)), str(tmp / "site.yml")],
                                capture_output=True, text=True, cwd=str(tmp), env=env, check=False)
    finally:
        for site in sites.values():
            site.close()
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail("no JSON from ansible-playbook: %s %s" % (result.stdout, result.stderr))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return {name: Outcome(name, report, calls, sites[name]) for name in SCENARIOS}


def test_a_host_running_the_deployed_release_passes(fleet):
    good = fleet["good"]
    assert good.failed is None
    assert good.result("Show the verifier's findings")["msg"] == [
        "low nginx-version-drift /etc/nginx/nginx.conf:3: older nginx"]
    assert "2 workers of master 100 run release v2: [101, 102]" in good.result("Every worker of the service's master")["msg"]
    assert sorted(set(good.asked)) == ["/hardened-openresty/health", "/hardened-openresty/release", "/metrics"]
    verify, reload_ = good.calls
    assert verify["module"] == "lua_sandbox_verify" and verify["params"]["fail_on"] == "high"
    assert verify["params"]["sealed_dirs"] == ["/opt/good/lua", "/opt/good/app/releases"]
    assert verify["params"]["policy"] == {}
    # Nothing is reloaded: nginx_reload only names the service's master and its workers.
    assert reload_["module"] == "nginx_reload" and reload_["check_mode"] is True
    assert {key: reload_["params"][key] for key in ("binary", "config", "service", "pid_file", "error_log")} == {
        "binary": "/usr/sbin/nginx", "config": "/etc/nginx/nginx.conf", "service": "nginx",
        "pid_file": "/run/good.pid", "error_log": "/var/log/nginx/error.log"}
    assert not [name for name, result in good.tasks if result.get("changed")]


def test_a_finding_at_the_threshold_fails_after_the_findings_are_shown(fleet):
    name, msg = fleet["high"].failed
    assert name == "No finding at or above the threshold" and "lua-code-cache-off" in msg
    shown = ["high lua-code-cache-off /etc/nginx/conf.d/debug.conf:7: lua_code_cache is off",
             "medium lua-module-dir-missing no /srv/lua"]
    assert fleet["high"].result("Show the verifier's findings")["msg"] == shown
    # With the threshold off the same findings pass, and are still shown.
    off = fleet["high_off"]
    assert off.failed is None
    assert off.result("Show the verifier's findings")["msg"] == shown
    params = off.calls[0]["params"]
    assert params["fail_on"] == "none" and params["sealed_dirs"] == ["/srv/high_off/sealed"]
    assert params["policy"] == {"socket_read_timeout_max": "5s"}


@pytest.mark.parametrize("name", ["old_release", "init_error", "not_running", "foreign_pid", "missing_slot"])
def test_a_worker_that_does_not_run_the_release_fails(fleet, name):
    task, msg = fleet[name].failed
    assert task == "Every worker of the service's master runs the deployed release"
    assert "not every worker runs release v2" in msg


def test_the_metrics_endpoint_must_report_the_release_for_every_worker(fleet):
    task, msg = fleet["metrics_wrong"].failed
    assert task == "The metrics endpoint reports the deployed release for every worker"
    assert 'openresty_lua_app_release_info{worker="1",release="v2"} 1' in msg
    # Without the metrics endpoint (server_metrics false) it is not asked.
    assert fleet["metrics_off"].failed is None and "/metrics" not in fleet["metrics_off"].asked


def test_without_a_deployed_release_only_the_server_is_checked(fleet):
    initial = fleet["initial"]
    assert initial.failed is None
    assert initial.asked == ["/hardened-openresty/health"]
    assert "Read the metrics endpoint" not in initial.ran()


def test_a_required_release_must_be_the_current_one(fleet):
    task, msg = fleet["wanted_other"].failed
    assert task == "Current points at the required release" and "points at 'v2'" in msg
    assert fleet["wanted_same"].failed is None


def test_the_url_is_the_users_and_on_loopback_only(fleet):
    assert fleet["url_expected_404"].failed is None and "/nothing-here" in fleet["url_expected_404"].asked
    unexpected = fleet["url_unexpected_404"]
    assert unexpected.failed[0] == "Ask the URL on the host's loopback for its expected status"
    assert "404" in unexpected.failed[1]
    task, msg = fleet["url_remote"].failed
    assert task == "The URL to request is on the host's loopback" and "192.0.2.10" in msg
    assert "/hardened-openresty/health" not in fleet["url_remote"].asked


def test_a_host_without_a_running_master_or_the_servers_fact_fails(fleet):
    task, msg = fleet["no_master"].failed
    assert task == "The service's nginx master runs with workers" and "not running" in msg
    task, msg = fleet["no_fact"].failed
    assert task == "The host was set up by hardened.openresty.server" and "apply hardened.openresty.server" in msg
