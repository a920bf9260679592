from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import re
import time

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_code_loading
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_host
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.tests.unit.owner import OWNER
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.verify_cases import (
    RULE_CASES,
    conf,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "verify")
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "rules.md")
CONF_DIR = "/etc/nginx"
CONFIG_RULES = [r.id for r in lua_rules.RULES if not r.needs]
# Host rules of lua_rules_host; those of lua_rules_code_loading and lua_rules_tls have
# their own tests (test_lua_rules_code_loading.py, test_lua_rules_tls.py).
HOST_RULES = [r.id for r in lua_rules.RULES if r.needs and r.check.__module__ == lua_rules_host.__name__]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def dump_of(files):
    """An `nginx -T` style dump of files (names relative to /etc/nginx), main file first."""
    names = ["nginx.conf"] + sorted(n for n in files if n != "nginx.conf")
    parts = ["nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"]
    for name in names:
        parts.append("# configuration file %s/%s:\n%s\n" % (CONF_DIR, name, files[name]))
    return "".join(parts)


def rules_of(report):
    return dict(collections.Counter(f["rule"] for f in report["findings"]))


@pytest.mark.parametrize("item", RULE_CASES, ids=[c["id"] for c in RULE_CASES])
def test_configuration_rules(item):
    report = lua_rules.verify_dump_text(dump_of(item["files"]), policy=item["policy"],
                                        prefix=item["prefix"])
    assert rules_of(report) == item["expect"]


def test_every_configuration_rule_has_a_positive_case():
    covered = set()
    for item in RULE_CASES:
        covered.update(item["expect"])
    assert set(CONFIG_RULES) - covered == set()
    assert len(RULE_CASES) >= 40


