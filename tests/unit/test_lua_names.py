"""The shared dict, key and location names are defined once (module_utils lua_names).

The roles' templates and the server role's Lua helpers are rendered here the way the roles
render them, from the lookup hardened.openresty.lua_names, once with the real names and once
with every name changed in that one table; the helpers then run under LuaJIT with a stand-in
for `ngx` whose shared dicts and stub_status location are the ones the rendered configuration
declares. A last test fails when a name is written anywhere under roles/ or plugins/ but in
the table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess

import jinja2
import pytest
import yaml

from ansible_collections.hardened.openresty.plugins.lookup.lua_names import LookupModule
from ansible_collections.hardened.openresty.plugins.module_utils import lua_names
from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import release_module_source
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_parser import parse_string

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(REPO, "roles", "server")
LUA_APP = os.path.join(REPO, "roles", "lua_app")
SOURCE = os.path.join("plugins", "module_utils", "lua_names.py")
LUAJIT = shutil.which("luajit")
NEEDS_LUAJIT = pytest.mark.skipif(
    LUAJIT is None, reason="LuaJIT is not installed (as root on Debian/Ubuntu, "
                           "scripts/ensure-luajit.sh installs it; or apt-get install luajit)")

ORIGINAL = dict(lua_names.LUA_NAMES)
# Every name changed; the key prefixes hold Lua pattern characters ('-', '.'), which must
# be taken literally.
RENAMED = {
    "metrics_dict": "renamed_metrics",
    "metrics_worker_key": "vm-",
    "metrics_draining_key": "leaving.",
    "release_dict": "renamed_releases",
    "release_worker_key": "rel.",
    "release_pid_key": "pid-of/",
    "release_error_key": "init_error_",
    "stub_status_path": "/renamed/connections.status",
}
PID = 999999999  # above any pid_max: /proc/<PID> never exists


def load_yaml(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle)


def test_the_table_holds_names_that_templates_and_lua_can_hold_unquoted():
    assert sorted(RENAMED) == sorted(ORIGINAL)
    for field, value in list(ORIGINAL.items()) + list(RENAMED.items()):
        assert lua_names.NAME_FIELD.match(field) and lua_names.NAME_VALUE.match(value), (field, value)
    assert all(RENAMED[field] != ORIGINAL[field] for field in ORIGINAL)
    assert ORIGINAL["stub_status_path"].startswith("/")


def test_the_lookup_returns_the_table_and_takes_no_terms():
    assert LookupModule().run([]) == [ORIGINAL]
    with pytest.raises(Exception, match="takes no terms"):
        LookupModule().run(["metrics_dict"])


def test_both_roles_read_the_names_through_the_lookup():
    expression = "{{ lookup('hardened.openresty.lua_names') }}"
    assert load_yaml(SERVER, "vars", "main.yml")["__server_lua_names"] == expression
    assert load_yaml(LUA_APP, "vars", "main.yml")["__lua_app_lua_names"] == expression
    seal = [task for task in load_yaml(SERVER, "tasks", "roots.yml") if "hardened.openresty.sealed_tree" in task
            and "files" in task["hardened.openresty.sealed_tree"]]
    assert [task["hardened.openresty.sealed_tree"]["files"] for task in seal] == ["{{ __server_lua_helper_files }}"]


# Rendering as the roles do ------------------------------------------------------------

def _expression(value):
    match = re.match(r"^\s*\{\{(.*)\}\}\s*$", value, re.S)
    assert match, value
    return match.group(1)


class Roles(object):
    """The server and lua_app roles' templates and Lua helpers, rendered with jinja2 from the
    roles' defaults and vars, with the lookups, filters and file reads they use."""

    def __init__(self):
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader([os.path.join(SERVER, "templates"),
                                                                      os.path.join(LUA_APP, "templates")]),
                                      undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
        self.env.filters.update(to_json=json.dumps, zip=lambda a, b: list(zip(a, b)),
                                combine=lambda a, b: dict(a, **b))
        self.env.globals.update(lookup=self.lookup, query=self.query)
        server_vars = load_yaml(SERVER, "vars", "main.yml")
        app_vars = load_yaml(LUA_APP, "vars", "main.yml")
        self.vars = dict(load_yaml(SERVER, "defaults", "main.yml"), **load_yaml(LUA_APP, "defaults", "main.yml"))
        self.vars.update(ansible_managed="Ansible managed", __server_lua_package_path="/srv/lua/?.lua",
                         __server_lua_package_cpath="/srv/lua/?.so",
                         __server_lua_helpers=server_vars["__server_lua_helpers"])
        for name, source in (("__server_lua_names", server_vars), ("__lua_app_lua_names", app_vars),
                             ("__server_lua_helper_files", server_vars)):
            self.vars[name] = self.evaluate(source[name])

    def evaluate(self, value):
        return self.env.compile_expression(_expression(value), undefined_to_none=False)(**self.vars)

    def lookup(self, name, *terms):
        if name == "hardened.openresty.lua_names":
            [names] = LookupModule().run(list(terms))
            return names
        assert name == "ansible.builtin.template" and len(terms) == 1, (name, terms)
        return self.render(terms[0])

    def query(self, name, *terms):
        assert name == "ansible.builtin.file", name
        contents = []
        for term in terms:
            with open(os.path.join(SERVER, "files", term)) as handle:
                contents.append(handle.read().rstrip("\n"))  # the file lookup strips the end
        return contents

    def render(self, template):
        return self.env.get_template(template).render(**self.vars)


