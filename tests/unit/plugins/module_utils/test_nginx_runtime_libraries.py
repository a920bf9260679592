from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_runtime

DEBIAN12_MAPS = """\
55d0c0a00000-55d0c0a2c000 r--p 00000000 00:6c 1234 /usr/sbin/nginx
7f1e00000000-7f1e00010000 r-xp 00000000 00:6c 2345 /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2
7f1e00100000-7f1e00110000 r-xp 00000000 00:6c 2346 /usr/lib/x86_64-linux-gnu/libpcre.so.3.13.3
7f1e00200000-7f1e00290000 r-xp 00000000 00:6c 2347 /usr/lib/x86_64-linux-gnu/libluajit2-5.1.so.2.1.0
7f1e00300000-7f1e00301000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""
DEBIAN13_MAPS = """\
7f1e00000000-7f1e00010000 r-xp 00000000 00:6c 2345 /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.13.0
7f1e00200000-7f1e00290000 r-xp 00000000 00:6c 2347 /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2.1.1736781742
"""


def test_debian12_lua_module_uses_pcre1_even_where_nginx_links_pcre2():
    assert nginx_runtime.libraries_from_maps(DEBIAN12_MAPS) == {
        "luajit_library": "libluajit2-5.1.so.2.1.0", "pcre": 1}


def test_debian13_links_pcre2_and_openresty_luajit():
    assert nginx_runtime.libraries_from_maps(DEBIAN13_MAPS) == {
        "luajit_library": "libluajit-5.1.so.2.1.1736781742", "pcre": 2}


def test_static_build_reveals_nothing():
    assert nginx_runtime.libraries_from_maps("55d0 r--p 0 00:6c 1 /usr/local/openresty/nginx/sbin/nginx\n") == {
        "luajit_library": None, "pcre": None}


def test_worker_libraries_reads_the_first_live_worker(tmp_path):
    (tmp_path / "stat").write_text("cpu 1 2 3\nbtime 1700000000\n")
    for pid, title, maps in ((10, "nginx: master process /usr/sbin/nginx", ""),
                             (11, "nginx: worker process is shutting down", DEBIAN13_MAPS),
                             (12, "nginx: worker process", DEBIAN12_MAPS)):
        base = tmp_path / str(pid)
        base.mkdir()
        (base / "stat").write_text("%d (nginx) S 10 %s\n" % (pid, " ".join(["0"] * 20)))
        (base / "status").write_text("Name:\tnginx\nUid:\t33\t33\t33\t33\n")
        (base / "cmdline").write_text(title + "\x00")
        (base / "maps").write_text(maps)
    assert nginx_runtime.worker_libraries(str(tmp_path))["pcre"] == 1
    os.remove(str(tmp_path / "12" / "maps"))
    assert nginx_runtime.worker_libraries(str(tmp_path)) is None


def test_stale_binary_asks_the_kernel_which_file_a_process_runs(tmp_path):
    # A copy of sleep stands in for the nginx binary: replaced on disk as a package upgrade
    # does (a new file renamed over the old one), the running process keeps the old inode.
    binary = tmp_path / "nginx"
    shutil.copy2(shutil.which("sleep"), str(binary))
    process = subprocess.Popen([str(binary), "30"])
    try:
        assert nginx_runtime.stale_binary(process.pid, str(binary)) is None
        upgrade = tmp_path / "nginx.new"
        shutil.copy2(str(binary), str(upgrade))
        os.rename(str(upgrade), str(binary))
        reason = nginx_runtime.stale_binary(process.pid, str(binary))
        assert reason is not None and "(deleted)" in reason and str(binary) in reason
        assert nginx_runtime.stale_binary(999999999, str(binary)) is None, "a process that is gone cannot be stale"
    finally:
        process.kill()
        process.wait()
