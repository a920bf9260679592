# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oracle's probe: runs INSIDE a throwaway container and asks the real binaries.

It reads one JSON request per line on stdin and answers one JSON line on stdout, so that
the host keeps one `docker exec -i` open for a whole run. Nothing here reads a
configuration itself: every fact comes from nginx (`-t`, `-T`, its alerts), from a
one-shot foreground nginx (a probe location prints the worker's package.path/cpath and
what a regex and a cosocket read did; /proc gives the worker user), and from the LuaJIT
inside that nginx running the inline blocks with the dangerous functions stubbed (see
stub_core.lua: every call from an inline chunk is logged with the chunk's name).

Requests:
  {"op": "setup"}                                   install stubs, answer versions
  {"op": "case", "name": N, "source": DIR, "g": G, "requests": [...], "run": bool}
  {"op": "files", "name": N, "files": {rel: base64}, "g": G, "run": bool, "urls": [...]}
Standard library only (Debian's python3 in the image).
"""

import base64
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = "/oracle/run"
PROBE_SOCKET = "/run/oracle-probe.sock"
CASE_SOCKET = "/run/oracle-case.sock"
CALL_LOG = "/run/oracle-calls.log"
CORE = "/usr/share/lua/5.1/resty/core.lua"
REAL_CORE = "/usr/share/lua/5.1/resty/oracle_real_core.lua"
LOG_LINE = re.compile(r"^(?:nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )\[(emerg|alert|crit|error|warn|notice)\] "
                      r"(?:\d+#\d+: )?(?:\*\d+ )?(.*)$")


def run(argv, timeout=20, stdin=None):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                              timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        return 124, exc.stdout or b"", (exc.stderr or b"") + b"\n[oracle] timeout"


def text(data):
    return data.decode("utf-8", "backslashreplace")


def setup():
    if not os.path.exists(REAL_CORE):
        shutil.move(CORE, REAL_CORE)
        shutil.copy(os.path.join(HERE, "stub_core.lua"), CORE)
    versions = {}
    _rc, _out, err = run(["nginx", "-V"])
    versions["nginx"] = text(err).splitlines()[0]
    for name in ("libnginx-mod-http-lua", "lua-resty-core"):
        _rc, out, _err = run(["dpkg-query", "-W", "-f=${Version}", name])
        versions[name] = text(out)
    return {"versions": versions}


def log_lines(stderr):
    found = []
    for line in text(stderr).splitlines():
        match = LOG_LINE.match(line)
        if match:
            found.append({"level": match.group(1), "message": match.group(2)})
    return found


def nginx_argv(workdir, extra, g):
    argv = ["nginx", "-p", workdir + "/", "-c", workdir + "/nginx.conf"]
    directives = (g or "") + (extra or "")
    if directives:
        argv += ["-g", directives]
    return argv


def curl(socket, url, max_time=5):
    """Ask url: a path goes to the case's unix socket, an http:// URL (loopback only) as it is."""
    where = [url] if url.startswith("http://") else ["--unix-socket", socket, "http://oracle" + url]
    rc, out, err = run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(max_time)] + where,
                       timeout=max_time + 5)
    body = text(out)
    body, _sep, code = body.rpartition("\n")
    return {"rc": rc, "status": int(code) if code.isdigit() else 0, "body": body,
            "error": text(err).strip()}


def parse_facts(body):
    facts = {}
    for line in body.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = base64.b64decode(value).decode("utf-8", "backslashreplace")
    return facts


def workers_of(master):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/status" % entry) as handle:
                status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if int(status.get("PPid", "0").strip()) == master and "worker process" in cmdline:
            uid = int(status["Uid"].split()[0])
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            found.append({"pid": int(entry), "uid": uid, "user": name})
    return found


def calls():
    found = []
    try:
        with open(CALL_LOG) as handle:
            for line in handle:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3:
                    found.append({"call": parts[0], "chunk": parts[1], "line": int(parts[2] or 0)})
    except OSError:
        pass
    return found


