"""Fleet benchmarks: converge, rolling deploy, and what lua_code_cache buys.

Usage: python scripts/bench_fleet.py [--hosts 1 2 4] [--runs 3] [--deploys 3] [--rps-runs 5]
                                     [--forks 5] [--no-pipelining] [--phases converge deploy rps]
                                     [--output FILE]
1. For each host count: fresh systemd containers (local Debian 12 image) converged with
   playbooks/site.yml, then converged again (no-op); --runs times; the containers of the
   last run of the largest fleet are kept for 2 and 3. Without the converge phase, one
   fleet of the largest size is converged once (not measured) for the other phases.
2. Rolling deploy of a new release of the lua_app scenario's sample application across that
   fleet with playbooks/deploy.yml (default 25% batches): wall time, and per host the time
   from the reload to the proof that every worker runs the new release (reload-to-live),
   the reload module's own figure, and where one host's deploy time goes (pre-flight:
   upload, compile and lint, the tested config; switch; reload; proof). The first deploy (onto the empty initial release)
   is a warm-up and reported apart.
3. Requests per second on the first host with wrk (installed in the container from Debian)
   against two test-only loopback servers that run the same request handler, one with
   `lua_code_cache off;` in its location; alternated, --rps-runs times each.
Every figure is a median with its spread (min-max). Needs the Makefile's environment (PATH
with .venv/bin, ANSIBLE_COLLECTIONS_PATH, HARDENED_SYSTEMD_COMMAND): `make bench`.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import bench_converge

ROOT = bench_converge.ROOT
APP_SOURCES = [os.path.join(ROOT, "molecule", "lua_app", "files", name) for name in ("app-v1", "app-v2")]
RELOAD_TASK = "Reload nginx so that every worker starts with a fresh Lua VM"
PROOF_TASK = "Wait until every worker reports release"
BENCH_CONF = "/etc/nginx/conf.d/zz-bench-code-cache.conf"
# Where one host's deploy time goes, by the lua_app role's task names (first match wins);
# every other task (input checks, reading the layout, recording the result) is "other".
PHASES = [
    ("pre-flight: find the release on the host, send or upload the source",
     ("Look on the host for release", "staging directory", "interrupted upload", "Upload",
      "Remove the upload")),
    ("pre-flight: compile, lint, seal", ("compile every Lua file",)),
    ("pre-flight: render and test the config (nginx -t, Lua rules)", ("Render the application server",)),
    ("switch current", ("Point current atomically",)),
    ("reload", (RELOAD_TASK, "Ask every worker which release", "Decide whether nginx must reload")),
    ("proof: every worker on the release, health 200", (PROOF_TASK, "Every worker runs release",
                                                        "health path")),
]
BENCH_SERVERS = """# Test-only: the application's handler with the code cache on and off.
server {
    listen 127.0.0.1:8091;
    location / {
        content_by_lua_block { require("app").handle() }
    }
}
server {
    listen 127.0.0.1:8092;
    location / {
        lua_code_cache off;
        content_by_lua_block { require("app").handle() }
    }
}
"""


def median_spread(values, unit=""):
    return "%.2f%s" % (statistics.median(values), unit), "%.2f-%.2f" % (min(values), max(values))


def log(message):
    print(message, file=sys.stderr, flush=True)


def write_inventory(names):
    handle = tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False)
    with handle:
        handle.write("[openresty]\n" + "\n".join(names) + "\n[openresty:vars]\n"
                     "ansible_connection=community.docker.docker\n"
                     "ansible_python_interpreter=/usr/bin/python3\n"
                     "server_apt_cache_valid_time=31536000\n")
    return handle.name


def bench_converge_fleet(host_counts, runs):
    """Rows per host count; returns them and the (names, inventory) of the kept fleet."""
    rows, kept = [], None
    for hosts in host_counts:
        fresh, noop, tasks, noop_changed = [], [], 0, 0
        for run in range(runs):
            names = ["hardened-bench-%d-%d" % (hosts, index) for index in range(hosts)]
            keep = hosts == max(host_counts) and run == runs - 1
            bench_converge.stop(names)
            bench_converge.start(names)
            inventory = write_inventory(names)
            try:
                seconds, tasks, dummy, dummy = bench_converge.converge(inventory)
                fresh.append(seconds)
                seconds, dummy, noop_changed, dummy = bench_converge.converge(inventory)
                noop.append(seconds)
                log("converge hosts=%d run=%d fresh=%.1fs noop=%.1fs" % (hosts, run + 1, fresh[-1], noop[-1]))
            finally:
                if keep:
                    kept = (names, inventory)
                else:
                    bench_converge.stop(names)
                    os.unlink(inventory)
        rows.append((hosts, tasks, fresh, noop, noop_changed))
    return rows, kept


def parse_time(text):
    return datetime.datetime.fromisoformat(text.rstrip("Z"))


def phase_of(name):
    for phase, markers in PHASES:
        if any(marker in name for marker in markers):
            return phase
    return "other"


def deploy(inventory, source, version):
    """One rolling deploy; returns wall seconds and per host (reload-to-live, reload elapsed,
    seconds per phase)."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    # Other callbacks print on stdout too, which must hold nothing but the JSON.
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    extra = json.dumps({"lua_app_src": source, "lua_app_version": version})
    began = time.monotonic()
    result = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(ROOT, "playbooks", "deploy.yml"),
                             "-e", extra], capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - began
    if result.returncode != 0:
        sys.exit("deploy failed:\n" + result.stdout[-3000:] + result.stderr[-2000:])
    per_host = {}
    for play in json.loads(result.stdout)["plays"]:
        reload_task = proof_task = None
        phases = {}
        for task in play["tasks"]:
            name = task["task"]["name"]
            if any(not r.get("skipped") for r in task["hosts"].values()):
                duration = task["task"]["duration"]
                seconds = (parse_time(duration["end"]) - parse_time(duration["start"])).total_seconds()
                phases[phase_of(name)] = phases.get(phase_of(name), 0.0) + seconds
            if RELOAD_TASK in name:
                reload_task = task
            elif PROOF_TASK in name:
                proof_task = task
        if not reload_task or not proof_task:
            continue
        # 25% batches of 4 hosts: one host per batch, so task times are that host's times.
        for host, host_result in reload_task["hosts"].items():
            if host_result.get("skipped"):
                continue
            to_live = (parse_time(proof_task["task"]["duration"]["end"])
                       - parse_time(reload_task["task"]["duration"]["start"])).total_seconds()
            per_host[host] = (to_live, host_result["elapsed"], phases)
    return wall, per_host


