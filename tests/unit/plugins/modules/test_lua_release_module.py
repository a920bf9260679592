from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import scan_source, source_content
from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import ROOT, find_deviations
from ansible_collections.hardened.openresty.plugins.modules import lua_release

# What the module seals to, read before any test sets its own owner.
SEALED_TO = lua_release.OWNER


@pytest.fixture(autouse=True)
def seal_as(owner, monkeypatch):
    """The module seals releases root:root; run by another user, these tests seal as that user."""
    monkeypatch.setattr(lua_release, "OWNER", owner)
    return owner


LUAJIT = "#!/bin/sh\ncat >/dev/null\n%s\n"
LUACHECK = "#!/bin/sh\n%s\n"


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    src = tmp_path / "upload"
    src.mkdir()
    (src / "app.lua").write_text("return {}\n")
    tools = tmp_path / "bin"
    tools.mkdir()

    def tool(name, body):
        path = tools / name
        path.write_text(body)
        path.chmod(0o755)
        return str(path)

    return {
        "root": root,
        "src": src,
        "tool": tool,
        "digest": scan_source(str(src))["digest"],
    }


def args(env, **extra):
    base = dict(root=str(env["root"]), release="r1", digest=env["digest"], src=str(env["src"]))
    if "luajit" not in extra:
        base["luajit"] = env["tool"]("luajit", LUAJIT % "exit 0")
    if "luacheck" not in extra:
        base["luacheck"] = env["tool"]("luacheck", LUACHECK % "exit 0")
    base.update(extra)
    return base


def test_check_mode_reports_a_build_without_doing_it(run_module, env):
    result = run_module(lua_release, args(env), check_mode=True)
    assert result["changed"] and result["built"] and not result["failed"]
    assert os.listdir(str(env["root"] / "releases")) == []


def test_releases_are_sealed_to_root():
    assert SEALED_TO == ROOT == (0, 0)


def test_build_then_nothing_to_do(run_module, env, seal_as):
    result = run_module(lua_release, args(env))
    assert result["changed"] and result["releases"] == ["r1"]
    assert find_deviations(str(env["root"] / "releases" / "r1"), seal_as) == []
    again = run_module(lua_release, args(env), check_mode=True)
    assert not again["changed"] and not again["failed"]


def test_compile_error_refuses_with_file_and_line(run_module, env):
    luajit = env["tool"]("luajit", LUAJIT % "echo \"app.lua:3: unexpected symbol near 'end'\"; exit 1")
    result = run_module(lua_release, args(env, luajit=luajit))
    assert result["failed"] and not result["changed"]
    assert "refused in pre-flight, nothing live changed: app.lua:3: unexpected symbol near 'end' (luajit)" \
        in result["msg"]
    assert os.listdir(str(env["root"] / "releases")) == []


def test_lint_warning_refuses(run_module, env):
    luacheck = env["tool"]("luacheck", LUACHECK % "echo \"app.lua:1:1: (W111) setting non-standard global "
                                                  "variable 'x'\"; exit 1")
    result = run_module(lua_release, args(env, luacheck=luacheck))
    assert result["failed"] and "app.lua:1: setting non-standard global variable 'x' (luacheck W111)" in result["msg"]
    assert result["problems"][0]["code"] == "W111"


def test_same_id_with_other_content_is_refused(run_module, env):
    run_module(lua_release, args(env))
    (env["src"] / "app.lua").write_text("return 'new'\n")
    digest = scan_source(str(env["src"]))["digest"]
    files = scan_source(str(env["src"]))["files"]
    result = run_module(lua_release, args(env, digest=digest, files=files), check_mode=True)
    assert result["failed"] and "other content than the source (app.lua changed)" in result["msg"]


def test_switch_diff_and_prune(run_module, env):
    run_module(lua_release, args(env))
    result = run_module(lua_release, dict(root=str(env["root"]), state="current", release="r1"), diff=True)
    assert result["changed"] and result["after"] == {"current": "r1", "previous": None}
    assert result["diff"]["before"].startswith("current: (none)")
    assert "current: r1\n" in result["diff"]["after"] and "  app.lua\n" in result["diff"]["after"]
    assert not run_module(lua_release, dict(root=str(env["root"]), state="current", release="r1"))["changed"]
    pruned = run_module(lua_release, dict(root=str(env["root"]), state="pruned", keep=2))
    assert not pruned["changed"] and pruned["releases"] == ["r1"]


