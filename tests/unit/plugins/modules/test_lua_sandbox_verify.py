from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible.module_utils import basic

from ansible_collections.hardened.openresty.plugins.modules import lua_sandbox_verify
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.verify_cases import conf

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "verify")
OFFLINE = {"check_filesystem": False, "check_processes": False}


def write(path, text):
    path.write_text(text)
    return str(path)


def dump_file(tmp_path, text, name="nginx-T.txt"):
    return write(tmp_path / name, "# configuration file /etc/nginx/nginx.conf:\n" + text)


@pytest.fixture
def no_binaries(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, *a, **k: None)


def fake_binary(tmp_path, name, version_text, dump_text, rc=0):
    """An executable that answers -V and -T like nginx and records its arguments."""
    (tmp_path / ("%s.V" % name)).write_text(version_text)
    (tmp_path / ("%s.T" % name)).write_text(dump_text)
    script = tmp_path / name
    script.write_text(u"""#!/bin/sh
echo "$@" >> {base}.args
case "$1" in
  -V) cat {base}.V >&2 ;;
  -T) if [ {rc} -ne 0 ]; then echo 'nginx: [emerg] unknown directive "lua_foo" in /etc/nginx/nginx.conf:3' >&2; exit {rc}; fi
      echo 'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok' >&2; cat {base}.T ;;
esac
""".format(base=tmp_path / name, rc=rc))
    os.chmod(str(script), stat.S_IRWXU)
    return str(script)


