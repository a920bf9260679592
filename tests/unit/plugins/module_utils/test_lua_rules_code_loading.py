"""The rules about the other doors code comes through (lua_rules_code_loading).

Configuration cases live in verify_cases.py with the rest of the catalogue; these tests
build real trees (symlinks, modes, owners) for the host rules, read systemd units and a
/proc stand-in, and run the pre-install gate's entry point.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_code_loading as code_loading
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
from ansible_collections.hardened.openresty.tests.unit.owner import OWNER
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.verify_cases import conf

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
WORKER = 33  # www-data on Debian


def findings(config, rule_id, **options):
    options.setdefault("check_filesystem", True)
    options.setdefault("owner", OWNER)
    report = lua_rules.evaluate(config, **options)
    return [f for f in report["findings"] if f["rule"] == rule_id], report["warnings"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A 0755 tree of OWNER's (root's as root); hops above it (pytest's world-writable /tmp) are left out."""
    base = tmp_path / "t"
    base.mkdir()
    os.chmod(str(tmp_path), 0o755)
    real = code_loading.resolve_hops

    def hops_in_base(path):
        hops, problem = real(path)
        return [hop for hop in hops if hop[1].startswith(str(base))], problem

    monkeypatch.setattr(code_loading, "resolve_hops", hops_in_base)
    return base