def test_catalogue_is_complete_and_documented():
    ids = [r.id for r in lua_rules.RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set([
        "lua-package-path-missing", "lua-package-cpath-missing", "lua-package-path-relative",
        "lua-package-cpath-relative", "lua-package-path-default-fallback",
        "lua-package-cpath-default-fallback", "lua-code-cache-off", "lua-file-variable-path",
        "nginx-user-root", "lua-socket-timeout-missing", "lua-socket-timeout-too-long",
        "lua-regex-match-limit-missing", "lua-regex-match-limit-too-high", "lua-file-relative-path",
        "lua-file-outside-module-roots", "lua-dangerous-call", "lua-socket-keepalive-timeout-too-long",
        "lua-regex-cache-too-large", "lua-module-dir-missing", "lua-module-dir-writable",
        "lua-module-file-writable", "nginx-worker-root", "lua-stale-code-cache",
        "lua-module-dir-not-sealed", "nginx-dump-ambiguous", "nginx-dump-mismatch",
        # lua_rules_code_loading
        "nginx-load-module-outside-module-dir", "nginx-ssl-engine", "nginx-perl-code", "nginx-njs-code",
        "nginx-load-module-writable", "nginx-code-path-writable-by-worker",
        "lua-path-in-service-environment", "lua-path-in-master-environment",
        # lua_rules_tls
        "lua-ssl-trusted-certificate-missing", "lua-ssl-protocols-legacy", "lua-ssl-verify-depth-too-low",
        "lua-tls-verify-off", "lua-module-tls-verify-off",
    ])
    with open(DOCS) as handle:
        docs = handle.read()
    documented = re.findall(r"^## `([a-z0-9-]+)`", docs, re.M)
    assert documented == ids, "docs/rules.md lists the rules in catalogue order"
    for item in lua_rules.RULES:
        assert item.severity in lua_rules.SEVERITIES
        assert item.summary and item.rationale
        section = docs.split("## `%s`" % item.id, 1)[1].split("\n## ", 1)[0]
        assert "Severity: %s" % item.severity in section
        assert "Fix" in section and "```" in section


def test_findings_point_at_the_file_and_line_of_the_problem():
    files = {
        "nginx.conf": conf(server="        include snippets/*.conf;"),
        "snippets/app.conf": "\n".join([
            "location /app {",
            "    content_by_lua_block {",
            "        local x = 1",
            "        -- os.execute('in a comment')",
            '        os.execute("id")',
            "    }",
            "}",
            "lua_code_cache off;",
        ]),
    }
    findings = lua_rules.verify_dump_text(dump_of(files))["findings"]
    where = dict((f["rule"], (f["file"], f["line"])) for f in findings)
    assert where == {
        "lua-dangerous-call": ("/etc/nginx/snippets/app.conf", 5),
        "lua-code-cache-off": ("/etc/nginx/snippets/app.conf", 8),
    }


def test_a_file_included_twice_is_reported_once():
    files = {
        "nginx.conf": conf(server="        include dev.conf;\n        include dev.conf;"),
        "dev.conf": "lua_code_cache off;",
    }
    assert rules_of(lua_rules.verify_dump_text(dump_of(files))) == {"lua-code-cache-off": 1}


def test_findings_are_sorted_by_severity_then_place():
    files = {"nginx.conf": conf(top="user root;", drop=("lua_regex_match_limit",),
                                http="    lua_regex_cache_max_entries 5000;")}
    severities = [f["severity"] for f in lua_rules.verify_dump_text(dump_of(files))["findings"]]
    assert severities == ["high", "medium", "low"]


def test_debian_default_configuration():
    """Debian's nginx.conf with libnginx-mod-http-lua installed, as `nginx -T` printed it."""
    for release in ("debian12", "debian13"):
        versions = lua_rules.describe_versions(fixture("%s-nginx-V.txt" % release))
        report = lua_rules.verify_dump_text(fixture("%s-nginx-T.txt" % release), versions=versions,
                                            prefix=versions["prefix"])
        assert rules_of(report) == {
            "lua-package-path-missing": 1, "lua-package-cpath-missing": 1,
            "lua-socket-timeout-missing": 3, "lua-regex-match-limit-missing": 1,
            "lua-ssl-trusted-certificate-missing": 1, "lua-ssl-protocols-legacy": 1,
            "lua-ssl-verify-depth-too-low": 1,
        }
        assert set(f["file"] for f in report["findings"]) == set(["/etc/nginx/nginx.conf"])
        protocols = [f["message"] for f in report["findings"] if f["rule"] == "lua-ssl-protocols-legacy"]
        # Debian's nginx -V does not name the dynamic Lua module: its default is given as a range.
        assert "allows TLSv1 and TLSv1.1 (and SSLv3 before lua-nginx-module 0.10.25)" in protocols[0]


def test_versions_from_debian_and_openresty():
    debian = lua_rules.describe_versions(fixture("debian12-nginx-V.txt"))
    assert debian["name"] == "nginx" and debian["version"] == "1.22.1"
    assert debian["openresty"] is False and debian["lua_nginx_module"] is None
    assert debian["prefix"] == "/usr/share/nginx" and debian["pid_path"] == "/run/nginx.pid"
    # "--with-pcre-jit" does not say which PCRE: Debian 13 links PCRE2 while printing it.
    assert lua_rules.describe_versions(fixture("debian13-nginx-V.txt"))["pcre"] is None
    openresty = lua_rules.describe_versions(
        "nginx version: openresty/1.25.3.2\n"
        "built with OpenSSL 3.0.15 3 Sep 2024\n"
        "configure arguments: --prefix=/usr/local/openresty/nginx --with-cc-opt='-O2 "
        "-I/usr/local/openresty/pcre2/include' --add-module=../ngx_devel_kit-0.3.3 "
        "--add-module=../ngx_lua-0.10.27 --with-pcre-jit\n")
    assert openresty["openresty"] is True and openresty["version"] == "1.25.3.2"
    assert openresty["lua_nginx_module"] == "0.10.27" and openresty["pcre"] == 2
    assert openresty["prefix"] == "/usr/local/openresty/nginx"


def test_openresty_binary_counts_as_lua_even_without_lua_directives():
    plain = {"nginx.conf": "events {}\nhttp { server { listen 80; } }\n"}
    assert lua_rules.verify_dump_text(dump_of(plain))["findings"] == []
    report = lua_rules.verify_dump_text(dump_of(plain), versions={"openresty": True})
    assert "lua-package-path-missing" in rules_of(report)


# -- policy ---------------------------------------------------------------------------------

def test_policy_defaults_and_nginx_durations():
    policy = lua_rules.make_policy()
    assert policy["socket_connect_timeout_max"] == 5
    assert policy["socket_keepalive_timeout_max"] == 120
    assert policy["regex_match_limit_max"] == 100000
    assert "debug.*" in policy["dangerous_calls"]
    custom = lua_rules.make_policy({"socket_read_timeout_max": "1m30s", "socket_send_timeout_max": "500ms",
                                    "socket_connect_timeout_max": 3, "regex_cache_max_entries_max": "64"})
    assert custom["socket_read_timeout_max"] == 90
    assert custom["socket_send_timeout_max"] == pytest.approx(0.5)
    assert custom["socket_connect_timeout_max"] == 3
    assert custom["regex_cache_max_entries_max"] == 64


@pytest.mark.parametrize("overrides,message", [
    ({"socket_read_timeout": "5s"}, "unknown policy key 'socket_read_timeout'"),
    ({"socket_read_timeout_max": "5 seconds"}, "policy socket_read_timeout_max"),
    ({"socket_connect_timeout_max": "1s1m"}, "policy socket_connect_timeout_max"),
    ({"regex_match_limit_max": "lots"}, "policy regex_match_limit_max"),
    ({"regex_match_limit_max": True}, "policy regex_match_limit_max"),
    ({"dangerous_calls": "os.execute"}, "dangerous_calls must be a list"),
    ({"dangerous_calls": ["os.execute()"]}, "'os.execute()'"),
    ({"dangerous_calls": ["*"]}, "'*'"),
])
def test_invalid_policy_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ValueError) as err:
        lua_rules.make_policy(overrides)
    assert message in str(err.value)