def nginx_dump(*paths):
    """What nginx -T prints for these files (nginx.c: a marker line, the file, a newline)."""
    out = []
    for path in paths:
        with open(str(path)) as handle:
            out.append("# configuration file %s:\n%s\n" % (path, handle.read()))
    return "".join(out)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host without systemctl or a running master, unless a test adds them."""
    tools = {}
    proc = tmp_path / "proc"
    proc.mkdir()
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: tools.get(name))
    monkeypatch.setattr(lua_sandbox_verify, "PROC", str(proc))
    return tools


def args_used(binary):
    with open(binary + ".args") as handle:
        return [line.split() for line in handle.read().splitlines()]


def test_findings_fail_the_task_at_high(tmp_path, run_module):
    dump = dump_file(tmp_path, conf(http="    lua_code_cache off;\n    lua_socket_keepalive_timeout 10m;"))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump))
    assert result["failed"] and result["changed"] is False and result["passed"] is False
    assert [f["rule"] for f in result["findings"]] == [
        "lua-code-cache-off", "lua-socket-keepalive-timeout-too-long"]
    assert result["summary"] == {"high": 1, "medium": 0, "low": 1}
    assert result["msg"].startswith("1 finding(s) at or above high: lua-code-cache-off [high] "
                                    "/etc/nginx/nginx.conf:15: lua_code_cache off")
    assert "keepalive" not in result["msg"]
    assert result["versions"] == {} and result["config_files"] == ["/etc/nginx/nginx.conf"]


@pytest.mark.parametrize("fail_on,failed,passed", [
    ("high", False, True), ("medium", False, True), ("low", True, False), ("none", False, False)])
def test_fail_on_threshold(tmp_path, run_module, fail_on, failed, passed):
    dump = dump_file(tmp_path, conf(http="    lua_regex_cache_max_entries 4096;"))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump, fail_on=fail_on))
    assert (result["failed"], result["passed"]) == (failed, passed)
    assert [f["rule"] for f in result["findings"]] == ["lua-regex-cache-too-large"]


def test_hardened_configuration_passes_strictly_in_check_mode(tmp_path, run_module):
    dump = dump_file(tmp_path, conf())
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump, fail_on="low"), check_mode=True)
    assert not result["failed"] and result["passed"] and result["findings"] == []
    assert result["changed"] is False


def test_policy_overrides_apply(tmp_path, run_module):
    dump = dump_file(tmp_path, conf(replace={"lua_socket_read_timeout": "30s"}))
    default = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump, fail_on="none"))
    assert [f["rule"] for f in default["findings"]] == ["lua-socket-timeout-too-long"]
    relaxed = run_module(lua_sandbox_verify, dict(
        OFFLINE, dump=dump, fail_on="low", policy={"socket_read_timeout_max": "30s"}))
    assert relaxed["passed"] and not relaxed["failed"]


def test_invalid_policy_is_refused(tmp_path, run_module):
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump_file(tmp_path, conf()),
                                                 policy={"socket_read_timeout_max": "fast"}))
    assert result["failed"] and result["msg"].startswith("invalid policy: policy socket_read_timeout_max")


def test_parse_error_fails_with_file_and_line(tmp_path, run_module):
    text = "http {\n  server {\n    content_by_lua_block {\n      local s = [[ never closed\n    }\n  }\n}\n"
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump_file(tmp_path, text)))
    assert result["failed"]
    assert result["msg"] == ("cannot parse the nginx configuration: /etc/nginx/nginx.conf:4: "
                             "unfinished Lua long string")
    assert result["parse_error"] == {"file": "/etc/nginx/nginx.conf", "line": 4,
                                     "message": "unfinished Lua long string"}


def test_unreadable_dump(tmp_path, run_module):
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=str(tmp_path / "absent.txt")))
    assert result["failed"] and "cannot read dump" in result["msg"]


def test_debian_dump_with_its_binary_facts(tmp_path, run_module):
    with open(os.path.join(FIXTURES, "debian12-nginx-V.txt")) as handle:
        version_text = handle.read()
    binary = fake_binary(tmp_path, "nginx", version_text, "")
    result = run_module(lua_sandbox_verify, dict(
        OFFLINE, dump=os.path.join(FIXTURES, "debian12-nginx-T.txt"), binary=binary, fail_on="none"))
    assert result["versions"]["version"] == "1.22.1" and result["prefix"] == "/usr/share/nginx"
    assert args_used(binary) == [["-V"]], "with a dump, the binary only answers -V"
    assert result["summary"] == {"high": 2, "medium": 6, "low": 1}


def test_runs_the_binary_with_config_and_prefix(tmp_path, run_module, host):
    version_text = ("nginx version: openresty/1.25.3.2\nconfigure arguments: "
                    "--prefix=/usr/local/openresty/nginx --add-module=../ngx_lua-0.10.27\n")
    (tmp_path / "conf").mkdir()
    main = write(tmp_path / "conf" / "nginx.conf", conf(
        replace={"lua_package_path": '"$prefix/lua/?.lua;/usr/local/openresty/lualib/?.lua"'},
        location="content_by_lua_file %s/lua/handler.lua;" % tmp_path))
    binary = fake_binary(tmp_path, "openresty", version_text, nginx_dump(main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, prefix=str(tmp_path),
                                                 config=main, fail_on="low"))
    assert not result["failed"], result["msg"] if result["failed"] else ""
    assert args_used(binary) == [["-V"], ["-T", "-p", str(tmp_path), "-c", main]]
    assert result["prefix"] == str(tmp_path)
    assert result["versions"]["openresty"] is True
    assert result["versions"]["lua_nginx_module"] == "0.10.27"
    assert result["config_files"] == [main]


def test_prefix_defaults_to_the_binarys(tmp_path, run_module, host):
    prefix = tmp_path / "usr" / "nginx"
    (prefix / "conf").mkdir(parents=True)
    version_text = "nginx version: openresty/1.25.3.2\nconfigure arguments: --prefix=%s\n" % prefix
    main = write(prefix / "conf" / "nginx.conf", conf(
        replace={"lua_package_path": '"$prefix/lua/?.lua;/usr/local/openresty/lualib/?.lua"'},
        location="content_by_lua_file %s/lua/handler.lua;" % prefix))
    binary = fake_binary(tmp_path, "openresty", version_text, nginx_dump(main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="low"))
    assert args_used(binary) == [["-V"], ["-T"]]
    assert result["prefix"] == str(prefix) and result["passed"], result.get("msg")
    assert result["config_files"] == [main], "conf/nginx.conf under the prefix is nginx's default"


def test_failing_config_test_is_reported(tmp_path, run_module, host):
    binary = fake_binary(tmp_path, "nginx", "nginx version: nginx/1.22.1\n", "", rc=1)
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary))
    assert result["failed"]
    assert 'unknown directive "lua_foo"' in result["msg"] and "-T" in result["msg"]


def test_openresty_is_preferred_to_nginx(tmp_path, run_module, host):
    mains = {}
    for name, directory in (("openresty", "x"), ("nginx", "y")):
        (tmp_path / directory).mkdir()
        mains[name] = write(tmp_path / directory / "nginx.conf", conf())
        host[name] = fake_binary(tmp_path, name, "nginx version: %s/1.25.3\nconfigure arguments: "
                                 "--conf-path=%s\n" % (name, mains[name]), nginx_dump(mains[name]))
    result = run_module(lua_sandbox_verify, dict(OFFLINE))
    assert result["versions"]["name"] == "openresty" and result["config_files"] == [mains["openresty"]]
    del host["openresty"]
    result = run_module(lua_sandbox_verify, dict(OFFLINE))
    assert result["versions"]["name"] == "nginx" and result["config_files"] == [mains["nginx"]]


def test_without_a_binary_the_config_is_read_from_disk(tmp_path, run_module, no_binaries):
    (tmp_path / "conf.d").mkdir()
    write(tmp_path / "conf.d" / "dev.conf", "lua_code_cache off;\n")
    main = write(tmp_path / "nginx.conf", conf(http="    include conf.d/*.conf;"))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, config=main))
    assert result["failed"] and result["versions"] == {}
    assert [(f["rule"], f["file"], f["line"]) for f in result["findings"]] == [
        ("lua-code-cache-off", str(tmp_path / "conf.d" / "dev.conf"), 1)]


def test_nothing_to_analyse(run_module, no_binaries):
    result = run_module(lua_sandbox_verify, dict(OFFLINE))
    assert result["failed"] and "set binary, config or dump" in result["msg"]


def test_host_checks_run_by_default(tmp_path, run_module):
    root = tmp_path / "lua"
    root.mkdir()
    dump = dump_file(tmp_path, conf(replace={"lua_package_path": '"%s/?.lua;%s/missing/?.lua"' % (root, root),
                                             "lua_package_cpath": '"%s/?.so"' % root}))
    result = run_module(lua_sandbox_verify, dict(dump=dump, fail_on="none", sealed_dirs=[str(root)]))
    rules = set(f["rule"] for f in result["findings"])
    assert "lua-module-dir-missing" in rules and "lua-module-dir-not-sealed" in rules
    result = run_module(lua_sandbox_verify, dict(OFFLINE, dump=dump, fail_on="none", sealed_dirs=[str(root)]))
    assert result["findings"] == []


def fake_systemctl(tmp_path, units):
    """A systemctl that answers `cat -- UNIT` with the given text (unit file and drop-ins)."""
    for name, text in units.items():
        (tmp_path / ("%s.unit" % name)).write_text(text)
    script = tmp_path / "systemctl"
    script.write_text(u"""#!/bin/sh