def test_root_without_releases_is_refused(run_module, tmp_path):
    result = run_module(lua_release, dict(root=str(tmp_path), state="pruned"))
    assert result["failed"] and "apply hardened.openresty.server" in result["msg"]


def test_bad_release_id_is_refused(run_module, env):
    result = run_module(lua_release, dict(root=str(env["root"]), state="current", release="../etc"))
    assert result["failed"] and "is not a release id" in result["msg"]


def test_a_second_deploy_fails_clearly_while_another_holds_the_lock(env, run_module, tmp_path):
    """deploys of one root are serialised; the waiter gives up, named."""
    import time
    from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import deploy_lock
    held, done = tmp_path / "held", tmp_path / "done"
    pid = os.fork()
    if pid == 0:
        try:
            with deploy_lock(str(env["root"]), timeout=5):
                held.touch()
                deadline = time.monotonic() + 10
                while not done.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while not held.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        result = run_module(lua_release, {"root": str(env["root"]), "state": "pruned", "lock_timeout": 1})
        assert result["failed"]
        assert "another deploy of %s holds the lock" % env["root"] in result["msg"]
        assert "pid %d" % pid in result["msg"]
        preview = run_module(lua_release, {"root": str(env["root"]), "state": "pruned", "lock_timeout": 1},
                             check_mode=True)
        assert not preview["failed"], "check mode waits for no lock"
    finally:
        done.touch()
        os.waitpid(pid, 0)
    assert run_module(lua_release, {"root": str(env["root"]), "state": "pruned"})["failed"] is False


def sent_args(env, content, **extra):
    built = args(env, content=content, **extra)
    del built["src"]
    return built


def test_a_source_sent_with_the_call_builds_the_same_release_as_its_upload(run_module, env, seal_as):
    (env["src"] / "lib").mkdir()
    (env["src"] / "lib" / "util.lua").write_bytes(b"return '\xc3\xa9\x00'\n")
    digest = scan_source(str(env["src"]))["digest"]
    content = source_content(str(env["src"]), 1024)
    assert sorted(content) == ["app.lua", "lib/util.lua"]

    result = run_module(lua_release, sent_args(env, content, digest=digest))
    assert result["changed"] and result["built"] and result["releases"] == ["r1"]
    release = env["root"] / "releases" / "r1"
    assert (release / "lib" / "util.lua").read_bytes() == b"return '\xc3\xa9\x00'\n"
    assert find_deviations(str(release), seal_as) == []
    # The upload of the same tree is the same release: nothing to do.
    assert run_module(lua_release, args(env, digest=digest), check_mode=True)["changed"] is False


def test_sent_content_that_does_not_match_the_digest_is_refused_and_nothing_is_built(run_module, env):
    content = source_content(str(env["src"]), 1024)
    content["app.lua"] = base64.b64encode(b"return 'other'\n").decode("ascii")
    result = run_module(lua_release, sent_args(env, content))
    assert result["failed"] and "has digest" in result["msg"] and "refusing to build release r1" in result["msg"]
    assert os.listdir(str(env["root"] / "releases")) == []


@pytest.mark.parametrize("name, message", [
    ("../escape.lua", "a relative path without empty, '.' or '..' parts is required"),
    ("/etc/app.lua", "a relative path without empty, '.' or '..' parts is required"),
    ("a//b.lua", "a relative path without empty, '.' or '..' parts is required"),
    ("bad\nname.lua", "control character"),
    ("hardened_release.lua", "reserved"),
])
def test_sent_content_with_a_bad_path_is_refused_before_anything_is_written(run_module, env, name, message):
    content = {name: base64.b64encode(b"return 1\n").decode("ascii")}
    result = run_module(lua_release, sent_args(env, content))
    assert result["failed"] and "the source sent with the call is refused" in result["msg"] and message in result["msg"]
    assert os.listdir(str(env["root"] / "releases")) == []


def test_src_and_content_together_are_refused(run_module, env):
    result = run_module(lua_release, args(env, content={"app.lua": "cmV0dXJuIHt9Cg=="}))
    assert result["failed"] and "mutually exclusive" in result["msg"]
