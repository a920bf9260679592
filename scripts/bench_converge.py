"""Measure fresh-converge and no-op re-run wall time of playbooks/site.yml against a peer.

Usage: python scripts/bench_converge.py [--hosts 1 4] [--runs 3] [--peer-role DIR]
Starts N systemd containers from the local Debian 12 image, converges them with
playbooks/site.yml (fresh), converges again (no-op), removes them. With a peer role
(geerlingguy.nginx, the most used nginx role; default `.cache/peers/geerlingguy.nginx`, or
HARDENED_BENCH_PEER_ROLE), every run does the same with the peer on its own fresh
containers right after ours, so both are measured in the same run under the same load, and
the table gives the ratio of the medians (ours / peer). Repeats --runs times. With
--round-trips, one more fresh and no-op converge per role, not timed, runs with -vvv and
counts the connection's round trips to the target (each `docker exec`, put or fetch the
docker connection logs): a figure the machine's load does not move; the same converges
report where their time went, task by task (ansible.posix.profile_tasks). Pipelining is
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
# What the docker connection logs at -vvv for each command, file put or fetch on the target.
ROUND_TRIP = re.compile(r"^<[^>]+> (?:EXEC|PUT|FETCH) ", re.M)
# A task's line in profile_tasks' recap: "role : name ---- 1.23s".
TASK_TIME = re.compile(r"^(.+?) -{2,} (\d+\.\d+)s$", re.M)


def task_times(output):
    """Seconds per task name (summed over repeats) from profile_tasks' recap in output."""
    times = {}
    for name, seconds in TASK_TIME.findall(output.split("TASKS RECAP", 1)[-1]):
        name = name.split(" : ", 1)[-1]
        times[name] = times.get(name, 0.0) + float(seconds)
    return times


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


def converge(inventory, playbook=None, roles_path=None, count=False):
    """(seconds, tasks, changed, (round trips, seconds per task)); counted when count is true."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_PIPELINING", "True")
    if roles_path:
        env["ANSIBLE_ROLES_PATH"] = roles_path
    if count:
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    began = time.monotonic()
    result = subprocess.run(["ansible-playbook", "-i", inventory, playbook or os.path.join(ROOT, "playbooks", "site.yml")]
                            + (["-vvv"] if count else []),
                            capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        sys.exit("converge failed:\n" + result.stdout[-3000:] + result.stderr[-2000:])
    recap = RECAP.findall(result.stdout)
    tasks = max(int(row[1]) for row in recap)
    changed = sum(int(row[2]) for row in recap)
    return elapsed, tasks, changed, (len(ROUND_TRIP.findall(result.stdout)), task_times(result.stdout))


def measure(hosts, runs, forks, peer=None, round_trips=False):
    """Fresh and no-op times of ours (and the peer's, in the same runs), per run."""
    ours = {"fresh": [], "noop": [], "tasks": 0, "changed": 0, "trips": None}
    theirs = {"fresh": [], "noop": [], "tasks": 0, "changed": 0, "trips": None}
    for run in range(runs):
        one_run(ours, hosts, run, forks, "hardened")
        if peer:
            one_run(theirs, hosts, run, forks, "peer", *peer)
    if round_trips:
        one_run(ours, hosts, runs, forks, "hardened", count=True)
        if peer:
            one_run(theirs, hosts, runs, forks, "peer", *peer, count=True)
    return ours, theirs


def one_run(figures, hosts, run, forks, label, playbook=None, roles_path=None, count=False):
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
        if count:
            fresh, noop = (converge(handle.name, playbook, roles_path, count=True)[3] for dummy in "12")
            # Per host: every host gets the same commands.
            figures["trips"] = [fresh[0] // hosts, noop[0] // hosts]
            figures["profile"] = (fresh[1], noop[1])
            print("%s hosts=%d round trips per host: fresh=%d noop=%d" % ((label, hosts) + tuple(figures["trips"])),
                  file=sys.stderr)
            return
        seconds, figures["tasks"] = converge(handle.name, playbook, roles_path)[:2]
        figures["fresh"].append(seconds)
        seconds, figures["changed"] = converge(handle.name, playbook, roles_path)[0:3:2]
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


def print_profiles(ours, theirs, least=0.2):
    """The tasks of the counted converges that took at least `least` seconds, fresh or no-op."""
    print()
    print("| role | task | fresh (s) | no-op (s) |")
    print("|---|---|---:|---:|")
    for label, figures in (("ours", ours), ("peer", theirs)):
        if not figures.get("profile"):
            continue
        fresh, noop = figures["profile"]
        names = sorted(set(fresh) | set(noop), key=lambda name: -max(fresh.get(name, 0), noop.get(name, 0)))
        for name in names:
            if max(fresh.get(name, 0), noop.get(name, 0)) >= least:
                print("| %s | %s | %.2f | %.2f |" % (label, name, fresh.get(name, 0), noop.get(name, 0)))
        print("| %s | all tasks | %.2f | %.2f |" % (label, sum(fresh.values()), sum(noop.values())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--round-trips", action="store_true",
                        help="also count the round trips to the target of one fresh and one no-op converge (-vvv)")
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
    trips = []
    for hosts in args.hosts:
        ours, theirs = measure(hosts, args.runs, args.forks, peer, args.round_trips)
        for label, figures in (("hardened.openresty.server", ours), ("geerlingguy.nginx", theirs)):
            if figures["fresh"]:
                print("| %d | %s | %d | %.1f | %s | %.1f | %s | %d |" % (
                    hosts, label, figures["tasks"], statistics.median(figures["fresh"]), spread(figures["fresh"]),
                    statistics.median(figures["noop"]), spread(figures["noop"]), figures["changed"]))
        if theirs["fresh"]:
            print("| %d | ratio ours/peer | | %s | | %s | | |" % (
                hosts, ratio(ours["fresh"], theirs["fresh"]), ratio(ours["noop"], theirs["noop"])))
        trips.extend("| %d | %s | %d | %d |" % ((hosts, label) + tuple(figures["trips"]))
                     for label, figures in (("hardened.openresty.server", ours), ("geerlingguy.nginx", theirs))
                     if figures["trips"])
    if trips:
        print()
        print("| hosts | role | round trips to the target per host, fresh | no-op |")
        print("|---|---|---|---|")
        print("\n".join(trips))
        print_profiles(ours, theirs)
    print()
    print("%d runs each, ours and the peer alternating on fresh containers; reproduce with `make bench`." % args.runs)


if __name__ == "__main__":
    main()