def _directives(nodes):
    for node in nodes:
        yield node
        if node.block:
            yield from _directives(node.block)


def _location(config, path):
    return [node for node in _directives(config) if node.directive == "location" and node.args == ["=", path]]


class Rendered(object):
    """What nginx would take from the rendered files: shared dicts, the stub_status
    location, and the Lua blocks nginx runs."""

    def __init__(self, roles):
        self.helpers = roles.vars["__server_lua_helper_files"]
        self.lua_conf = parse_string(roles.render("lua.conf.j2"), filename="hardened/lua.conf")
        self.metrics_conf = parse_string(roles.render("metrics.conf.j2"), filename="conf.d/hardened-metrics.conf")
        self.app_conf = parse_string(roles.render("hardened-lua-app.conf.j2"), filename="conf.d/hardened-lua-app.conf")
        configs = (self.lua_conf, self.metrics_conf, self.app_conf)
        self.shared_dicts = sorted(node.args[0] for config in configs for node in _directives(config)
                                   if node.directive == "lua_shared_dict")
        self.stub_status_paths = [node.args[1] for node in _directives(self.metrics_conf)
                                  if node.directive == "location" and any(child.directive == "stub_status"
                                                                          for child in node.block)]
        [self.init_worker] = [node.args[0] for node in _directives(self.lua_conf)
                              if node.directive == "init_worker_by_lua_block"]
        [metrics_location] = _location(self.metrics_conf, roles.vars["server_metrics_path"])
        [self.serve_metrics] = [node.args[0] for node in metrics_location.block
                                if node.directive == "content_by_lua_block"]
        [status_location] = _location(self.app_conf, "/hardened-openresty/release")
        [self.serve_status] = [node.args[0] for node in status_location.block
                               if node.directive == "content_by_lua_block"]


@pytest.fixture(params=["original", "renamed"])
def names(request, monkeypatch):
    """The one table, as it is or with every name changed."""
    if request.param == "renamed":
        for field, value in RENAMED.items():
            monkeypatch.setitem(lua_names.LUA_NAMES, field, value)
    return dict(lua_names.LUA_NAMES)


def test_the_rendered_names_module_is_the_table(names):
    rendered = Roles()
    assert rendered.vars["__server_lua_names"] == rendered.vars["__lua_app_lua_names"] == names
    helpers = rendered.vars["__server_lua_helper_files"]
    assert sorted(helpers) == ["hardened_guard.lua", "hardened_metrics.lua", "hardened_names.lua",
                               "hardened_worker.lua"]
    fields = dict(re.findall(r'^    ([a-z_]+) = "([^"]*)",$', helpers["hardened_names.lua"], re.M))
    assert fields == names


