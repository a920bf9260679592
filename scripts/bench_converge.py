"""Measure fresh-converge and no-op re-run wall time of playbooks/site.yml.

Usage: python scripts/bench_converge.py [--hosts 1 2 4] [--runs 3]
Starts N systemd containers from the local Debian 12 image, converges them with
playbooks/site.yml (fresh), converges again (no-op), removes them; repeats --runs times and
prints a Markdown table with medians and spreads. Needs the Makefile's environment
(PATH with .venv/bin, ANSIBLE_COLLECTIONS_PATH, HARDENED_SYSTEMD_COMMAND): run it as
`make bench`.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("HARDENED_IMAGE_DEBIAN12", "hardened-openresty/debian12:latest")
SYSTEMD = os.environ.get("HARDENED_SYSTEMD_COMMAND", "/lib/systemd/systemd").split()
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)", re.M)


def start(names):
    for name in names:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "--hostname", name, "--cap-add", "SYS_ADMIN",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
             "--tmpfs", "/run/lock", IMAGE] + SYSTEMD,
            check=True, stdout=subprocess.DEVNULL)
    for name in names:
        for attempt in range(30):
            state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                   capture_output=True, text=True, check=False).stdout.strip()
            if state in ("running", "degraded") or attempt == 29:
                break
            time.sleep(1)


def stop(names):
    subprocess.run(["docker", "rm", "-f"] + names, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def converge(inventory):
    began = time.monotonic()
    result = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(ROOT, "playbooks", "site.yml")],
                            capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        sys.exit("converge failed:\n" + result.stdout[-3000:] + result.stderr[-2000:])
    recap = RECAP.findall(result.stdout)
    tasks = max(int(row[1]) for row in recap)
    changed = sum(int(row[2]) for row in recap)
    return elapsed, tasks, changed


def measure(hosts, runs, forks):
    fresh, noop, tasks, noop_changed = [], [], 0, 0
    for run in range(runs):
        names = ["hardened-bench-%d-%d" % (hosts, index) for index in range(hosts)]
        stop(names)
        start(names)
        try:
            with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as handle:
                handle.write("[openresty]\n" + "\n".join(names) + "\n[openresty:vars]\n"
                             "ansible_connection=community.docker.docker\n"
                             "ansible_python_interpreter=/usr/bin/python3\n"
                             "server_apt_cache_valid_time=31536000\n")
            os.environ["ANSIBLE_FORKS"] = str(forks)
            seconds, tasks = converge(handle.name)[:2]
            fresh.append(seconds)
            seconds, noop_changed = converge(handle.name)[0::2]
            noop.append(seconds)
            print("hosts=%d run=%d fresh=%.1fs noop=%.1fs" % (hosts, run + 1, fresh[-1], noop[-1]), file=sys.stderr)
        finally:
            stop(names)
            os.unlink(handle.name)
    return fresh, noop, tasks, noop_changed


def spread(values):
    return "%.1f-%.1f" % (min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--forks", type=int, default=5)
    args = parser.parse_args()
    print("Machine: %s, %d cores, Python %s; images: %s; forks %d, pipelining off (docker connection)"
          % (platform.machine(), os.cpu_count(), platform.python_version(), IMAGE, args.forks))
    print()
    print("| hosts | tasks per host | fresh converge median (s) | spread | no-op re-run median (s) | spread | no-op changed |")
    print("|---|---|---|---|---|---|---|")
    for hosts in args.hosts:
        fresh, noop, tasks, noop_changed = measure(hosts, args.runs, args.forks)
        print("| %d | %d | %.1f | %s | %.1f | %s | %d |" % (
            hosts, tasks, statistics.median(fresh), spread(fresh), statistics.median(noop), spread(noop), noop_changed))
    print()
    print("%d runs each; reproduce with `make bench`." % args.runs)


if __name__ == "__main__":
    main()
