# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of the oracle: one throwaway container per distro, one probe process in each.

A container is started from the local image with no network (`--network none`: every
request the probe makes stays on unix sockets inside it), the packages are installed from
the .deb files in the image's apt cache, the probe and the cases are copied in once, and
`docker exec -i ... oracle_probe.py` then answers one JSON line per request. Containers
carry the label hardened.openresty.oracle=<run id> so that `make oracle` removes them
whatever happens.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
PROBE = os.path.join(HERE, "probe")
IMAGE_PREFIX = os.environ.get("HARDENED_IMAGE_PREFIX", "hardened-openresty")
DISTROS = {
    "debian12": "luajit2",
    "debian13": "luajit",
}
LABEL = "hardened.openresty.oracle"
PACKAGES = "nginx libnginx-mod-http-lua lua-resty-core"


def run_id():
    return os.environ.get("ORACLE_RUN_ID") or str(os.getpid())


def docker(*args, **kwargs):
    return subprocess.run(("docker",) + args, check=kwargs.pop("check", True), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, **kwargs)


class OracleError(Exception):
    pass


class Oracle(object):
    """The real nginx + lua-nginx-module + LuaJIT of one distro, in one container."""

    def __init__(self, distro):
        self.distro = distro
        self.image = "%s/%s:latest" % (IMAGE_PREFIX, distro)
        self.name = "hardened-oracle-%s-%s" % (distro, run_id())
        self.process = None
        self.versions = None
        self.lock = threading.Lock()

    def start(self):
        docker("rm", "-f", self.name, check=False)
        docker("run", "-d", "--name", self.name, "--label", "%s=%s" % (LABEL, run_id()),
               "--network", "none", "--tmpfs", "/run",
               # IPv6 on the loopback interface (the only one with --network none).
               "--sysctl", "net.ipv6.conf.all.disable_ipv6=0", "--sysctl", "net.ipv6.conf.lo.disable_ipv6=0",
               self.image, "sleep", "infinity")
        install = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-download %s %s"
                   " >/tmp/oracle-apt.log 2>&1 || { tail -20 /tmp/oracle-apt.log; exit 1; }"
                   % (PACKAGES, DISTROS[self.distro]))
        result = docker("exec", self.name, "bash", "-c", install, check=False)
        if result.returncode:
            raise OracleError("%s: package install failed: %s%s" % (self.distro, result.stdout, result.stderr))
        docker("exec", self.name, "mkdir", "-p", "/oracle/run")
        docker("cp", PROBE, "%s:/oracle/probe" % self.name)
        docker("cp", CASES, "%s:/oracle/cases" % self.name)
        self.process = subprocess.Popen(
            ["docker", "exec", "-i", self.name, "python3", "/oracle/probe/oracle_probe.py"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
        self.versions = self.ask({"op": "setup"})["versions"]
        return self

    def ask(self, request):
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise OracleError("%s: the probe stopped answering" % self.distro)
        answer = json.loads(line)
        if "oracle_error" in answer:
            raise OracleError("%s: %s" % (self.distro, answer["oracle_error"]))
        return answer

    def case(self, name, meta):
        request = {"op": "case", "name": name, "source": "/oracle/cases/%s" % name}
        request.update(meta)
        return self.ask(request)

    def files(self, name, files, **options):
        """Ask about a configuration given as {relative path: bytes or text}."""
        encoded = {}
        for rel, data in files.items():
            if not isinstance(data, bytes):
                data = data.encode("utf-8")
            encoded[rel] = base64.b64encode(data).decode("ascii")
        request = {"op": "files", "name": name, "files": encoded}
        request.update(options)
        return self.ask(request)

    def reload(self, name, before, after, requests):
        """Serve before ({relative path: text}), then SIGHUP the master with after written over
        it; the answers to requests (URLs on the case socket) and the workers of each generation."""
        def encode(files):
            return dict((rel, base64.b64encode(data.encode("utf-8")).decode("ascii")) for rel, data in files.items())
        return self.ask({"op": "reload", "name": name, "before": encode(before), "after": encode(after),
                         "requests": list(requests)})

    def close(self):
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        docker("rm", "-f", self.name, check=False)


def replaced(data, replace):
    """data with the case's markers (case.json "replace", e.g. {"<CR>": "\\r"}) put back."""
    for marker, value in sorted((replace or {}).items()):
        data = data.replace(marker.encode("utf-8"), value.encode("utf-8"))
    return data


def apply_replacements(root, replace):
    """Apply replaced() to every regular file under root, as the probe does in the container."""
    if not replace:
        return
    for directory, _dirs, names in os.walk(root):
        for filename in names:
            path = os.path.join(directory, filename)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            if replaced(data, replace) != data:
                with open(path, "wb") as handle:
                    handle.write(replaced(data, replace))


def case_names():
    return sorted(name for name in os.listdir(CASES)
                  if os.path.isfile(os.path.join(CASES, name, "nginx.conf")))


def case_meta(name):
    """case.json (optional): g (the -g directives), requests (paths to GET on the case socket),
    replace (markers to replace with bytes the repository should not hold, such as CR)."""
    path = os.path.join(CASES, name, "case.json")
    meta = {}
    if os.path.exists(path):
        with open(path) as handle:
            meta = json.load(handle)
    meta.pop("about", None)
    texts = []
    for root, _dirs, files in os.walk(os.path.join(CASES, name)):
        for filename in files:
            full = os.path.join(root, filename)
            if os.path.isfile(full):
                with open(full, "rb") as handle:
                    texts.append(handle.read())
    blob = b"".join(texts)
    # Measuring costs up to the read timeout itself: only for values other than the
    # cases' common 10s (which the probe would just see exceed its 2.5s cap).
    meta.setdefault("read_timeout", re.search(br"lua_socket_read_timeout\s+(?!10s;)", blob) is not None)
    meta.setdefault("keepalive", b"lua_socket_keepalive_timeout" in blob)
    return meta


def ask_all(oracle, names):
    return dict((name, oracle.case(name, case_meta(name))) for name in names)