def bench_deploys(inventory, count):
    log("deploy warm-up (first release onto the initial one)")
    warm_wall, dummy = deploy(inventory, APP_SOURCES[0], "bench-0")
    walls, to_live, reload_elapsed, per_host, phases = [], [], [], {}, {}
    for index in range(1, count + 1):
        wall, hosts = deploy(inventory, APP_SOURCES[index % 2], "bench-%d" % index)
        walls.append(wall)
        for host, (live, elapsed, seconds) in hosts.items():
            to_live.append(live)
            reload_elapsed.append(elapsed)
            per_host.setdefault(host, []).append(live)
            for phase, value in seconds.items():
                phases.setdefault(phase, []).append(value)
        log("deploy run=%d wall=%.1fs reload-to-live=%s" % (
            index, wall, ", ".join("%s %.2fs" % (h, v[0]) for h, v in sorted(hosts.items()))))
    return warm_wall, walls, to_live, reload_elapsed, per_host, phases


def docker_exec(name, *argv, **kwargs):
    """Run argv in the container; returns the CompletedProcess (never raises on failure)."""
    attach = ["-i"] if "input" in kwargs else []
    return subprocess.run(["docker", "exec"] + attach + [name] + list(argv), capture_output=True, text=True,
                          check=False, **kwargs)


