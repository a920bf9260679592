"""Measure nginx_reload against the physical floor of a reload, in the same run.

Usage: python scripts/bench_reload.py [--distro debian12] [--runs 7] [--before-ref 6d370c7]

Starts a systemd container from the local image, installs Debian's nginx with
lua-nginx-module from the image's apt cache (2 workers, a Lua location, an init_worker
hook) and copies two versions of the collection's reload code into it: the working tree
("after") and --before-ref ("before", default the commit before the reload was changed to
one `nginx -t` and a direct HUP). Ansible's module_utils are copied from the controller, so
the module runs in the container as Ansible runs it: one Python process per call.

Three figures per round, interleaved so that load on the machine hits them alike:
- before / after: start of the module's main() to its verdict (after: a new generation
  serving; before: old workers gone), with every path given as the server role gives them;
- floor: `kill -HUP` of the master to every new worker running (read from /proc by a
  poller started before the signal): what any reload costs at least.
Prints the medians with spreads and the ratio of each to the floor; the container is
removed at the end. Timing figures go to BENCHMARKS.md, never into tests.
"""

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time

import bench_redos

IMAGES = {
    "debian12": os.environ.get("HARDENED_IMAGE_DEBIAN12", "hardened-openresty/debian12:latest"),
    "debian13": os.environ.get("HARDENED_IMAGE_DEBIAN13", "hardened-openresty/debian13:latest"),
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The reload code of --before-ref; the working tree's side takes every module_utils file.
FILES = [
    "plugins/modules/nginx_reload.py",
    "plugins/module_utils/nginx_service.py",
    "plugins/module_utils/nginx_runtime.py",
]
SITE = """\
worker_processes 2;
"""
LUA_SITE = """\
init_worker_by_lua_block { ngx.shared.bench:set("started", ngx.now()) }
lua_shared_dict bench 1m;
server {
    listen 127.0.0.1:18080;
    location / { content_by_lua_block { ngx.say(ngx.worker.pid()) } }
}
"""
# Run in the container: runs the module of one tree as Ansible would (arguments through
# ansible's own test helper), prints its wall time and result.
HARNESS = r"""
ARGS = {"timeout": 30, "binary": "/usr/sbin/nginx", "config": "/etc/nginx/nginx.conf", "service": "nginx",
        "pid_file": "/run/nginx.pid", "error_log": "/var/log/nginx/error.log"}
import json, sys, time
sys.path.insert(0, sys.argv[1])
ARGS.update(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.openresty.plugins.modules import nginx_reload
import io, contextlib
out = io.StringIO()
# The module starts here: Python's start-up and imports cost the same before and after.
began = time.time()
try:
    with patch_module_args(ARGS), contextlib.redirect_stdout(out):
        nginx_reload.main()
except SystemExit:
    pass
result = json.loads(out.getvalue())
print(json.dumps({"wall": time.time() - began, "failed": result.get("failed", False),
                  "msg": result.get("msg", ""), "draining": len(result.get("old_workers_draining") or []),
                  "action": result.get("action"), "master": result.get("master_pid"),
                  "previous": result.get("previous_master_pid")}))
"""
# Run in the container: the floor. Records the workers, sends SIGHUP to the master, polls
# /proc until workers of the master that were not there before run (and none is draining
# from the new set), prints the seconds.
FLOOR = r"""
import os, signal, time
def children(master):
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                stat = handle.read()
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                title = handle.read().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) == master and title.startswith("nginx: worker process"):
            found[int(name)] = title
    return found
master = int(open("/run/nginx.pid").read())
old = set(children(master))
began = time.time()
os.kill(master, signal.SIGHUP)
while True:
    new = [pid for pid, title in children(master).items() if pid not in old and not title.endswith("shutting down")]
    if len(new) >= len(old):
        break
    time.sleep(0.005)
print(time.time() - began)
"""
# Run in the container: one `nginx -t` of the configuration, as the module runs it.
TEST = r"""
import subprocess, time
began = time.time()
subprocess.run(["/usr/sbin/nginx", "-t", "-c", "/etc/nginx/nginx.conf"], capture_output=True, check=True)
print(time.time() - began)
"""


def docker(*argv, **kwargs):
    result = subprocess.run(["docker"] + list(argv), capture_output=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(argv[:3]), (result.stderr or result.stdout)))
    return result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout


def git_show(ref, path):
    return subprocess.run(["git", "-C", ROOT, "show", "%s:%s" % (ref, path)], capture_output=True,
                          check=True).stdout