def test_fail_threshold_helpers():
    findings = [{"severity": "low"}, {"severity": "high"}, {"severity": "medium"}]
    assert len(lua_rules.at_or_above(findings, "low")) == 3
    assert len(lua_rules.at_or_above(findings, "medium")) == 2
    assert lua_rules.at_or_above(findings, "high") == [{"severity": "high"}]
    assert lua_rules.summarize(findings) == {"low": 1, "medium": 1, "high": 1}


# -- host rules: filesystem -------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A tree of OWNER's (root's, when the tests run as root) with module roots lib/ and
    app/current -> releases/r1; the rules are told to trust OWNER (host_findings).

    pytest's tmp_path lives under the world-writable /tmp: ancestors above `base` are only
    reported by the test that checks exactly that.
    """
    base = tmp_path / "srv"
    (base / "lib" / "resty").mkdir(parents=True)
    (base / "app" / "releases" / "r1").mkdir(parents=True)
    os.symlink("releases/r1", str(base / "app" / "current"))
    (base / "lib" / "resty" / "util.lua").write_text(u"return {}\n")
    (base / "lib" / "README").write_text(u"notes\n")
    (base / "app" / "releases" / "r1" / "handler.lua").write_text(u"ngx.say('ok')\n")
    for directory, _dirs, files in os.walk(str(tmp_path)):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    real = sealed_tree.writable_ancestors
    monkeypatch.setattr(sealed_tree, "writable_ancestors",
                        lambda path, owner=sealed_tree.ROOT: [w for w in real(path, owner)
                                                              if w["path"].startswith(str(base))])
    real_hops = lua_rules_code_loading.resolve_hops

    def hops_in_base(path):
        hops, problem = real_hops(path)
        return [hop for hop in hops if hop[1].startswith(str(base))], problem

    monkeypatch.setattr(lua_rules_code_loading, "resolve_hops", hops_in_base)
    return base


def host_config(base, location=None):
    location = location or "content_by_lua_file %s/app/current/handler.lua;" % base
    text = conf(
        replace={"lua_package_path": '"%s/lib/?.lua;%s/app/current/?.lua"' % (base, base),
                 "lua_package_cpath": '"%s/lib/?.so"' % base},
        location=location)
    path = base / "nginx.conf"
    path.write_text(text)
    os.chmod(str(path), 0o644)
    return nginx_parser.load_tree(str(path))


def host_findings(config, **options):
    options.setdefault("check_filesystem", True)
    options.setdefault("owner", OWNER)
    report = lua_rules.evaluate(config, **options)
    return [f for f in report["findings"] if f["rule"] in HOST_RULES]


def test_sound_tree_has_no_host_findings(host):
    assert host_findings(host_config(host)) == []


def test_code_must_belong_to_root_unless_the_owner_is_given(host):
    """The owner the rules trust is root:root: as root, a directory given to uid 33 is
    reported; as anyone else, the whole tree, which is theirs."""
    if os.geteuid() == 0:
        os.chown(str(host / "lib" / "resty"), 33, 0)
    report = lua_rules.evaluate(host_config(host), check_filesystem=True)
    writable = [f for f in report["findings"] if f["rule"] == "lua-module-dir-writable"]
    assert str(host / "lib" / "resty") in [f["file"] for f in writable]
    assert all("owned by uid %d" % (33 if os.geteuid() == 0 else os.geteuid()) in f["message"] for f in writable)


def test_missing_module_root(host):
    os.rename(str(host / "lib"), str(host / "lib.old"))
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-missing", str(host / "nginx.conf"))]
    assert str(host / "lib") in findings[0]["message"]


@pytest.mark.parametrize("target,mode,reported", [
    ("lib", 0o777, "lib"),
    ("lib", 0o775, "lib"),
    ("lib/resty", 0o757, "lib/resty"),
    # A root reached through a symlink is reported by its configured path.
    ("app/releases/r1", 0o770, "app/current"),
])
def test_writable_module_directories(host, target, mode, reported):
    os.chmod(str(host / target), mode)
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-writable", str(host / reported))]
    assert "%04o" % mode in findings[0]["message"]
    if reported != target:
        assert "resolving to %s" % (host / target) in findings[0]["message"]


@needs_root
def test_module_directory_owned_by_non_root(host):
    os.chown(str(host / "lib" / "resty"), 33, 0)
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-writable", str(host / "lib" / "resty"))]
    assert "owned by uid 33" in findings[0]["message"]


def test_writable_ancestor_of_a_module_root(host):
    os.chmod(str(host / "app"), 0o777)
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-writable", str(host / "app"))]
    assert findings[0]["message"].startswith("ancestor %s of" % (host / "app"))


def test_world_writable_tmp_is_a_writable_ancestor(tmp_path):
    """Without the fixture's filter: the real /tmp (mode 1777) is an ancestor of tmp_path."""
    tmp_mode = os.stat("/tmp").st_mode & 0o777
    if not str(tmp_path).startswith("/tmp/") or not tmp_mode & 0o002:
        pytest.skip("tmp_path is not under a world-writable /tmp")
    root = tmp_path / "lua"
    root.mkdir()
    config = nginx_parser.parse_dump(conf(replace={"lua_package_path": '"%s/?.lua"' % root,
                                                   "lua_package_cpath": '"%s/?.so"' % root}))
    paths = [f["file"] for f in host_findings(config) if f["rule"] == "lua-module-dir-writable"]
    assert "/tmp" in paths


