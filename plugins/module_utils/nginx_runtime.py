# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about an nginx binary and its running processes, read from `nginx -V` and /proc.

Plain functions, standard library only: modules call them on targets and pytest calls them
on fixture text and fake /proc trees.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

_VERSION = re.compile(r"nginx version: (?P<name>nginx|openresty)/(?P<version>\S+)")
_LUAJIT = re.compile(r"LuaJIT[ -](?P<version>2\.\d+\.\d+[^\s,)]*)")
_CONFIGURE_OPTION = re.compile(r"--(?P<key>[a-z-]+)(?:=(?P<value>'[^']*'|\S+))?")


def parse_version_output(text):
    """Parse the text of `nginx -V` (it prints to stderr) into a dict.

    Keys: name (nginx|openresty), version, openresty (bool), prefix, conf_path, pid_path,
    error_log_path, sbin_path, modules_path, luajit_version (or None), pcre (2 when -V names PCRE2, else None),
    configure_options (dict). Missing options are None.
    """
    facts = {
        "name": None,
        "version": None,
        "openresty": False,
        "prefix": None,
        "conf_path": None,
        "pid_path": None,
        "error_log_path": None,
        "sbin_path": None,
        "modules_path": None,
        "luajit_version": None,
        "pcre": None,
        "configure_options": {},
    }
    match = _VERSION.search(text)
    if match:
        facts["name"] = match.group("name")
        facts["version"] = match.group("version")
        facts["openresty"] = match.group("name") == "openresty"
    for line in text.splitlines():
        if line.startswith("configure arguments:"):
            for opt in _CONFIGURE_OPTION.finditer(line[len("configure arguments:"):]):
                value = opt.group("value")
                if value is not None and value.startswith("'"):
                    value = value[1:-1]
                facts["configure_options"][opt.group("key")] = value if value is not None else True
    opts = facts["configure_options"]
    for key, option in (
        ("prefix", "prefix"),
        ("conf_path", "conf-path"),
        ("pid_path", "pid-path"),
        ("error_log_path", "error-log-path"),
        ("sbin_path", "sbin-path"),
        ("modules_path", "modules-path"),
    ):
        value = opts.get(option)
        facts[key] = value if isinstance(value, str) else None
    luajit = _LUAJIT.search(text)
    if luajit:
        facts["luajit_version"] = luajit.group("version")
    # Only an explicit pcre2 path tells; "--with-pcre-jit" is printed by PCRE1 and PCRE2
    # builds alike (Debian 13 links PCRE2 without saying so).
    if "pcre2" in text.lower():
        facts["pcre"] = 2
    return facts


def _read(path):
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def boot_time(proc="/proc"):
    """Seconds since the epoch at which the machine booted (btime in /proc/stat)."""
    for line in _read(os.path.join(proc, "stat")).splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise OSError("no btime in %s/stat" % proc)