def make(path, text=u"", mode=0o644, uid=OWNER[0], gid=OWNER[1]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(str(path), mode)
    os.chown(str(path), uid, gid)
    return path


# -- resolving paths hop by hop ---------------------------------------------------------------

def test_resolve_hops_follows_every_symlink_and_dot_dot_after_it(tmp_path):
    real = tmp_path / "real" / "modules"
    real.mkdir(parents=True)
    (real / "m.so").write_text(u"")
    (tmp_path / "other").mkdir()
    os.symlink(str(real), str(tmp_path / "link"))            # absolute link
    os.symlink("../link", str(tmp_path / "other" / "rel"))  # relative link to a link
    hops, problem = code_loading.resolve_hops(str(tmp_path / "other" / "rel" / "m.so"))
    assert problem is None
    kinds = [(kind, path) for kind, path, _st in hops if path.startswith(str(tmp_path))]
    assert kinds == [
        ("dir", str(tmp_path)), ("dir", str(tmp_path / "other")),
        ("symlink", str(tmp_path / "other" / "rel")), ("symlink", str(tmp_path / "link")),
        # The absolute link starts again at "/": its directories are passed through again.
        ("dir", str(tmp_path)), ("dir", str(tmp_path / "real")), ("dir", str(real)), ("file", str(real / "m.so")),
    ]
    # ".." after a symlink goes to the parent of the link's target, as in the kernel.
    hops, problem = code_loading.resolve_hops(str(tmp_path / "link" / ".." / "modules" / "m.so"))
    assert problem is None and hops[-1][1] == str(real / "m.so")
    assert os.path.realpath(str(tmp_path / "link" / ".." / "modules" / "m.so")) == hops[-1][1]


def test_resolve_hops_reports_a_missing_component_and_a_loop(tmp_path):
    hops, problem = code_loading.resolve_hops(str(tmp_path / "nope" / "m.so"))
    assert "nope" in problem and hops[-1][1] == str(tmp_path)
    os.symlink("b", str(tmp_path / "a"))
    os.symlink("a", str(tmp_path / "b"))
    _hops, problem = code_loading.resolve_hops(str(tmp_path / "a"))
    assert "too many symlinks" in problem


# -- nginx-load-module-writable ---------------------------------------------------------------

def _load_module_config(base, path):
    main = make(base / "nginx.conf", u"load_module %s;\n" % path + conf())
    return nginx_parser.load_tree(str(main))


def test_load_module_in_a_sound_tree_is_fine(tree):
    make(tree / "lib" / "modules" / "m.so")
    os.symlink(str(tree / "lib" / "modules"), str(tree / "share-modules"))
    found, _w = findings(_load_module_config(tree, tree / "share-modules" / "m.so"), "nginx-load-module-writable")
    assert found == []


@pytest.mark.parametrize("writable", ["lib", "lib/modules", "lib/modules/m.so", "linkdir"])
def test_load_module_writable_hop_through_a_symlink(tree, writable):
    """A writable directory reached only through a symlink is found, as is the file itself."""
    make(tree / "lib" / "modules" / "m.so")
    (tree / "linkdir").mkdir()
    os.symlink(str(tree / "lib" / "modules"), str(tree / "linkdir" / "modules"))
    os.chmod(str(tree / writable), 0o777 if writable != "lib/modules/m.so" else 0o666)
    found, _w = findings(_load_module_config(tree, tree / "linkdir" / "modules" / "m.so"),
                         "nginx-load-module-writable")
    assert [f["file"] for f in found] == [str(tree / writable)]
    assert "writable by group or others" in found[0]["message"]


@needs_root
def test_load_module_owned_by_a_user_or_missing(tree):
    make(tree / "modules" / "m.so", uid=WORKER)
    found, _w = findings(_load_module_config(tree, tree / "modules" / "m.so"), "nginx-load-module-writable")
    assert [f["message"] for f in found] == ["module file %s is owned by uid %d" % (tree / "modules" / "m.so", WORKER)]
    found, _w = findings(_load_module_config(tree, tree / "modules" / "gone.so"), "nginx-load-module-writable")
    assert [f["file"] for f in found] == [str(tree / "modules" / "gone.so")]
    assert "cannot be resolved" in found[0]["message"]


# -- nginx-code-path-writable-by-worker --------------------------------------------------------

def _include_config(base, location=None):
    main = make(base / "nginx.conf", conf(server="        include snippets/*.conf;", location=location or
                                          'content_by_lua_block { ngx.say("ok") }'))
    make(base / "snippets" / "app.conf", u"location /app { return 204; }\n")
    return nginx_parser.load_tree(str(main))


def test_include_targets_of_a_sound_tree_are_fine(tree):
    found, warnings = findings(_include_config(tree), "nginx-code-path-writable-by-worker")
    assert found == [] and warnings == []


@pytest.mark.parametrize("target,mode,uid,gid,reason", [
    pytest.param("snippets", 0o775, 0, WORKER, "writable by group 33 of the worker user www-data", marks=needs_root),
    pytest.param("snippets", 0o755, WORKER, 0, "owned by the worker user www-data", marks=needs_root),
    pytest.param("snippets/app.conf", 0o644, WORKER, 0, "owned by the worker user www-data", marks=needs_root),
    ("snippets/app.conf", 0o666) + OWNER + ("writable by others",),
])
def test_include_targets_writable_by_the_worker(tree, target, mode, uid, gid, reason):
    config = _include_config(tree)
    os.chmod(str(tree / target), mode)
    os.chown(str(tree / target), uid, gid)
    found, _w = findings(config, "nginx-code-path-writable-by-worker")
    assert [f["file"] for f in found] == [str(tree / target)]
    assert reason in found[0]["message"]


def test_group_writable_by_a_group_the_worker_is_not_in_is_fine(tree):
    config = _include_config(tree)
    os.chmod(str(tree / "snippets"), 0o775)
    os.chown(str(tree / "snippets"), *OWNER)
    found, _w = findings(config, "nginx-code-path-writable-by-worker")
    assert found == []


@needs_root
def test_lua_file_target_reached_through_a_writable_symlinked_directory(tree):
    make(tree / "app" / "handler.lua", u"ngx.say(1)\n")
    (tree / "drop").mkdir()
    os.chown(str(tree / "drop"), WORKER, WORKER)
    os.symlink(str(tree / "app"), str(tree / "drop" / "app"))
    config = _include_config(tree, location="content_by_lua_file %s;" % (tree / "drop" / "app" / "handler.lua"))
    found, _w = findings(config, "nginx-code-path-writable-by-worker")
    assert [f["file"] for f in found] == [str(tree / "drop")]
    assert "on the way to content_by_lua_file target" in found[0]["message"]


# -- LUA_PATH / LUA_CPATH in the master's environment ------------------------------------------

@pytest.fixture
def units(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    lib = tmp_path / "lib"
    monkeypatch.setattr(code_loading, "SYSTEMD_UNIT_DIRS", (str(etc), str(lib)))
    make(lib / "nginx.service", u"[Service]\nType=forking\nExecStart=/usr/sbin/nginx\n")
    return etc, lib


def _env_findings(config):
    return findings(config, "lua-path-in-service-environment")[0]


def test_a_plain_unit_sets_no_lua_path(units):
    assert _env_findings(nginx_parser.parse_dump(conf())) == []


def test_environment_in_a_drop_in_and_an_environment_file(units, tmp_path):
    etc, _lib = units
    env_file = make(tmp_path / "nginx.env", u"# comment\nFOO=1\nexport LUA_CPATH=/opt/?.so\n")
    make(etc / "nginx.service.d" / "lua.conf",
         u'[Service]\nEnvironment="LUA_PATH=/opt/shared/?.lua;;" OTHER=1\n'
         u"EnvironmentFile=-%s\nEnvironment=LUA_PATHX=1\n" % env_file)
    config = nginx_parser.parse_dump(conf(drop=("lua_package_cpath",)))
    found = _env_findings(config)
    assert [(f["file"], f["line"]) for f in found] == [
        (str(etc / "nginx.service.d" / "lua.conf"), 2), (str(env_file), 3)]
    by_file = dict((f["file"], f["message"]) for f in found)
    assert "not read while lua_package_path is set" in by_file[str(etc / "nginx.service.d" / "lua.conf")]
    assert "read now: there is no lua_package_cpath in http" in by_file[str(env_file)]


def test_environment_read_through_double_semicolon(units):
    etc, _lib = units
    make(etc / "nginx.service.d" / "lua.conf", u"[Service]\nPassEnvironment=LUA_PATH\n")
    config = nginx_parser.parse_dump(conf(replace={"lua_package_path": '"/srv/lua/lib/?.lua;;"'}))
    found = _env_findings(config)
    assert len(found) == 1 and 'read now: ";;" in lua_package_path' in found[0]["message"]


def test_environment_look_alike_in_a_comment_is_not_read(units):
    etc, _lib = units
    make(etc / "nginx.service.d" / "note.conf", u"[Service]\n# Environment=LUA_PATH=/x/?.lua\n")
    make(etc / "other.service.d" / "lua.conf", u"[Service]\nEnvironment=LUA_PATH=/x/?.lua\n")
    assert _env_findings(nginx_parser.parse_dump(conf())) == []


def test_master_environment_from_proc(tmp_path):
    proc = tmp_path / "proc"
    (proc / "100").mkdir(parents=True)
    (proc / "100" / "environ").write_bytes(b"PATH=/usr/bin\0LUA_PATH=./?.lua;;\0")
    workers = [{"pid": 101, "ppid": 100, "uid": 33, "title": "nginx: worker process", "start_time": 1.0}]
    config = nginx_parser.parse_dump(conf())
    report = lua_rules.evaluate(config, check_processes=True, processes=workers, master_pid=100, proc=str(proc))
    found = [f for f in report["findings"] if f["rule"] == "lua-path-in-master-environment"]
    assert [(f["file"], f["severity"]) for f in found] == [(str(proc / "100" / "environ"), "high")]
    assert "LUA_PATH=./?.lua;;" in found[0]["message"]
    (proc / "100" / "environ").write_bytes(b"PATH=/usr/bin\0LUA_PATHS=x\0")
    report = lua_rules.evaluate(config, check_processes=True, processes=workers, master_pid=100, proc=str(proc))
    assert [f for f in report["findings"] if f["rule"] == "lua-path-in-master-environment"] == []


def test_a_real_process_environment_is_read_like_a_master(monkeypatch):
    """The real /proc: a child of this test stands in for the master, LUA_CPATH in its environment."""
    monkeypatch.setenv("LUA_CPATH", "/tmp/?.so")
    # os.environ changes do not reach /proc/self/environ; a child started with it does.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=dict(os.environ))
    try:
        workers = [{"pid": 0, "ppid": child.pid, "uid": 33, "title": "nginx: worker process", "start_time": 1.0}]
        report = lua_rules.evaluate(nginx_parser.parse_dump(conf()), check_processes=True, processes=workers,
                                    master_pid=child.pid)
        found = [f for f in report["findings"] if f["rule"] == "lua-path-in-master-environment"]
        assert [f["file"] for f in found] == ["/proc/%d/environ" % child.pid]
        assert "LUA_CPATH=/tmp/?.so" in found[0]["message"]
    finally:
        child.kill()
        child.wait()


# -- the pre-install gate --------------------------------------------------------------------------

@pytest.mark.parametrize("top,rule_id", [
    ("load_module /tmp/ngx_http_marker_module.so;", "nginx-load-module-outside-module-dir"),
    ("ssl_engine /tmp/marker_engine.so;", "nginx-ssl-engine"),
])
def test_gate_entry_point_refuses_code_loading_directives(tmp_path, top, rule_id):
    staged = tmp_path / "staged"
    make(staged / "nginx.conf", u"%s\n%s" % (top, conf().replace("user www-data;", "user www-data;\n"
                                                                 "include modules-enabled/*.conf;")))
    make(staged / "modules-enabled" / "50-mod-http-lua.conf", u"load_module modules/ngx_http_lua_module.so;\n")
    with pytest.raises(staged_config.LuaPolicyError) as refused:
        staged_config.refuse_weak_lua(str(staged / "nginx.conf"), "high", prefix="/usr/share/nginx/",
                                      staged_root=str(staged), conf_dir="/etc/nginx")
    found = refused.value.findings
    assert [(f["rule"], f["file"], f["line"]) for f in found] == [(rule_id, "/etc/nginx/nginx.conf", 1)]
    assert str(staged) not in str(refused.value), "the message shows live paths, not the staged copy"
    # The distribution's module, relative to the prefix, passes the same gate.
    make(staged / "nginx.conf", conf().replace("user www-data;", "user www-data;\ninclude modules-enabled/*.conf;"))
    assert staged_config.refuse_weak_lua(str(staged / "nginx.conf"), "high", prefix="/usr/share/nginx/",
                                         staged_root=str(staged), conf_dir="/etc/nginx") is None