def test_the_configuration_declares_the_names_of_the_table(names):
    rendered = Rendered(Roles())
    assert rendered.shared_dicts == sorted([names["metrics_dict"], names["release_dict"]])
    assert rendered.stub_status_paths == [names["stub_status_path"]]


# Running the helpers under LuaJIT -------------------------------------------------------

# Stands in for lua-nginx-module: the shared dicts are those the configuration declares
# (arg 2, comma-separated), the stub_status location answers at the path the metrics
# configuration gives it (arg 3). Runs the init_worker block of lua.conf as a worker would,
# goes through hardened_guard once, then serves the metrics location and the lua_app status
# location; prints what it saw, one tab-separated record a line.
DRIVER = r"""
local dir, declared, stub_path = arg[1], arg[2], arg[3]
package.path = dir .. "/?.lua"

local function clean(value)
    return (tostring(value):gsub("\n", "\\n"):gsub("\t", "\\t"))
end

local data, shared, missing, captured, out = {}, {}, {}, {}, {}
local Dict = {}
Dict.__index = Dict
function Dict:set(key, value) data[self.name][key] = value return true end
function Dict:get(key) return data[self.name][key] end
function Dict:incr(key, by, init) data[self.name][key] = (data[self.name][key] or init) + by return data[self.name][key] end
function Dict:get_keys()
    local keys = {}
    for key in pairs(data[self.name]) do keys[#keys + 1] = key end
    table.sort(keys)
    return keys
end
function Dict:capacity() return 1048576 end
function Dict:free_space() return 1040384 end
for name in declared:gmatch("[^,]+") do
    data[name] = {}
    shared[name] = setmetatable({ name = name }, Dict)
end
setmetatable(shared, { __index = function(_, name) missing[#missing + 1] = tostring(name) end })

local STUB = "Active connections: 3 \nserver accepts handled requests\n 11 12 40 \n"
          .. "Reading: 0 Writing: 1 Waiting: 2 \n"
ngx = {
    ERR = 4,
    shared = shared,
    log = function(_, ...)
        local parts = {}
        for index = 1, select("#", ...) do parts[index] = tostring(select(index, ...)) end
        print("LOG\t" .. clean(table.concat(parts)))
    end,
    worker = { id = function() return 0 end, pid = function() return PID end, count = function() return 1 end },
    timer = { every = function() return true end, pending_count = function() return 1 end,
              running_count = function() return 0 end },
    now = function() return 1700000000.25 end,
    re = { match = function() return nil, "pcre_exec() failed: -8" end },
    location = { capture = function(path)
        captured[#captured + 1] = path
        if path == stub_path then
            return { status = 200, body = STUB }
        end
        return { status = 404, body = "" }
    end },
    header = {},
    print = function(text) out[#out + 1] = text end,
    say = function(...) out[#out + 1] = table.concat({ ... }) .. "\n" end,
}

local function run(file)
    out = {}
    assert(loadfile(dir .. "/" .. file))()
    for line in table.concat(out):gmatch("[^\n]+") do
        print(file .. "\t" .. line)
    end
end

run("init_worker.lua")
local guard = require("hardened_guard")
guard.re_match("aaaa", "^(a|a)+$", "o")
guard.note_socket_error("receive", "timeout")
run("serve_metrics.lua")
run("serve_status.lua")

for _, name in ipairs(missing) do print("MISSING\t" .. name) end
for _, path in ipairs(captured) do print("CAPTURE\t" .. path) end
local names = {}
for name in pairs(data) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
    for _, key in ipairs(shared[name]:get_keys()) do
        print(table.concat({ "DICT", name, key, clean(data[name][key]) }, "\t"))
    end
end
""".replace("PID", str(PID))