def read_process(pid, proc="/proc", clock_ticks=None):
    """Return dict(pid, ppid, uid, title, start_time, cgroup) for one process, or None if it is gone.

    title is the process's command line as shown by ps (nginx rewrites it to
    "nginx: master process ..." / "nginx: worker process"): anyone can set it, so it never
    identifies a process alone. start_time is epoch seconds; cgroup is the text of
    /proc/<pid>/cgroup ("" when unreadable).
    """
    base = os.path.join(proc, str(pid))
    try:
        stat_text = _read(os.path.join(base, "stat"))
        status_text = _read(os.path.join(base, "status"))
        cmdline = _read(os.path.join(base, "cmdline"))
    except (IOError, OSError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = stat_text[stat_text.rfind(")") + 2:].split()
    ppid = int(fields[1])
    start_ticks = int(fields[19])
    uid = None
    for line in status_text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    try:
        cgroup = _read(os.path.join(base, "cgroup"))
    except (IOError, OSError):
        cgroup = ""
    if clock_ticks is None:
        clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return {
        "pid": int(pid),
        "ppid": ppid,
        "uid": uid,
        "title": cmdline.replace("\x00", " ").strip(),
        "start_time": boot_time(proc) + start_ticks / float(clock_ticks),
        "cgroup": cgroup,
    }


def process_clock(proc="/proc"):
    """Now, on the clock read_process() reports start times on (boot time + uptime).

    A start time compared with time.time() can be off by up to a second (btime is whole
    seconds); compared with this value, only by the 10 ms resolution of /proc.
    """
    return boot_time(proc) + float(_read(os.path.join(proc, "uptime")).split()[0])


def unit_name(service):
    """The systemd unit of a service name: "nginx" -> "nginx.service"."""
    return service if "." in service else service + ".service"


def in_unit(info, service):
    """True when the process's cgroup (any hierarchy) is the unit's own or below it.

    systemd puts every process of a service, and only those, into the unit's cgroup; under
    a container with the host's cgroup namespace the path has a prefix, so the unit is
    matched as a path component.
    """
    unit = unit_name(service)
    for line in (info.get("cgroup") or "").splitlines():
        path = line.split(":", 2)[-1]
        if unit in path.split("/"):
            return True
    return False


def list_processes(proc="/proc", clock_ticks=None):
    """Return read_process() for every process whose title starts with "nginx:"."""
    found = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            # The title first: most processes are not nginx, and a reload polls this list.
            if not _read(os.path.join(proc, name, "cmdline")).startswith("nginx:"):
                continue
        except (IOError, OSError):
            continue
        info = read_process(name, proc, clock_ticks)
        if info and info["title"].startswith("nginx:"):
            found.append(info)
    return sorted(found, key=lambda item: item["pid"])


def is_master(info):
    return info["title"].startswith("nginx: master process")


def is_worker(info):
    # "nginx: worker process is shutting down" is an old generation draining.
    return info["title"].startswith("nginx: worker process")


def is_draining(info):
    return info["title"].endswith("is shutting down")


def workers_of(master_pid, processes):
    """Workers (draining ones included) whose parent is master_pid."""
    return [p for p in processes if p["ppid"] == int(master_pid) and is_worker(p)]


def serving_workers(master_pid, processes):
    """Sorted pids of master_pid's workers that are not shutting down."""
    return sorted(w["pid"] for w in workers_of(master_pid, processes) if not is_draining(w))


def stale_binary(pid, binary, proc="/proc"):
    """Why process pid does not run the file now at binary, or None when it does.

    A package upgrade replaces the binary on disk; a running master keeps the old one (its
    /proc/<pid>/exe names the file "(deleted)", or another inode) and a SIGHUP starts its new
    workers from it again: only a new master runs the new binary. None also when pid's exe
    cannot be read (gone, or not ours to read).
    """
    try:
        runs = os.readlink(os.path.join(proc, str(pid), "exe"))
    except OSError:
        return None
    if runs_file(pid, binary, proc):
        return None
    return "master %d runs %s, not the file now at %s: a reload would keep the old binary" % (pid, runs, binary)


def runs_file(pid, binary, proc="/proc"):
    """True when process pid runs the file now at binary (same device and inode), False when
    it runs another file or either cannot be read."""
    try:
        running, on_disk = os.stat(os.path.join(proc, str(pid), "exe")), os.stat(binary)
    except OSError:
        return False
    return (running.st_dev, running.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def children_of(ppid, proc="/proc", clock_ticks=None):
    """read_process() for every process whose parent is ppid, whatever its title.

    A new binary that an nginx master executes keeps its command line (not yet an
    "nginx: ..." title) until it has loaded its configuration: list_processes() would miss it.
    """
    found = []
    suffix = ") "
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            stat_text = _read(os.path.join(proc, name, "stat"))
        except (IOError, OSError):
            continue
        fields = stat_text[stat_text.rfind(suffix) + len(suffix):].split()
        if len(fields) > 1 and fields[1] == str(int(ppid)):
            info = read_process(name, proc, clock_ticks)
            if info:
                found.append(info)
    return sorted(found, key=lambda item: item["pid"])


def read_pid_file(path):
    """Return the pid in an nginx pid file, or None when it is missing or empty."""
    try:
        text = _read(path).strip()
    except (IOError, OSError):
        return None
    return int(text) if text.isdigit() else None


_LUAJIT_LIB = re.compile(r"/(libluajit[^/\s]*\.so[^/\s]*)$")


def libraries_from_maps(maps_text):
    """What a running worker really links, from the text of /proc/<pid>/maps.

    Returns dict(luajit_library, pcre): the LuaJIT shared library's file name (Debian's
    `nginx -V` does not name LuaJIT), and the PCRE flavour ngx.re uses: 1 when libpcre.so.3 is
    mapped (lua-nginx-module built against PCRE1, as on Debian 12, even where nginx itself
    links PCRE2), else 2 when libpcre2-8 is, else None. Either is None when not mapped
    (a statically linked OpenResty build, for example).
    """
    luajit = None
    has_pcre1 = has_pcre2 = False
    for line in maps_text.splitlines():
        path = line.split()[-1] if line.split() else ""
        match = _LUAJIT_LIB.search(path)
        if match:
            luajit = match.group(1)
        name = os.path.basename(path)
        if name.startswith("libpcre.so"):
            has_pcre1 = True
        elif name.startswith("libpcre2-8.so"):
            has_pcre2 = True
    return {"luajit_library": luajit, "pcre": 1 if has_pcre1 else (2 if has_pcre2 else None)}


def worker_libraries(proc="/proc"):
    """libraries_from_maps() for the first running nginx worker, or None without one."""
    for info in list_processes(proc):
        if is_worker(info) and not is_draining(info):
            try:
                return libraries_from_maps(_read(os.path.join(proc, str(info["pid"]), "maps")))
            except (IOError, OSError):
                continue
    return None


def _listening_inodes(port, proc="/proc"):
    """Inodes of the TCP sockets (IPv4 and IPv6) in LISTEN state on port, any address."""
    inodes = []
    for name in ("tcp", "tcp6"):
        try:
            lines = _read(os.path.join(proc, "net", name)).splitlines()[1:]
        except (IOError, OSError):
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == int(port):
                inodes.append(int(fields[9]))
    return inodes


def socket_inodes(pid, proc="/proc"):
    """Inodes of the sockets process pid holds open (reading another's fds needs root)."""
    found = set()
    base = os.path.join(proc, str(pid), "fd")
    try:
        names = os.listdir(base)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            found.add(int(target[len("socket:["):-1]))
    return found


def foreign_listeners(master_pid, ports, proc="/proc"):
    """Ports whose listening sockets are not all held by the nginx master, with the reason.

    What answers on such a port is not the service's workers (they inherit the master's
    listeners): a process of the worker user can bind a port nginx does not listen on and
    answer a release proof or health check. Returns {port: reason}; empty when every port
    is nginx's own.
    """
    held = socket_inodes(master_pid, proc)
    problems = {}
    for port in ports:
        inodes = _listening_inodes(port, proc)
        if not inodes:
            problems[int(port)] = "nothing listens there"
        elif not set(inodes) <= held:
            problems[int(port)] = "listened on by a socket the master does not hold"
    return problems