@pytest.mark.parametrize("target,reported", [
    ("lib/resty/util.lua", "lib/resty/util.lua"),
    ("app/releases/r1/handler.lua", "app/current/handler.lua"),
])
def test_writable_module_file(host, target, reported):
    os.chmod(str(host / target), 0o666)
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-file-writable", str(host / reported))]


@needs_root
def test_module_file_owned_by_non_root(host):
    os.chown(str(host / "lib" / "resty" / "util.lua"), 33, 33)
    findings = host_findings(host_config(host))
    assert [f["rule"] for f in findings] == ["lua-module-file-writable"]
    assert "owned by uid 33" in findings[0]["message"]


def test_non_module_file_in_a_root_is_not_a_module(host):
    os.chmod(str(host / "lib" / "README"), 0o666)
    assert host_findings(host_config(host)) == []


def test_symlinked_module_pointing_at_a_writable_file(host, tmp_path):
    outside = tmp_path / "elsewhere.lua"
    outside.write_text(u"return {}\n")
    os.chmod(str(outside), 0o666)
    os.symlink(str(outside), str(host / "lib" / "evil.lua"))
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-file-writable", str(host / "lib" / "evil.lua"))]


def test_every_hop_of_a_symlinked_module_is_checked(host):
    """a link whose second hop lives where the worker can re-point it."""
    swappable = host / "www"
    swappable.mkdir()
    os.chmod(str(swappable), 0o777)
    os.symlink(str(host / "lib" / "resty" / "util.lua"), str(swappable / "hop.lua"))
    os.symlink(str(swappable / "hop.lua"), str(host / "lib" / "alias.lua"))
    findings = host_findings(host_config(host))
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-writable", str(swappable))]
    assert str(host / "lib" / "alias.lua") in findings[0]["message"]