def tree_tar(before_ref):
    """A tar of /bench: before/ and after/ collection trees, ansible's module_utils in each."""
    import ansible.module_utils
    utils = os.path.dirname(ansible.module_utils.__file__)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for side in ("before", "after"):
            base = "bench/%s/" % side
            add(base + "ansible/__init__.py", b"")
            tar.add(utils, base + "ansible/module_utils",
                    filter=lambda t: None if "__pycache__" in t.name else t)
            coll = base + "ansible_collections/hardened/openresty/"
            for package in ("ansible_collections/", "ansible_collections/hardened/",
                            "ansible_collections/hardened/openresty/",
                            "ansible_collections/hardened/openresty/plugins/",
                            "ansible_collections/hardened/openresty/plugins/modules/",
                            "ansible_collections/hardened/openresty/plugins/module_utils/"):
                add(base + package + "__init__.py", b"")
            if side == "after":
                # Whatever the working tree's nginx_reload imports: the module and every module_utils.
                utils_dir = os.path.join(ROOT, "plugins", "module_utils")
                paths = [FILES[0]] + ["plugins/module_utils/" + n for n in sorted(os.listdir(utils_dir))
                                      if n.endswith(".py")]
                for path in paths:
                    with open(os.path.join(ROOT, path), "rb") as handle:
                        add(coll + path, handle.read())
            else:
                for path in FILES:
                    add(coll + path, git_show(before_ref, path))
        add("bench/harness.py", HARNESS.encode())
        add("bench/floor.py", FLOOR.encode())
        add("bench/test.py", TEST.encode())
    return buf.getvalue()


def start(name, image, before_ref):
    bench_redos.start_nginx_container(name, image)
    docker("exec", name, "sed", "-i", "s/^worker_processes .*/worker_processes 2;/", "/etc/nginx/nginx.conf")
    docker("exec", "-i", name, "sh", "-c", "cat > /etc/nginx/conf.d/bench.conf", input=LUA_SITE.encode())
    docker("exec", name, "systemctl", "restart", "nginx")
    docker("exec", "-i", name, "tar", "-x", "-C", "/", input=tree_tar(before_ref))


def module_run(name, side, draining=None):
    out = docker("exec", name, "python3", "/bench/harness.py", "/bench/" + side)
    result = json.loads(out.strip().splitlines()[-1])
    if result["failed"]:
        sys.exit("%s: the %s module failed: %s" % (name, side, result["msg"]))
    if draining is not None:
        draining.append(result["draining"])
    return result["wall"]


def floor_run(name, script="floor"):
    return float(docker("exec", name, "python3", "/bench/%s.py" % script).strip())


def settle(name):
    """Wait until no worker is draining, so that every round starts from the same state."""
    for _attempt in range(100):
        out = docker("exec", name, "sh", "-c", "ps -eo args | grep -c '^nginx: worker process is shutting down' || true")
        if out.strip() == "0":
            return
        time.sleep(0.1)


def cell(values):
    return "%.0f (%.0f-%.0f)" % (statistics.median(values) * 1000, min(values) * 1000, max(values) * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--distro", default="debian12", choices=sorted(IMAGES))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before-ref", default="6d370c7",
                        help="git ref of the reload code to compare with (default: before this change)")
    args = parser.parse_args()
    name = "hardened-bench-reload-" + args.distro
    figures = {"before": [], "after": [], "floor": [], "test": []}
    draining = []
    try:
        start(name, IMAGES[args.distro], args.before_ref)
        # One warm-up of each (page cache, .pyc), not counted.
        for side in ("before", "after"):
            module_run(name, side)
            settle(name)
        floor_run(name)
        settle(name)
        for _round in range(args.runs):
            for side in ("before", "after"):
                figures[side].append(module_run(name, side, draining if side == "after" else None))
                settle(name)
            figures["floor"].append(floor_run(name))
            settle(name)
            figures["test"].append(floor_run(name, "test"))
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    floor = statistics.median(figures["floor"])
    target = statistics.median(figures["test"]) + floor + 0.1
    print("Machine: %s, %d cores, Python %s; %s, 2 idle workers; median of %d rounds (spread)"
          % (platform.machine(), os.cpu_count(), platform.python_version(), args.distro, args.runs))
    print()
    print("| figure | ms, median (spread) | ratio to the floor (medians) |")
    print("|---|---|---|")
    print("| floor: `kill -HUP` to every new worker running | %s | 1.00 |" % cell(figures["floor"]))
    print("| `nginx_reload` before (%s): module start to its verdict | %s | %.2f |"
          % (args.before_ref, cell(figures["before"]), statistics.median(figures["before"]) / floor))
    print("| `nginx_reload` after: module start to a new generation serving | %s | %.2f |"
          % (cell(figures["after"]), statistics.median(figures["after"]) / floor))
    print("| one `nginx -t` (in a Python subprocess, as the module runs it) | %s | %.2f |"
          % (cell(figures["test"]), statistics.median(figures["test"]) / floor))
    print("| target: one `nginx -t` + floor + 100 ms | %.0f | %.2f |" % (target * 1000, target / floor))
    print()
    print("after / target (medians): %.2f; before / after: %.2f; old workers still draining at the verdict "
          "(after), per round: %s" % (statistics.median(figures["after"]) / target,
                                      statistics.median(figures["before"]) / statistics.median(figures["after"]),
                                      draining))
    print()
    print("Reproduce with `python scripts/bench_reload.py --runs %d`." % args.runs)


if __name__ == "__main__":
    main()