def bench_code_cache(name, runs, seconds, connections):
    installed = docker_exec(name, "sh", "-c", "command -v wrk || apt-get install -y -q wrk")
    if installed.returncode != 0:
        sys.exit("could not install wrk in %s:\n%s" % (name, installed.stderr[-2000:]))
    written = docker_exec(name, "sh", "-c", "cat > %s && nginx -t -q && systemctl reload nginx" % BENCH_CONF,
                          input=BENCH_SERVERS)
    if written.returncode != 0:
        sys.exit("test servers refused:\n" + written.stderr)
    try:
        time.sleep(2)
        rates = {"on": [], "off": []}
        for port, mode in ((8091, "on"), (8092, "off")):
            body = docker_exec(name, "curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/" % port).stdout
            log("code cache %s answers: %s" % (mode, body.strip()))
        for run in range(runs):
            for port, mode in ((8091, "on"), (8092, "off")):
                out = docker_exec(name, "wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds,
                                  "http://127.0.0.1:%d/" % port).stdout
                rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
                if not rate or "Non-2xx" in out or "Socket errors" in out:
                    sys.exit("wrk saw errors:\n" + out)
                rates[mode].append(float(rate.group(1)))
                log("rps run=%d code cache %s: %.0f" % (run + 1, mode, rates[mode][-1]))
        return rates
    finally:
        docker_exec(name, "sh", "-c", "rm -f %s && systemctl reload nginx" % BENCH_CONF)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = re.search(r"^model name\s*:\s*(.+)$", handle.read(), re.M).group(1)
    except (OSError, AttributeError):
        pass
    return "%s (%s), %d cores, Python %s" % (platform.machine(), cpu, os.cpu_count(), platform.python_version())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deploys", type=int, default=3)
    parser.add_argument("--rps-runs", type=int, default=5)
    parser.add_argument("--rps-seconds", type=int, default=5)
    parser.add_argument("--rps-connections", type=int, default=16)
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--phases", nargs="+", choices=["converge", "deploy", "rps"],
                        default=["converge", "deploy", "rps"])
    parser.add_argument("--output", help="also write the Markdown tables to this file")
    args = parser.parse_args()
    os.environ["ANSIBLE_FORKS"] = str(args.forks)
    os.environ["ANSIBLE_PIPELINING"] = "False" if args.no_pipelining else "True"
    settings = "forks %d, pipelining %s, connection community.docker.docker, image %s" % (
        args.forks, "off" if args.no_pipelining else "on", bench_converge.IMAGE)
    command = "python scripts/bench_fleet.py " + " ".join(sys.argv[1:])

    began = time.monotonic()
    if "converge" in args.phases:
        rows, (names, inventory) = bench_converge_fleet(sorted(args.hosts), args.runs)
    else:
        rows, (names, inventory) = [], bench_converge_fleet([max(args.hosts)], 1)[1]
    try:
        if "deploy" in args.phases:
            deploys = bench_deploys(inventory, args.deploys)
        if "rps" in args.phases:
            rates = bench_code_cache(names[0], args.rps_runs, args.rps_seconds, args.rps_connections)
    finally:
        bench_converge.stop(names)
        os.unlink(inventory)

    out = ["Machine: %s. Settings: %s. Reproduce: `%s` (took %.0f s)." % (
        machine(), settings, command, time.monotonic() - began), ""]
    if rows:
        out += converge_table(rows, args.runs)
    if "deploy" in args.phases:
        out += deploy_table(deploys, len(names))
    if "rps" in args.phases:
        out += rps_table(rates, args)
    text = "\n".join(out) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)


def converge_table(rows, runs):
    out = ["### Converge with playbooks/site.yml (%d runs each)" % runs, "",
           "| hosts | tasks per host | fresh median (s) | spread | no-op median (s) | spread | no-op changed | no-op s per task |",
           "|---|---|---|---|---|---|---|---|"]
    for hosts, tasks, fresh, noop, noop_changed in rows:
        out.append("| %d | %d | %s | %s | %s | %s | %d | %.2f |" % (
            (hosts, tasks) + median_spread(fresh) + median_spread(noop) + (noop_changed, statistics.median(noop) / tasks)))
    return out + [""]


def deploy_table(deploys, hosts):
    warm_wall, walls, to_live, reload_elapsed, per_host, phases = deploys
    order = [phase for phase, dummy in PHASES] + ["other"]
    breakdown = ["| phase, one host's deploy (task wall times) | median (s) | spread | samples |", "|---|---|---|---|"]
    for phase in (p for p in order if p in phases):
        breakdown.append("| %s | %s | %s | %d |" % ((phase,) + median_spread(phases[phase]) + (len(phases[phase]),)))
    return ["### Rolling deploy of a new release across %d hosts (playbooks/deploy.yml, 25%% batches, %d runs)"
            % (hosts, len(walls)), "",
            "| figure | median | spread | samples |", "|---|---|---|---|",
            "| deploy wall time (s) | %s | %s | %d |" % (median_spread(walls) + (len(walls),)),
            "| reload-to-live per host (s): reload start to every worker proven on the new release | %s | %s | %d |"
            % (median_spread(to_live) + (len(to_live),)),
            "| nginx_reload elapsed per host (s): HUP to new worker generation proven | %s | %s | %d |"
            % (median_spread(reload_elapsed) + (len(reload_elapsed),)),
            "", "Warm-up deploy (first release, renders the application config): %.1f s. "
            "Reload-to-live median per host: %s." % (
                warm_wall, ", ".join("%s %.2f s" % (host, statistics.median(v)) for host, v in sorted(per_host.items()))),
            ""] + breakdown + [""]


def rps_table(rates, args):
    out = ["### Requests per second on one host, lua_code_cache on vs off (%d runs of %d s each, wrk -t1 -c%d)"
           % (args.rps_runs, args.rps_seconds, args.rps_connections), "",
           "| lua_code_cache | requests/s median | spread |", "|---|---|---|"]
    for mode in ("on", "off"):
        out.append("| %s | %.0f | %.0f-%.0f |" % (
            mode, statistics.median(rates[mode]), min(rates[mode]), max(rates[mode])))
    return out + ["", "The cache multiplies throughput by %.1f on this workload (same handler, same host, "
                  "wrk and nginx sharing the cores)." % (statistics.median(rates["on"]) / statistics.median(rates["off"])), ""]


if __name__ == "__main__":
    main()