def test_lua_file_target_outside_roots_is_checked_too(host):
    (host / "extra").mkdir()
    os.chmod(str(host / "extra"), 0o777)
    (host / "extra" / "h.lua").write_text(u"ngx.say(1)\n")
    os.chmod(str(host / "extra" / "h.lua"), 0o646)
    config = host_config(host, location="content_by_lua_file %s/extra/h.lua;" % host)
    assert sorted(f["rule"] for f in host_findings(config)) == [
        "lua-module-dir-writable", "lua-module-file-writable"]


def test_debian_style_system_root_is_fine(host):
    """Like /usr/share/lua/5.1: root-owned, 0755 directories and 0644 files."""
    for path in (host / "lib", host / "lib" / "resty"):
        assert os.stat(str(path)).st_mode & 0o777 == 0o755
    assert host_findings(host_config(host)) == []


def test_filesystem_rules_are_off_with_check_filesystem_false(host):
    os.chmod(str(host / "lib"), 0o777)
    os.rename(str(host / "app"), str(host / "app.old"))
    assert host_findings(host_config(host), check_filesystem=False) == []


def test_prefix_relative_root_needs_the_prefix(host):
    text = conf(replace={"lua_package_path": '"$prefix/lib/?.lua"',
                         "lua_package_cpath": '"${prefix}lib/?.so"'})
    config = nginx_parser.parse_dump(text)
    os.chmod(str(host / "lib"), 0o777)
    unknown = lua_rules.evaluate(config, check_filesystem=True)
    assert [f for f in unknown["findings"] if f["rule"] in HOST_RULES] == []
    assert any("prefix is unknown" in w for w in unknown["warnings"])
    found = host_findings(config, prefix=str(host))
    assert [(f["rule"], f["file"]) for f in found] == [("lua-module-dir-writable", str(host / "lib"))]