def stop(proc):
    """Stop a one-shot nginx (SIGTERM, then SIGKILL after 8 s); return what it wrote on stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


def start_and_probe(workdir, g, requests, read_timeout, keepalive):
    for path in (PROBE_SOCKET, CASE_SOCKET):
        if os.path.exists(path):
            os.unlink(path)
    with open(CALL_LOG, "w"):
        pass
    os.chmod(CALL_LOG, 0o666)
    argv = nginx_argv(workdir, "daemon off; pid %s/nginx.pid;" % workdir, g)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    result = {"started": False}
    t0 = time.time()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and proc.poll() is None and not os.path.exists(PROBE_SOCKET):
            time.sleep(0.01)
        if proc.poll() is not None:
            result["error"] = "nginx exited with status %d at start" % proc.returncode
            return result
        if not os.path.exists(PROBE_SOCKET):
            result["error"] = "oracle timeout: no probe socket after 30s"
            return result
        result["started"] = True
        result["t_start"] = round(time.time() - t0, 3)
        facts = curl(PROBE_SOCKET, "/oracle/facts")
        result["facts_status"] = facts["status"]
        result.update(parse_facts(facts["body"]))
        if read_timeout:
            started = time.time()
            answer = curl(PROBE_SOCKET, "/oracle/read_timeout", max_time=2.5)
            result["read_timeout"] = parse_facts(answer["body"]) if answer["status"] == 200 else {
                "elapsed": None, "waited": "%.2f" % (time.time() - started)}
        if keepalive:
            answer = curl(PROBE_SOCKET, "/oracle/keepalive", max_time=3)
            result["keepalive"] = parse_facts(answer["body"])
        result["requests"] = {}
        for url in requests or ():
            result["requests"][url] = curl(CASE_SOCKET, url)
        result["workers"] = workers_of(proc.pid)
        result["calls"] = calls()
        result["t_probed"] = round(time.time() - t0, 3)
    finally:
        err = stop(proc)
        result["t_stopped"] = round(time.time() - t0, 3)
        result["log"] = log_lines(err) + [{"level": "stderr", "message": line}
                                          for line in text(err).splitlines()
                                          if not LOG_LINE.match(line)][:20]
    return result


def check(name, workdir, g, run_it, requests, read_timeout, keepalive):
    answer = {"name": name}
    timing = answer["timing"] = {}
    started = time.time()
    # -T tests the configuration as -t does (same messages and alerts on stderr) and
    # prints the dump on stdout only when the test passed.
    rc, out, err = run(nginx_argv(workdir, "", g) + ["-T"])
    answer["accepted"] = rc == 0
    answer["test_log"] = log_lines(err)
    answer["test_stderr"] = text(err)
    if rc == 0:
        answer["dump"] = text(out)
    timing["test_dump"] = round(time.time() - started, 3)
    if rc == 0 and run_it:
        answer["runtime"] = start_and_probe(workdir, g, requests, read_timeout, keepalive)
    return answer


def apply_replacements(root, replace):
    """Put bytes a repository file should not hold (CR, for one) where a case marks them.

    The same function runs on the host (tests/oracle/harness.py) for our reading.
    """
    if not replace:
        return
    for directory, _dirs, names in os.walk(root):
        for filename in names:
            path = os.path.join(directory, filename)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            changed = data
            for marker, value in sorted(replace.items()):
                changed = changed.replace(marker.encode("utf-8"), value.encode("utf-8"))
            if changed != data:
                with open(path, "wb") as handle:
                    handle.write(changed)


def write_files(workdir, files):
    for rel, data in files.items():
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle_:
            handle_.write(base64.b64decode(data))


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return None


def handle_reload(request):
    """Start nginx with the files of `before`, ask `requests`, write the files of `after` over
    them, SIGHUP the master, wait for its new worker generation and ask again: what a reload
    really applies."""
    workdir = prepare(request["name"])
    os.makedirs(workdir)
    write_files(workdir, request["before"])
    if os.path.exists(CASE_SOCKET):
        os.unlink(CASE_SOCKET)
    proc = subprocess.Popen(nginx_argv(workdir, "daemon off; pid %s/nginx.pid;" % workdir, None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    answer = {"name": request["name"], "master": proc.pid}
    try:
        old = wait_for(lambda: os.path.exists(CASE_SOCKET) and workers_of(proc.pid), 30)
        if not old:
            answer["error"] = "nginx did not start (status %s)" % proc.poll()
            return answer
        answer["before"] = {"workers": old, "requests": dict((url, curl(CASE_SOCKET, url)) for url in request["requests"])}
        write_files(workdir, request["after"])
        proc.send_signal(signal.SIGHUP)
        old_pids = set(w["pid"] for w in old)
        new = wait_for(lambda: [w for w in workers_of(proc.pid) if w["pid"] not in old_pids]
                       if not old_pids & set(w["pid"] for w in workers_of(proc.pid)) else None, 15)
        if not new:
            answer["error"] = "no new worker generation after SIGHUP"
            return answer
        answer["after"] = {"workers": new, "master_alive": proc.poll() is None,
                           "requests": dict((url, curl(CASE_SOCKET, url)) for url in request["requests"])}
    finally:
        err = stop(proc)
        answer["log"] = log_lines(err)
    return answer


def prepare(name):
    workdir = os.path.join(RUN, name)
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    return workdir


def handle(request):
    op = request["op"]
    if op == "setup":
        return setup()
    if op == "reload":
        return handle_reload(request)
    started = time.time()
    answer = handle_case(request)
    answer["seconds"] = round(time.time() - started, 3)
    return answer


def handle_case(request):
    workdir = prepare(request["name"])
    if request["op"] == "case":
        shutil.copytree(request["source"], workdir, symlinks=True)
        apply_replacements(workdir, request.get("replace"))
    else:
        os.makedirs(workdir)
        write_files(workdir, request["files"])
    shutil.copy(os.path.join(HERE, "oracle-probe.conf"), os.path.join(workdir, "oracle-probe.conf"))
    return check(request["name"], workdir, request.get("g"), request.get("run", True),
                 request.get("requests") or request.get("urls"), request.get("read_timeout", False),
                 request.get("keepalive", False))


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as exc:  # the host must always get an answer line
            answer = {"oracle_error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