[ "$1" = cat ] && [ -f {base}/"$3".unit ] && exec cat {base}/"$3".unit
echo "No files found for $3." >&2; exit 1
""".format(base=tmp_path))
    os.chmod(str(script), stat.S_IRWXU)
    return str(script)


def live_host(tmp_path, host, main_text, unit_exec_start=None):
    """A Debian-like host in tmp_path: nginx.conf, a fake nginx and a unit with a drop-in."""
    etc = tmp_path / "etc"
    etc.mkdir()
    main = write(etc / "nginx.conf", main_text)
    version_text = ("nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx "
                    "--conf-path=%s --pid-path=%s/nginx.pid\n" % (main, tmp_path))
    if unit_exec_start is not None:
        host["systemctl"] = fake_systemctl(tmp_path, {"nginx": (
            "# /lib/systemd/system/nginx.service\n[Service]\n"
            "ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'\n"
            "# /etc/systemd/system/nginx.service.d/flags.conf\n[Service]\nExecStart=\n"
            "ExecStart=%s\n" % unit_exec_start)})
    return etc, main, version_text


def test_live_reading_honours_the_units_g_include(tmp_path, run_module, host):
    etc, main, version_text = live_host(
        tmp_path, host, conf(), "/usr/sbin/nginx -g 'include %s/extra.conf; daemon on;'" % (tmp_path / "etc"))
    extra = write(etc / "extra.conf", "user root;\n")
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(extra, main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="none"))
    assert args_used(binary)[1] == ["-T", "-g", "include", "%s;" % extra, "daemon", "on;"]
    assert [(f["rule"], f["file"], f["line"]) for f in result["findings"]] == [("nginx-user-root", extra, 1)]
    assert set(result["config_files"]) == {main, extra}
    assert result["service_flags"] == {"conf": None, "prefix": None, "origin": "unit nginx",
                                       "params": "include %s; daemon on;" % extra}


def test_g_directives_are_read_first_in_the_main_context(tmp_path, run_module, host):
    _etc, main, version_text = live_host(tmp_path, host, conf(top=""), "/usr/sbin/nginx -g 'user root;'")
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="none"))
    assert [(f["rule"], f["file"], f["line"]) for f in result["findings"]] == [("nginx-user-root", "nginx -g", 1)]


def test_a_dump_that_differs_from_the_files_is_high_and_the_files_count(tmp_path, run_module, host):
    _etc, main, version_text = live_host(tmp_path, host, conf(http="    lua_code_cache off;"))
    # nginx -T shows a clean file where the one on disk turns the code cache off.
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(main).replace("lua_code_cache off;", ""))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="high"))
    assert result["failed"]
    found = [(f["rule"], f["severity"], f["file"], f["line"]) for f in result["findings"]]
    line = [n for n, text in enumerate(open(main).read().split("\n"), 1) if "lua_code_cache off" in text][0]
    assert ("lua-code-cache-off", "high", main, line) in found
    assert ("nginx-dump-mismatch", "high", main, line) in found
    mismatch = [f for f in result["findings"] if f["rule"] == "nginx-dump-mismatch"][0]
    assert "'    lua_code_cache off;'" in mismatch["message"]


def test_a_forged_marker_line_is_a_mismatch(tmp_path, run_module, host):
    _etc, main, version_text = live_host(tmp_path, host, conf())
    binary = fake_binary(tmp_path, "nginx", version_text,
                         nginx_dump(main) + "# configuration file /etc/nginx/evil.conf:\nuser root;\n\n")
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="none"))
    assert [f["rule"] for f in result["findings"]] == ["nginx-dump-mismatch"]
    assert result["config_files"] == [main]


def test_the_running_master_s_flags_win_over_the_unit(tmp_path, run_module, host):
    _etc, main, version_text = live_host(tmp_path, host, conf(top="user www-data;\npid %s/nginx.pid;" % tmp_path),
                                         "/usr/sbin/nginx -g 'daemon on;'")
    other = write(tmp_path / "etc" / "other.conf", conf(top="user root;"))
    write(tmp_path / "nginx.pid", "4242\n")
    (tmp_path / "proc" / "4242").mkdir()
    (tmp_path / "proc" / "4242" / "cmdline").write_bytes(
        b"nginx: master process /usr/sbin/nginx -c " + other.encode() + b" -g daemon on;\x00\x00")
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(other))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="none"))
    assert args_used(binary)[-1] == ["-T", "-c", other, "-g", "daemon", "on;"]
    assert [(f["rule"], f["file"]) for f in result["findings"]] == [("nginx-user-root", other)]
    assert result["service_flags"]["origin"] == "the running master"
    assert result["config_files"] == [other]


def test_without_a_unit_or_master_the_compiled_in_paths_are_read(tmp_path, run_module, host):
    _etc, main, version_text = live_host(tmp_path, host, conf())
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="low"))
    assert not result["failed"] and result["config_files"] == [main]
    assert result["service_flags"] == {"conf": None, "prefix": None, "params": None, "origin": None}


def test_a_unit_that_does_not_start_nginx_directly_is_ignored_with_a_warning(tmp_path, run_module, host, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, message: warnings.append(message))
    _etc, main, version_text = live_host(tmp_path, host, conf(), "/usr/local/bin/web-wrapper start")
    binary = fake_binary(tmp_path, "nginx", version_text, nginx_dump(main))
    result = run_module(lua_sandbox_verify, dict(OFFLINE, binary=binary, fail_on="low"))
    assert not result["failed"] and result["config_files"] == [main]
    assert result["service_flags"]["origin"] is None
    assert any("ignoring the command line of the ExecStart of nginx" in w for w in warnings), warnings