def test_sealed_dirs(host):
    sealed = host / "sealed"
    (sealed / "sub").mkdir(parents=True)
    (sealed / "sub" / "m.lua").write_text(u"return 1\n")
    os.chmod(str(sealed / "sub" / "m.lua"), 0o444)
    os.chmod(str(sealed / "sub"), 0o555)
    os.chmod(str(sealed), 0o555)
    config = host_config(host)
    assert host_findings(config, sealed_dirs=[str(sealed)]) == []

    os.chmod(str(sealed / "sub" / "m.lua"), 0o644)
    findings = host_findings(config, sealed_dirs=[str(sealed), str(host / "absent")])
    assert [(f["rule"], f["file"]) for f in findings] == [
        ("lua-module-dir-not-sealed", str(host / "absent")),
        ("lua-module-dir-not-sealed", str(sealed / "sub" / "m.lua")),
    ]
    assert "mode 0644, not 0444" in findings[1]["message"]

    # The rule and the repair (sealed_tree) agree on links: one that leaves is a deviation.
    os.chmod(str(sealed / "sub" / "m.lua"), 0o444)
    os.chmod(str(sealed), 0o755)
    os.symlink(str(host / "lib" / "resty" / "util.lua"), str(sealed / "out.lua"))
    os.chmod(str(sealed), 0o555)
    findings = host_findings(config, sealed_dirs=[str(sealed)])
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-module-dir-not-sealed", str(sealed / "out.lua"))]
    assert "leaves the tree" in findings[0]["message"]


# -- host rules: processes --------------------------------------------------------------------

def process(pid, ppid, uid, title, start_time):
    return {"pid": pid, "ppid": ppid, "uid": uid, "title": title, "start_time": start_time}


def generation(started, worker_uid=33, master=100):
    return [
        process(master, 1, 0, "nginx: master process /usr/sbin/nginx", started - 60),
        process(master + 1, master, worker_uid, "nginx: worker process", started),
        process(master + 2, master, worker_uid, "nginx: worker process", started + 5),
    ]


def process_findings(config, processes, **options):
    options.setdefault("check_filesystem", False)
    options.setdefault("owner", OWNER)
    report = lua_rules.evaluate(config, check_processes=True, processes=processes, **options)
    return [f for f in report["findings"] if f["rule"] in HOST_RULES], report["warnings"]


def test_worker_running_as_root():
    config = nginx_parser.parse_dump(conf(top="user nobody;"))
    findings, _warnings = process_findings(config, generation(time.time(), worker_uid=0))
    assert [(f["rule"], f["line"]) for f in findings] == [("nginx-worker-root", 1), ("nginx-worker-root", 1)]
    assert process_findings(config, generation(time.time()))[0] == []
    report = lua_rules.evaluate(config, processes=generation(time.time(), worker_uid=0))
    assert report["findings"] == [], "check_processes is off"


def test_only_the_servers_own_workers_count(tmp_path):
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(u"100\n")
    config = nginx_parser.parse_dump(conf(top="user nobody;\npid %s;" % pid_file))
    other = generation(time.time(), worker_uid=0, master=200)
    findings, _warnings = process_findings(config, generation(time.time()) + other)
    assert findings == []
    pid_file.write_text(u"200\n")
    findings, _warnings = process_findings(config, generation(time.time()) + other)
    assert len(findings) == 2


def _age(path, seconds_ago, now, follow=True):
    stamp = now - seconds_ago
    os.utime(str(path), (stamp, stamp), follow_symlinks=follow)


@pytest.fixture
def aged_host(host):
    """Every file of the host tree last changed an hour ago; workers started 10 minutes ago."""
    now = time.time()
    config = host_config(host)
    for directory, dirs, files in os.walk(str(host)):
        for name in dirs + files:
            _age(os.path.join(directory, name), 3600, now, follow=False)
    return config, host, generation(now - 600)


def stale(aged_host):
    config, _host, processes = aged_host
    findings, warnings = process_findings(config, processes, check_filesystem=True)
    return [(f["rule"], f["file"]) for f in findings], warnings


def test_nothing_changed_since_the_workers_started(aged_host):
    assert stale(aged_host) == ([], [])