def run_helpers(tmp_path, release):
    """Render as the roles do, install the helpers (and a release module) into one module
    root, run DRIVER; return (records by kind, shared dicts, stub_status path, the names)."""
    rendered = Rendered(Roles())
    root = tmp_path / "lua"
    root.mkdir()
    for name, content in rendered.helpers.items():
        (root / name).write_text(content)
    if release:
        (root / "hardened_release.lua").write_text(release_module_source(release))
    (root / "init_worker.lua").write_text(rendered.init_worker)
    (root / "serve_metrics.lua").write_text(rendered.serve_metrics)
    (root / "serve_status.lua").write_text(rendered.serve_status)
    (tmp_path / "driver.lua").write_text(DRIVER)
    [stub_path] = rendered.stub_status_paths
    result = subprocess.run([LUAJIT, str(tmp_path / "driver.lua"), str(root), ",".join(rendered.shared_dicts),
                             stub_path], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    records = {}
    for line in result.stdout.splitlines():
        kind, rest = line.split("\t", 1)
        records.setdefault(kind, []).append(rest)
    return records


def _dicts(records):
    dicts = {}
    for record in records.get("DICT", []):
        name, key, value = record.split("\t")
        dicts.setdefault(name, {})[key] = value
    return dicts


@NEEDS_LUAJIT
def test_the_helpers_and_the_release_module_use_the_names_of_the_table(tmp_path, names):
    records = run_helpers(tmp_path, "r1")
    assert "MISSING" not in records and "LOG" not in records, records
    dicts = _dicts(records)
    # hardened_release (written by lua_release) filled this worker's slot, hardened_metrics
    # published into its dict and hardened_guard counted there.
    assert dicts[names["release_dict"]] == {names["release_worker_key"] + "0": "r1",
                                            names["release_pid_key"] + "0": str(PID),
                                            names["release_error_key"] + "0": ""}
    metrics = dicts[names["metrics_dict"]]
    assert sorted(metrics) == sorted([names["metrics_worker_key"] + "0", "count:regex_match_limit_hits",
                                      "count:cosocket_timeouts:receive"])
    # The endpoint reads the stub_status location the configuration serves.
    assert records["CAPTURE"] == [names["stub_status_path"]]
    body = records["serve_metrics.lua"]
    assert 'openresty_lua_app_release_info{worker="0",release="r1"} 1' in body
    assert "openresty_connections_active 3" in body and "openresty_http_requests_total 40" in body
    assert "openresty_lua_regex_match_limit_hits_total 1" in body
    assert 'openresty_lua_cosocket_timeouts_total{operation="receive"} 1' in body
    assert any(line.startswith('openresty_lua_vm_bytes{worker="0"} ') for line in body)
    assert 'openresty_lua_shared_dict_capacity_bytes{dict="%s"} 1048576' % names["release_dict"] in body
    # The lua_app status server reads the same slot.
    [status] = records["serve_status.lua"]
    assert json.loads(status)["workers"] == [{"id": 0, "pid": PID, "release": "r1", "alive": False, "error": None}]


@NEEDS_LUAJIT
def test_a_worker_without_a_release_module_records_why_under_the_names_of_the_table(tmp_path, names):
    records = run_helpers(tmp_path, None)
    assert "MISSING" not in records, records
    slot = _dicts(records)[names["release_dict"]]
    assert sorted(slot) == sorted(names[field] + "0" for field in
                                  ("release_worker_key", "release_pid_key", "release_error_key"))
    assert slot[names["release_worker_key"] + "0"] == ""
    assert slot[names["release_error_key"] + "0"].startswith("no release loaded: module 'hardened_release' not found")
    [status] = records["serve_status.lua"]
    [worker] = json.loads(status)["workers"]
    assert worker["release"] is None and worker["pid"] == PID
    assert worker["error"].startswith("no release loaded: ")
    assert records["LOG"][0].startswith("hardened_worker: no release loaded: ")


# Nowhere else ----------------------------------------------------------------------------

def literal_uses(text, names):
    """(field, value) of each name of the table written literally in text: a dict name or
    path anywhere, a key prefix as a string of its own or the start of a string that goes
    on with a concatenation or a Lua pattern ("pid:" .. id, "^worker:(%d+)$")."""
    found = []
    for field, value in sorted(names.items()):
        if field.endswith("_key"):
            pattern = r"""(["'])\^?%s(\1|\(|%%)""" % re.escape(value)
        else:
            pattern = re.escape(value)
        if re.search(pattern, text):
            found.append((field, value))
    return found


def test_literal_uses_finds_what_the_helpers_used_to_write():
    assert literal_uses('local dict = ngx.shared.hardened_openresty_release', ORIGINAL) == [
        ("release_dict", "hardened_openresty_release")]
    assert literal_uses('dict:set("pid:" .. worker, ngx.worker.pid())', ORIGINAL) == [("release_pid_key", "pid:")]
    assert sorted(literal_uses("key:match('^worker:(%d+)$')", ORIGINAL)) == [
        ("metrics_worker_key", "worker:"), ("release_worker_key", "worker:")]
    assert literal_uses('location = /hardened-openresty/stub_status {', ORIGINAL) == [
        ("stub_status_path", "/hardened-openresty/stub_status")]
    # Words in messages are no key prefixes.
    assert literal_uses('status = "error: %s" % data["error"]; starts no worker: that', ORIGINAL) == []


def test_no_name_is_written_anywhere_but_in_the_table():
    offenders = []
    for top in ("roles", "plugins"):
        for directory, subdirectories, files in os.walk(os.path.join(REPO, top)):
            subdirectories[:] = [name for name in subdirectories if name != "__pycache__"]
            for name in files:
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, REPO)
                if relative == SOURCE:
                    continue
                with open(path, "rb") as handle:
                    text = handle.read().decode("utf-8", "replace")
                offenders.extend((relative, field, value) for field, value in literal_uses(text, ORIGINAL))
    assert offenders == []


