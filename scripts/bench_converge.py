"""Measure fresh-converge and no-op re-run wall time of playbooks/site.yml against a peer.

Usage: python scripts/bench_converge.py [--hosts 1 4] [--runs 3] [--peer-role DIR]
Starts N systemd containers from the local Debian 12 image, converges them with
playbooks/site.yml (fresh), converges again (no-op), removes them. With a peer role
(geerlingguy.nginx, the most used nginx role; default `.cache/peers/geerlingguy.nginx`, or
HARDENED_BENCH_PEER_ROLE), every run does the same with the peer on its own fresh
containers right after ours, so both are measured in the same run under the same load, and
the table gives the ratio of the medians (ours / peer). Repeats --runs times. Pipelining is
on for both (community.docker's connection supports it). Needs the Makefile's environment
(PATH with .venv/bin, ANSIBLE_COLLECTIONS_PATH, HARDENED_SYSTEMD_COMMAND): `make bench`.

The peer is not shipped: install it where Ansible Galaxy is reachable with
`ansible-galaxy role install -p .cache/peers geerlingguy.nginx`.
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


PEER_PLAY = """- name: Converge with the peer role
  hosts: openresty
  become: true
  gather_facts: true
  roles:
    - role: geerlingguy.nginx
"""


def peer_setup(role_dir):
    """A playbook and a roles path that run the peer role; None when it is not installed."""
    if not role_dir or not os.path.isfile(os.path.join(role_dir, "tasks", "main.yml")):
        return None
    work = tempfile.mkdtemp(prefix="bench-peer-")
    os.makedirs(os.path.join(work, "roles"))
    os.symlink(os.path.abspath(role_dir), os.path.join(work, "roles", "geerlingguy.nginx"))
    playbook = os.path.join(work, "peer.yml")
    with open(playbook, "w") as handle:
        handle.write(PEER_PLAY)
    return playbook, os.path.join(work, "roles")


def converge(inventory, playbook=None, roles_path=None):
    env = dict(os.environ)
    env.setdefault("ANSIBLE_PIPELINING", "True")
    if roles_path:
        env["ANSIBLE_ROLES_PATH"] = roles_path
    began = time.monotonic()
    result = subprocess.run(["ansible-playbook", "-i", inventory, playbook or os.path.join(ROOT, "playbooks", "site.yml")],
                            capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        sys.exit("converge failed:\n" + result.stdout[-3000:] + result.stderr[-2000:])
    recap = RECAP.findall(result.stdout)
    tasks = max(int(row[1]) for row in recap)
    changed = sum(int(row[2]) for row in recap)
    return elapsed, tasks, changed


def measure(hosts, runs, forks, peer=None):
    """Fresh and no-op times of ours (and the peer's, in the same runs), per run."""
    ours = {"fresh": [], "noop": [], "tasks": 0, "changed": 0}
    theirs = {"fresh": [], "noop": [], "tasks": 0, "changed": 0}
    for run in range(runs):
        one_run(ours, hosts, run, forks, "hardened")
        if peer:
            one_run(theirs, hosts, run, forks, "peer", *peer)
    return ours, theirs


def one_run(figures, hosts, run, forks, label, playbook=None, roles_path=None):
    names = ["hardened-bench-%s-%d-%d" % (label, hosts, index) for index in range(hosts)]
    stop(names)
    start(names)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as handle:
            handle.write("[openresty]\n" + "\n".join(names) + "\n[openresty:vars]\n"
                         "ansible_connection=community.docker.docker\n"
                         "ansible_python_interpreter=/usr/bin/python3\n"
                         "server_apt_cache_valid_time=31536000\n")
        os.environ["ANSIBLE_FORKS"] = str(forks)
        seconds, figures["tasks"] = converge(handle.name, playbook, roles_path)[:2]
        figures["fresh"].append(seconds)
        seconds, figures["changed"] = converge(handle.name, playbook, roles_path)[0::2]
        figures["noop"].append(seconds)
        print("%s hosts=%d run=%d fresh=%.1fs noop=%.1fs" % (
            label, hosts, run + 1, figures["fresh"][-1], figures["noop"][-1]), file=sys.stderr)
    finally:
        stop(names)
        os.unlink(handle.name)


def spread(values):
    return "%.1f-%.1f" % (min(values), max(values))


def ratio(ours, theirs):
    return "%.2fx" % (statistics.median(ours) / statistics.median(theirs)) if theirs else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--peer-role", default=os.environ.get(
        "HARDENED_BENCH_PEER_ROLE", os.path.join(ROOT, ".cache", "peers", "geerlingguy.nginx")))
    args = parser.parse_args()
    peer = peer_setup(args.peer_role)
    if not peer:
        print("peer role not found at %s: measuring ours only (see the script's docstring)" % args.peer_role,
              file=sys.stderr)
    print("Machine: %s, %d cores, Python %s; images: %s; forks %d, pipelining on (docker connection)"
          % (platform.machine(), os.cpu_count(), platform.python_version(), IMAGE, args.forks))
    print()
    print("| hosts | role | tasks per host | fresh median (s) | spread | no-op median (s) | spread | no-op changed |")
    print("|---|---|---|---|---|---|---|---|")
    for hosts in args.hosts:
        ours, theirs = measure(hosts, args.runs, args.forks, peer)
        for label, figures in (("hardened.openresty.server", ours), ("geerlingguy.nginx", theirs)):
            if figures["fresh"]:
                print("| %d | %s | %d | %.1f | %s | %.1f | %s | %d |" % (
                    hosts, label, figures["tasks"], statistics.median(figures["fresh"]), spread(figures["fresh"]),
                    statistics.median(figures["noop"]), spread(figures["noop"]), figures["changed"]))
        if theirs["fresh"]:
            print("| %d | ratio ours/peer | | %s | | %s | | |" % (
                hosts, ratio(ours["fresh"], theirs["fresh"]), ratio(ours["noop"], theirs["noop"])))
    print()
    print("%d runs each, ours and the peer alternating on fresh containers; reproduce with `make bench`." % args.runs)


if __name__ == "__main__":
    main()