@pytest.mark.parametrize("target,reported", [
    ("lib/resty/util.lua", "lib/resty/util.lua"),
    ("app/releases/r1/handler.lua", "app/current/handler.lua"),
    ("nginx.conf", "nginx.conf"),
])
def test_file_changed_after_the_oldest_worker_started(aged_host, target, reported):
    _config, host, _processes = aged_host
    _age(host / target, 10, time.time())
    findings, _warnings = stale(aged_host)
    assert findings == [("lua-stale-code-cache", str(host / reported))]


def test_release_switch_after_the_workers_started(aged_host):
    _config, host, _processes = aged_host
    _age(host / "app" / "current", 10, time.time(), follow=False)
    findings, _warnings = stale(aged_host)
    assert findings == [("lua-stale-code-cache", str(host / "app" / "current"))]


def test_second_hop_switched_after_the_workers_started(aged_host):
    """The verifier follows every hop: re-pointing a link behind a link is a change too."""
    config, host, processes = aged_host
    (host / "links").mkdir()
    os.symlink(str(host / "lib" / "resty" / "util.lua"), str(host / "links" / "hop.lua"))
    os.symlink(str(host / "links" / "hop.lua"), str(host / "lib" / "alias.lua"))
    now = time.time()
    _age(host / "lib" / "alias.lua", 3600, now, follow=False)
    _age(host / "links" / "hop.lua", 10, now, follow=False)
    findings, _warnings = process_findings(config, processes, check_filesystem=True)
    assert [(f["rule"], f["file"]) for f in findings] == [("lua-stale-code-cache", str(host / "links" / "hop.lua"))]


def test_change_within_the_clock_slack_is_not_stale(aged_host):
    _config, host, processes = aged_host
    started = min(p["start_time"] for p in processes if "worker" in p["title"])
    stamp = started + lua_rules.CLOCK_SLACK / 2
    os.utime(str(host / "lib" / "resty" / "util.lua"), (stamp, stamp))
    assert stale(aged_host) == ([], [])


def test_draining_workers_do_not_make_code_stale(aged_host):
    config, host, processes = aged_host
    old = process(150, 100, 33, "nginx: worker process is shutting down", time.time() - 7200)
    _age(host / "lib" / "resty" / "util.lua", 1800, time.time())
    findings, _warnings = process_findings(config, processes + [old], check_filesystem=True)
    assert findings == []


def test_no_running_worker_is_a_warning(aged_host):
    config, _host, _processes = aged_host
    findings, warnings = process_findings(config, [], check_filesystem=True)
    assert findings == []
    assert any("no running nginx worker" in w for w in warnings)


def test_verify_tree_reads_g_first_and_cross_checks_with_the_dump(tmp_path):
    (tmp_path / "extra.conf").write_text("user root;\n")
    main = tmp_path / "nginx.conf"
    main.write_text(conf(top=""))
    params = "include extra.conf;"  # relative: against the main file's directory, as nginx does
    same = "".join("# configuration file %s:\n%s\n" % (path, path.read_text())
                   for path in (tmp_path / "extra.conf", main))
    report = lua_rules.verify_tree(str(main), params, dump=same)
    assert [(f["rule"], f["file"], f["line"]) for f in report["findings"]] == [
        ("nginx-user-root", str(tmp_path / "extra.conf"), 1)]
    # nginx -T printed the main file before the -g include: not what nginx does.
    swapped = "".join("# configuration file %s:\n%s\n" % (path, path.read_text())
                      for path in (main, tmp_path / "extra.conf"))
    report = lua_rules.verify_tree(str(main), params, dump=swapped)
    assert sorted((f["rule"], f["file"]) for f in report["findings"]) == [
        ("nginx-dump-mismatch", str(tmp_path / "extra.conf")),
        ("nginx-user-root", str(tmp_path / "extra.conf"))]
    # Without a dump (offline, or the gate) the cross-check rule does not run.
    assert "nginx-dump-mismatch" not in [f["rule"] for f in lua_rules.verify_tree(str(main))["findings"]]