# A worker that starts to drain (nginx runs its pending timers once with premature set)
# records its pid; the endpoint counts the records whose process exists and forgets the rest.
DRAINING_DRIVER = r"""
local dir, dict_name, live_pid, gone_pid = arg[1], arg[2], tonumber(arg[3]), arg[4]
package.path = dir .. "/?.lua"
local data, timer = {}, nil
local Dict = {}
Dict.__index = Dict
function Dict:set(key, value) data[key] = value return true end
function Dict:get(key) return data[key] end
function Dict:delete(key) data[key] = nil end
function Dict:incr(key, by, init) data[key] = (data[key] or init) + by return data[key] end
function Dict:get_keys()
    local keys = {}
    for key in pairs(data) do keys[#keys + 1] = key end
    table.sort(keys)
    return keys
end
function Dict:capacity() return 1048576 end
function Dict:free_space() return 1040384 end
ngx = {
    ERR = 4, shared = { [dict_name] = setmetatable({}, Dict) }, log = function() end, header = {},
    worker = { id = function() return 0 end, pid = function() return live_pid end },
    timer = { every = function(_, callback) timer = callback return true end,
              pending_count = function() return 1 end, running_count = function() return 0 end },
    now = function() return 1700000000.25 end,
    location = { capture = function() return { status = 404, body = "" } end },
}
local metrics = require("hardened_metrics")
metrics.start({ interval = 5 })
data[NAMES_DRAINING .. gone_pid] = 1
timer(false)
print("RUNNING\t" .. metrics.render():match("\nopenresty_workers_draining (%d+)\n"))
timer(true)
print("DRAINING\t" .. metrics.render():match("\nopenresty_workers_draining (%d+)\n"))
for _, key in ipairs(ngx.shared[dict_name]:get_keys()) do print("KEY\t" .. key) end
"""


@NEEDS_LUAJIT
def test_the_metrics_count_the_draining_workers_whose_process_still_runs(tmp_path, names):
    rendered = Rendered(Roles())
    root = tmp_path / "lua"
    root.mkdir()
    for name, content in rendered.helpers.items():
        (root / name).write_text(content)
    driver = DRAINING_DRIVER.replace("NAMES_DRAINING", '"%s"' % names["metrics_draining_key"])
    (tmp_path / "driver.lua").write_text(driver)
    # This test's own process stands in for a draining worker that still runs; PID for one gone.
    result = subprocess.run([LUAJIT, str(tmp_path / "driver.lua"), str(root), names["metrics_dict"],
                             str(os.getpid()), str(PID)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "RUNNING\t0" in lines, "a worker that publishes is not draining, and the gone one is forgotten"
    assert "DRAINING\t1" in lines
    keys = [line.split("\t", 1)[1] for line in lines if line.startswith("KEY\t")]
    assert names["metrics_draining_key"] + str(os.getpid()) in keys
    assert names["metrics_draining_key"] + str(PID) not in keys
