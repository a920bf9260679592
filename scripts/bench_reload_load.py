"""A proven reload, and the restart a replaced binary needs, under 64 keep-alive clients.

Usage: python scripts/bench_reload_load.py [--distro debian12] [--runs 5]

The container of scripts/bench_reload.py (Debian's nginx with lua-nginx-module, 2 workers, a
Lua location on 127.0.0.1:18080) with this tree's nginx_reload. Per round, interleaved:
- idle: `nginx_reload` with no client;
- loaded: the same while molecule/default/files/keepalive-load.py keeps 64 HTTP/1.1
  keep-alive connections busy inside the container (loopback only), from before the module
  starts until after it ended;
- upgrade: the binary is replaced as a package upgrade does (a new file renamed over it),
  so `nginx_reload` upgrades it in place (USR2, then QUIT to the old master), under the same
  load;
- restart: the same replacement with binary_change=restart: the service restarts.
Prints the module's wall time (medians, spreads, loaded / idle in the same run) and what the
clients saw: requests, requests that raced the close of an idle connection by an old worker
(retried once, as HTTP clients do) and errors. Figures go to BENCHMARKS.md, never into tests.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import bench_reload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = os.path.join(ROOT, "molecule", "default", "files", "keepalive-load.py")
READY = "/bench/load.ready"


def loaded(name, action, seconds):
    """Run action() while 64 keep-alive clients run; return (its value, the clients' stats)."""
    bench_reload.docker("exec", name, "rm", "-f", READY)
    clients = subprocess.Popen(
        ["docker", "exec", name, "python3", "/bench/load.py", "--port", "18080", "--path", "/",
         "--longpoll-path", "/", "--connections", "64", "--seconds", str(seconds), "--ready", READY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while subprocess.run(["docker", "exec", name, "test", "-e", READY], check=False).returncode != 0:
        if time.time() > deadline or clients.poll() is not None:
            raise RuntimeError("the load clients did not start: %s" % clients.communicate()[1])
        time.sleep(0.1)
    time.sleep(0.5)
    value = action()
    out, err = clients.communicate(timeout=120)
    if clients.returncode != 0:
        raise RuntimeError("the load clients failed: %s" % err.decode())
    return value, json.loads(out.decode().strip().splitlines()[-1])


def module(name, **args):
    out = bench_reload.docker("exec", name, "python3", "/bench/harness.py", "/bench/after", json.dumps(args))
    result = json.loads(out.strip().splitlines()[-1])
    if result["failed"]:
        raise RuntimeError("nginx_reload failed: %s" % result["msg"])
    return result


def replace_binary(name):
    bench_reload.docker("exec", name, "sh", "-c", "cp -p /usr/sbin/nginx /usr/sbin/nginx.new && "
                        "mv /usr/sbin/nginx.new /usr/sbin/nginx")


def cell(values, scale=1000.0, fmt="%.0f"):
    return ("%s (%s-%s)" % (fmt, fmt, fmt)) % (statistics.median(values) * scale, min(values) * scale,
                                               max(values) * scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--distro", default="debian12", choices=sorted(bench_reload.IMAGES))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    name = "hardened-bench-reload-load-" + args.distro
    walls = {"idle": [], "loaded": [], "upgrade": [], "restart": []}
    clients = {"loaded": [], "upgrade": [], "restart": []}
    try:
        bench_reload.start(name, bench_reload.IMAGES[args.distro], "HEAD")
        with open(LOAD, "rb") as handle:
            bench_reload.docker("exec", "-i", name, "sh", "-c", "cat > /bench/load.py", input=handle.read())
        module(name)
        bench_reload.settle(name)
        for _round in range(args.runs):
            walls["idle"].append(module(name)["wall"])
            bench_reload.settle(name)
            result, stats = loaded(name, lambda: module(name), 4)
            assert result["action"] == "reloaded", result
            walls["loaded"].append(result["wall"])
            clients["loaded"].append(stats)
            bench_reload.settle(name)
            replace_binary(name)
            result, stats = loaded(name, lambda: module(name), 4)
            assert result["action"] == "upgraded" and "follows the new master" in result["msg"], result
            walls["upgrade"].append(result["wall"])
            clients["upgrade"].append(stats)
            bench_reload.settle(name)
            replace_binary(name)
            result, stats = loaded(name, lambda: module(name, binary_change="restart"), 4)
            assert result["action"] == "restarted", result
            walls["restart"].append(result["wall"])
            clients["restart"].append(stats)
            bench_reload.settle(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    print("Machine: %s, %d cores, Python %s; %s, 2 workers; median of %d rounds (spread)"
          % (platform.machine(), os.cpu_count(), platform.python_version(), args.distro, args.runs))
    print()
    print("| figure | ms, median (spread) | ratio to idle (medians) |")
    print("|---|---|---|")
    idle = statistics.median(walls["idle"])
    for key, label in (("idle", "`nginx_reload`, no client"),
                       ("loaded", "`nginx_reload` under 64 keep-alive clients"),
                       ("upgrade", "`nginx_reload` upgrading a replaced binary in place, same load"),
                       ("restart", "`nginx_reload` restarting for a replaced binary, same load")):
        print("| %s | %s | %.2f |" % (label, cell(walls[key]), statistics.median(walls[key]) / idle))
    print()
    print("| clients during | requests per round, median | raced (retried once), total | errors, total | error kinds |")
    print("|---|---|---|---|---|")
    for key in ("loaded", "upgrade", "restart"):
        runs = clients[key]
        kinds = sorted(set(error.split(" on ")[0].split(":")[0] for run in runs for error in run["errors"]))
        print("| %s | %.0f | %d | %d | %s |" % ({"loaded": "reload"}.get(key, key), statistics.median(
            [run["requests"] for run in runs]), sum(run["raced"] for run in runs),
            sum(run["error_count"] for run in runs), ", ".join(kinds) or "-"))
    print()
    print("Reproduce with `python scripts/bench_reload_load.py --runs %d`." % args.runs)


if __name__ == "__main__":
    main()
