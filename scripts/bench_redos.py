"""Measure what lua_regex_match_limit buys against ReDoS: request time with the role's limit vs 0.

Usage: python scripts/bench_redos.py [--distros debian12 debian13] [--runs 7] [--lengths 12 16 20 24 28]

The server role refuses server_lua_regex_match_limit 0, and the directive is http-level
only, so the contrast cannot be rendered by the role. Instead this starts one container per
distro from the local images, installs Debian's nginx with lua-nginx-module from the image's
apt cache, and runs two nginx instances there, identical but for `lua_regex_match_limit`:
10000 (the role's default) and 0 (PCRE's compiled-in 10,000,000). Each serves
ngx.re.match(subject, "^(a+)+$", opts) for a subject of n "a"s and a "!", which fails only
after exploring every way of splitting the "a"s (2^n paths). Requests are sent with curl
inside the container, on loopback; the table gives the median of --runs requests of
curl's time_total with its spread, with and without PCRE's JIT ("jo" vs "o"), and what ngx.re.match
returned. Prints a Markdown table; the containers are removed at the end.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

IMAGES = {
    "debian12": os.environ.get("HARDENED_IMAGE_DEBIAN12", "hardened-openresty/debian12:latest"),
    "debian13": os.environ.get("HARDENED_IMAGE_DEBIAN13", "hardened-openresty/debian13:latest"),
}
SYSTEMD = os.environ.get("HARDENED_SYSTEMD_COMMAND", "/lib/systemd/systemd").split()
LIMITS = {10000: 18001, 0: 18002}

CONFIG = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
include /etc/nginx/modules-enabled/*.conf;
events {{}}
http {{
    access_log off;
    lua_package_path "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua";
    lua_regex_match_limit {limit};
    server {{
        listen 127.0.0.1:{port};
        location = /redos {{
            content_by_lua_block {{
                local m, err = ngx.re.match(ngx.var.arg_s, "^(a+)+$", ngx.var.arg_opts)
                ngx.print(m and "match" or (err or "no match"))
            }}
        }}
    }}
}}
"""


def docker(*argv, **kwargs):
    result = subprocess.run(["docker"] + list(argv), capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError("docker %s failed: %s" % (" ".join(argv), (result.stderr or result.stdout).strip()))
    return result.stdout


def start_nginx_container(name, image):
    """A fresh systemd container of image with Debian's nginx and lua-nginx-module installed."""
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    docker("run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
           "--security-opt", "apparmor=unconfined", "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
           "--tmpfs", "/run", "--tmpfs", "/run/lock", image, *SYSTEMD)
    for _attempt in range(60):
        state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    docker("exec", "-e", "DEBIAN_FRONTEND=noninteractive", name, "apt-get", "install", "-y", "-q",
           "nginx", "libnginx-mod-http-lua", "lua-resty-core", "lua-resty-lrucache")


def start(name, image):
    start_nginx_container(name, image)
    # The distro's own instance is not needed; it would only compete for the CPU.
    docker("exec", name, "systemctl", "stop", "nginx")
    for limit, port in LIMITS.items():
        prefix = "/root/bench-redos/limit-%d" % limit
        docker("exec", name, "mkdir", "-p", prefix)
        docker("exec", "-i", name, "sh", "-c", "cat > %s/nginx.conf" % prefix,
               input=CONFIG.format(prefix=prefix, limit=limit, port=port))
        docker("exec", name, "nginx", "-c", prefix + "/nginx.conf")


def measure(name, port, length, opts, runs):
    """(median, min, max seconds, answer) of `runs` requests, after one warm-up (compiles the regex)."""
    url = "http://127.0.0.1:%d/redos?s=%s!&opts=%s" % (port, "a" * length, opts)
    script = "for i in $(seq %d); do curl -s -w ' %%{time_total}\\n' '%s'; done" % (runs + 1, url)
    lines = docker("exec", name, "sh", "-c", script).splitlines()[1:]
    answers = {line.rsplit(" ", 1)[0] for line in lines}
    if len(answers) != 1:
        sys.exit("%s: different answers for n=%d %s: %s" % (name, length, opts, answers))
    seconds = [float(line.rsplit(" ", 1)[1]) for line in lines]
    return statistics.median(seconds), min(seconds), max(seconds), answers.pop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--distros", nargs="+", default=sorted(IMAGES), choices=sorted(IMAGES))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lengths", type=int, nargs="+", default=[12, 16, 20, 24, 28])
    args = parser.parse_args()
    print("Machine: %s, %d cores, Python %s; one worker per nginx; median of %d requests"
          % (platform.machine(), os.cpu_count(), platform.python_version(), args.runs))
    print()
    print("| distro | n | opts | limit 10000: ms (spread) | answer | limit 0: ms (spread) | answer |")
    print("|---|---|---|---|---|---|---|")
    for distro in args.distros:
        name = "hardened-bench-redos-" + distro
        try:
            start(name, IMAGES[distro])
            for length in args.lengths:
                for opts in ("o", "jo"):
                    cells = []
                    for port in LIMITS.values():
                        median, low, high, answer = measure(name, port, length, opts, args.runs)
                        cells += ["%.1f (%.1f-%.1f)" % (median * 1000, low * 1000, high * 1000), answer]
                    print("| %s | %d | %s | %s |" % (distro, length, opts, " | ".join(cells)), flush=True)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    print()
    print("Reproduce with `python scripts/bench_redos.py --runs %d`." % args.runs)


if __name__ == "__main__":
    main()
