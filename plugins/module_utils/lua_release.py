# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lua application releases: content digest, pre-flight checks, atomic switch, pruning.

Layout under an application root:

    <root>/releases/<id>/      one directory per release, written once, then sealed
    <root>/current -> releases/<id>    what lua_package_path loads (switched atomically)
    <root>/previous -> releases/<id>   what a rollback goes back to
    <root>/.deploy.lock                one deploy at a time (flock), root:root 0444
    <root>/releases/.partial-<id>-<pid>/   a build in progress, flock'ed by its builder

The digest of a source tree is the SHA-256 of `sha256sum`-style lines ("<hex>  <path>\\n"),
one per regular file, sorted by path (byte order). The same function runs on the controller
(to name the release and to refuse bad sources before any host changes) and on the target
(to check the upload and an existing release), so both sides always agree.

Plain functions, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import tarfile
import time

# Written into every release by the role; the source must not bring its own.
RELEASE_MODULE = "hardened_release.lua"
RELEASES = "releases"
CURRENT = "current"
PREVIOUS = "previous"
PARTIAL_PREFIX = ".partial-"
LOCK_FILE = ".deploy.lock"
LOCK_POLL = 0.1
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Control characters and backslashes would make the digest lines ambiguous.
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]")
_CHUNK = 65536

# Compiles every file named on stdin with loadfile() (the parser nginx's require uses) and
# prints LuaJIT's own message for each failure: "<file>:<line>: <message>".
LUAJIT_CHECK = (
    "local failed = false "
    "for path in io.lines() do "
    "  if path ~= '' then "
    "    local chunk, err = loadfile(path) "
    "    if not chunk then io.stdout:write(err, '\\n') failed = true end "
    "  end "
    "end "
    "os.exit(failed and 1 or 0)"
)

# Used when the caller passes no luacheck configuration.
DEFAULT_LUACHECK_CONFIG = 'std = "ngx_lua"\n'


class ReleaseError(Exception):
    """A release operation that cannot be carried out safely; the message says why."""


def release_id_errors(value, name="release"):
    """Messages (at most one) for a release id that cannot be a directory name in releases/."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        return ["%s: %r is not a release id (1-64 characters of A-Z a-z 0-9 . _ -, not starting "
                "with '.'; no '/' and no '..')" % (name, value)]
    if ".." in value:
        return ["%s: %r contains '..'" % (name, value)]
    return []


def module_path_candidates(module):
    """The files a Lua module name resolves to through '?.lua;?/init.lua' path entries."""
    base = module.replace(".", "/")
    return [base + ".lua", base + "/init.lua"]


def _file_sha256(handle):
    digest = hashlib.sha256()
    while True:
        block = handle.read(_CHUNK)
        if not block:
            return digest.hexdigest()
        digest.update(block)


def digest_of(files):
    """Digest of a list of dict(path, sha256): sha256 of sorted "<sha256>  <path>\\n" lines."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f["path"].encode("utf-8")):
        digest.update(("%s  %s\n" % (item["sha256"], item["path"])).encode("utf-8"))
    return digest.hexdigest()


def _name_problem(rel):
    if _BAD_NAME.search(rel):
        return "%r: the name contains a control character or a backslash" % rel
    if rel == RELEASE_MODULE:
        return "%r: this name is reserved for the file the role writes into every release" % rel
    return None


def _scan_directory(top):
    files = []
    problems = []
    real_top = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue
            problem = _name_problem(rel)
            if problem:
                problems.append(problem)
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                if not (target + "/").startswith(real_top.rstrip("/") + "/"):
                    problems.append("%r is a symlink that points outside the tree (to %s)" % (rel, target))
                    continue
                if not os.path.exists(path):
                    problems.append("%r is a broken symlink" % rel)
                    continue
                if not os.path.isfile(path):
                    # os.walk does not descend into it either: a linked directory is refused.
                    problems.append("%r is a symlink to something that is not a regular file; only "
                                    "symlinks to regular files inside the tree are allowed" % rel)
                    continue
            elif not stat.S_ISREG(st.st_mode):
                problems.append("%r is not a regular file (device, fifo or socket)" % rel)
                continue
            with open(path, "rb") as handle:
                files.append({"path": rel, "sha256": _file_sha256(handle), "size": os.path.getsize(path)})
    return files, problems


def _scan_archive(path):
    files = []
    problems = []
    seen = set()
    try:
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                rel = member.name
                while rel.startswith("./"):
                    rel = rel[2:]
                rel = rel.rstrip("/")
                if not rel or rel == ".":
                    continue
                if rel.startswith("/") or ".." in rel.split("/"):
                    problems.append("%r: absolute paths and '..' are not allowed in the archive" % member.name)
                    continue
                if member.isdir():
                    continue
                problem = _name_problem(rel)
                if problem:
                    problems.append(problem)
                    continue
                if not member.isreg():
                    problems.append("%r is not a regular file (symlink, hard link or device)" % member.name)
                    continue
                if rel in seen:
                    problems.append("%r appears twice in the archive" % member.name)
                    continue
                seen.add(rel)
                handle = archive.extractfile(member)
                files.append({"path": rel, "sha256": _file_sha256(handle), "size": member.size})
    except (tarfile.TarError, IOError, OSError) as exc:
        problems.append("cannot be read as a tar archive: %s" % exc)
    return files, problems


def scan_source(path):
    """Read a source tree (directory or .tar/.tar.gz/.tgz) for shipping.

    Returns dict(kind, files (sorted list of dict(path, sha256, size)), digest, problems).
    Symlinks to regular files inside a directory tree are followed (they are shipped as
    files); everything else that is not a regular file is a problem. digest is None when
    there are problems or no files.
    """
    if not isinstance(path, str) or not path:
        return {"kind": None, "files": [], "digest": None, "problems": ["is not set"]}
    if not os.path.isabs(path):
        return {"kind": None, "files": [], "digest": None,
                "problems": ["is not an absolute path on the controller"]}
    if os.path.isdir(path):
        kind = "directory"
        files, problems = _scan_directory(path)
    elif os.path.isfile(path) and path.endswith(ARCHIVE_SUFFIXES):
        kind = "archive"
        files, problems = _scan_archive(path)
    elif not os.path.exists(path):
        return {"kind": None, "files": [], "digest": None, "problems": ["does not exist"]}
    else:
        return {"kind": None, "files": [], "digest": None,
                "problems": ["is neither a directory nor a %s archive" % "/".join(ARCHIVE_SUFFIXES)]}
    if not files and not problems:
        problems.append("contains no files")
    files.sort(key=lambda f: f["path"].encode("utf-8"))
    return {"kind": kind, "files": files, "problems": problems,
            "digest": None if problems else digest_of(files)}


def source_content(path, limit):
    """The files of the source directory path as {relative path: base64 of the bytes}, when
    their sizes add up to at most limit bytes; None for an archive, a larger tree or a source
    with problems (scan_source() names them). The controller sends this with the build call
    instead of uploading the tree; the build checks it against the manifest's digest."""
    source = scan_source(path)
    if source["problems"] or source["kind"] != "directory" or sum(f["size"] for f in source["files"]) > limit:
        return None
    content = {}
    for item in source["files"]:
        with open(os.path.join(path, item["path"]), "rb") as handle:
            content[item["path"]] = base64.b64encode(handle.read()).decode("ascii")
    return content


def content_problems(content):
    """Why content ({relative path: base64}) cannot be written out as a source tree: []."""
    problems = []
    for rel in sorted(content):
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
            problems.append("%r: a relative path without empty, '.' or '..' parts is required" % rel)
            continue
        problem = _name_problem(rel)
        if problem:
            problems.append(problem)
            continue
        try:
            base64.b64decode(content[rel], validate=True)
        except (TypeError, ValueError, binascii.Error):
            problems.append("%r: the content is not base64" % rel)
    directories = set()
    for rel in content:
        parts = rel.split("/")[:-1]
        directories.update("/".join(parts[:index]) for index in range(1, len(parts) + 1))
    problems += ["%r: is a file and a directory at once" % rel for rel in sorted(directories.intersection(content))]
    return problems


def write_source(content, top):
    """Write content ({relative path: base64}) into the empty directory top, which only its
    owner can enter (tempfile.mkdtemp): directories 0700, files 0600, none replaced."""
    problems = content_problems(content)
    if problems:
        raise ReleaseError("the source sent with the call is refused: %s" % "; ".join(problems))
    for rel in sorted(content):
        parent = os.path.dirname(os.path.join(top, rel))
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        fd = os.open(os.path.join(top, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(content[rel]))


def tree_files(directory, exclude=()):
    """Regular files of a release or an upload on the target, as dict(path, sha256, size).

    Anything else (symlinks included: an upload has them dereferenced) raises ReleaseError.
    """
    files = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, directory)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ReleaseError("%s is not a regular file" % path)
            if rel in exclude:
                continue
            with open(path, "rb") as handle:
                files.append({"path": rel, "sha256": _file_sha256(handle), "size": st.st_size})
    files.sort(key=lambda f: f["path"].encode("utf-8"))
    return files


def _releases_dir(root):
    return os.path.join(root, RELEASES)


def release_dir(root, release):
    errors = release_id_errors(release)
    if errors:
        raise ReleaseError(errors[0])
    return os.path.join(root, RELEASES, release)


def read_link(root, name):
    """The release id a <root>/<name> symlink points at, or None when there is no link.

    Raises ReleaseError when <root>/<name> exists but is not a link into releases/.
    """
    path = os.path.join(root, name)
    try:
        target = os.readlink(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.EINVAL:
            raise ReleaseError("%s exists and is not a symlink; refusing to replace it" % path)
        raise
    parts = os.path.normpath(target).split("/")
    if len(parts) != 2 or parts[0] != RELEASES or release_id_errors(parts[1]):
        raise ReleaseError("%s points at %s, not at releases/<id>; refusing to replace it" % (path, target))
    return parts[1]


def _link_atomic(root, name, release):
    """Point <root>/<name> at releases/<release>: a new symlink renamed over the old one."""
    path = os.path.join(root, name)
    tmp = os.path.join(root, ".%s.%d.%s" % (name, os.getpid(), hashlib.sha1(os.urandom(8)).hexdigest()[:8]))
    os.symlink(os.path.join(RELEASES, release), tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _unlink(root, name):
    try:
        os.unlink(os.path.join(root, name))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def inspect(root, release, digest):
    """State of a release on the target: dict(exists, matches, files).

    matches says whether the release's files (without the generated RELEASE_MODULE) have
    the expected digest; a release that exists and does not match was changed after it
    was built, or another source was deployed under the same id.
    """
    path = release_dir(root, release)
    if not os.path.lexists(path):
        return {"exists": False, "matches": False, "files": []}
    if os.path.islink(path) or not os.path.isdir(path):
        raise ReleaseError("%s is not a directory" % path)
    files = tree_files(path, exclude=(RELEASE_MODULE,))
    return {"exists": True, "matches": digest_of(files) == digest, "files": files}


_LUAJIT_MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$")
_LUACHECK_MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+)(?:-\d+)?: "
                               r"(?:\((?P<code>[EW]\d+)\) )?(?P<message>.*)$")


def _problem(tool, message, file=None, line=None, column=None, code=None):
    return {"file": file, "line": line, "column": column, "code": code, "message": message, "tool": tool}


def _problems(output, tool, pattern, prefix=None, skip=()):
    """One problem per non-empty line of a tool's output (less prefix, lines starting with skip
    left out): file, line, column and code where pattern reads them, else the line as message."""
    problems = []
    for text in output.splitlines():
        text = text.strip()
        if not text or text.startswith(skip):
            continue
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
        match = pattern.match(text)
        if match is None:
            problems.append(_problem(tool, text))
            continue
        found = match.groupdict()
        column = found.get("column")
        problems.append(_problem(tool, found["message"], found["file"], int(found["line"]),
                                 int(column) if column else None, found.get("code")))
    return problems


def problems_from_luajit(output):
    """Parse LuaJIT messages ("file:line: message") into dict(file, line, message, tool)."""
    return _problems(output, "luajit", _LUAJIT_MESSAGE, prefix="luajit: ")


def problems_from_luacheck(output):
    """Parse luacheck's plain formatter with --codes ("file:line:col: (W111) message")."""
    return _problems(output, "luacheck", _LUACHECK_MESSAGE, skip=("Total:", "Checking "))


def format_problem(problem):
    where = problem["file"] or ""
    if problem["line"] is not None:
        where += ":%d" % problem["line"]
    code = " %s" % problem["code"] if problem.get("code") else ""
    return "%s: %s (%s%s)" % (where, problem["message"], problem["tool"], code) if where else \
        "%s (%s)" % (problem["message"], problem["tool"])


def preflight(directory, lua_files, run, luajit, luacheck=None, luacheck_config_path=None):
    """Compile every Lua file with luajit, then lint with luacheck when it is given.

    run(argv, data=None, cwd=None) returns (rc, stdout, stderr). Paths are relative to
    directory, so messages name files as the release does. Returns a list of problems.
    """
    if not lua_files:
        return []
    rc, out, err = run([luajit, "-e", LUAJIT_CHECK], data="\n".join(lua_files), cwd=directory)
    if rc != 0:
        problems = problems_from_luajit((out or "") + (err or ""))
        return problems or [_problem("luajit", "%s exited with %d" % (luajit, rc))]
    if not luacheck:
        return []
    argv = [luacheck, "--formatter", "plain", "--codes", "--no-color", "--no-cache"]
    if luacheck_config_path:
        argv += ["--config", luacheck_config_path]
    rc, out, err = run(argv + ["--"] + list(lua_files), cwd=directory)
    if rc == 0:
        return []
    problems = problems_from_luacheck(out or "")
    if err and err.strip():
        problems += problems_from_luacheck(err)
    return problems or [_problem("luacheck", "%s exited with %d" % (luacheck, rc))]


def _copy_tree(src, dest, files):
    for item in files:
        target = os.path.join(dest, item["path"])
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        shutil.copyfile(os.path.join(src, item["path"]), target)


def release_module_source(release):
    """The module written into every release as RELEASE_MODULE.

    Loaded through lua_package_path (so through `current`) in a worker's fresh Lua VM, its
    init_worker() records which release and pid that worker runs: the proof that a reload
    flushed the code cache. The dict and its keys come from hardened_names, which
    hardened.openresty.server installs in the first module root for its own helpers.
    """
    return ('-- Written by hardened.openresty.lua_app: the release this directory holds.\n'
            '-- init_worker() records the release and pid of the worker that loaded it.\n'
            'local names = require("hardened_names")\n'
            '\n'
            'local _M = { id = "%s" }\n'
            '\n'
            'function _M.init_worker(err)\n'
            '    local dict, worker = ngx.shared[names.release_dict], ngx.worker.id()\n'
            '    if not dict or not worker then\n'
            '        return\n'
            '    end\n'
            '    dict:set(names.release_worker_key .. worker, _M.id)\n'
            '    dict:set(names.release_pid_key .. worker, ngx.worker.pid())\n'
            '    dict:set(names.release_error_key .. worker, err or "")\n'
            'end\n'
            '\n'
            'return _M\n' % release)


def _try_flock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


@contextlib.contextmanager
def deploy_lock(root, timeout):
    """Hold the deploy lock of an application root: one build, switch or prune at a time.

    The lock is flock(2) on <root>/LOCK_FILE, a root-owned (the caller's uid) 0444 regular
    file opened without following links, so the sealed-tree rules accept it. A second
    deploy waits up to `timeout` seconds, then raises ReleaseError naming the holder. The
    kernel drops the lock when its holder dies, so an interrupted run never blocks the next.
    """
    path = os.path.join(root, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o444)
    except OSError as exc:
        raise ReleaseError("cannot open the deploy lock %s: %s (it must be a regular file owned by root)"
                           % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise ReleaseError("the deploy lock %s is not a regular file owned by uid %d; refusing to use it"
                               % (path, os.geteuid()))
        if st.st_gid != os.getegid() or stat.S_IMODE(st.st_mode) != 0o444:
            os.fchown(fd, os.geteuid(), os.getegid())
            os.fchmod(fd, 0o444)
        began = time.monotonic()
        while not _try_flock(fd):
            waited = time.monotonic() - began
            if waited >= timeout:
                raise ReleaseError("another deploy of %s holds the lock %s (%s); waited %.1fs, giving up: "
                                   "run one deploy per host at a time, or raise lock_timeout"
                                   % (root, path, _lock_holders(st) or "holder unknown", timeout))
            time.sleep(min(LOCK_POLL, max(timeout - waited, 0.01)))
        yield
    finally:
        os.close(fd)


def _lock_holders(st):
    """"pid N, ..." of the processes holding flock locks on the inode st, from /proc/locks."""
    pids = []
    try:
        with open("/proc/locks") as handle:
            for line in handle:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
                if len(fields) >= 6 and fields[1] == "FLOCK":
                    dev_ino = fields[5].split(":")
                    if len(dev_ino) == 3 and dev_ino[2] == str(st.st_ino):
                        pids.append(fields[4])
    except (IOError, OSError):
        return ""
    return ", ".join("pid %s" % pid for pid in pids)


def _partial_in_use(base, name):
    """A build holds an flock on its partial directory for as long as it runs."""
    try:
        fd = os.open(os.path.join(base, name), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return not _try_flock(fd)
    finally:
        os.close(fd)


def remove_tree(path):
    """Remove a (possibly sealed) tree: directories are made writable first."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    for dirpath, dirnames, dummy in os.walk(path):
        os.chmod(dirpath, 0o700)
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if not os.path.islink(sub):
                os.chmod(sub, 0o700)
    shutil.rmtree(path)


def build(root, release, digest, src, run, luajit, luacheck=None, luacheck_config_path=None, seal=None):
    """Turn an uploaded source directory into the sealed release <root>/releases/<release>.

    The files are copied into a hidden partial directory inside releases/ and sealed there
    (seal(path) is sealed_tree.seal), then checked with luajit and luacheck; only a release
    that passes is renamed to its final name. Returns dict(files, problems); on problems
    the partial directory is gone and nothing else changed.
    """
    final = release_dir(root, release)
    if os.path.lexists(final):
        raise ReleaseError("%s already exists" % final)
    if not os.path.isdir(src):
        raise ReleaseError("the uploaded source %s is not a directory" % src)
    files = tree_files(src)
    if any(f["path"] == RELEASE_MODULE for f in files):
        raise ReleaseError("the source contains %s, a name reserved for the role" % RELEASE_MODULE)
    got = digest_of(files)
    if got != digest:
        raise ReleaseError("the uploaded source in %s has digest %s, not %s as on the controller; "
                           "refusing to build release %s from it" % (src, got, digest, release))
    partial = os.path.join(_releases_dir(root), "%s%s-%d" % (PARTIAL_PREFIX, release, os.getpid()))
    remove_tree(partial)
    os.mkdir(partial, 0o700)
    # Held until the partial is renamed or removed: prune() leaves a locked partial alone.
    guard = os.open(partial, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        _copy_tree(src, partial, files)
        module_source = release_module_source(release)
        with open(os.path.join(partial, RELEASE_MODULE), "w") as handle:
            handle.write(module_source)
        if seal is not None:
            seal(partial)
        lua_files = sorted([f["path"] for f in files if f["path"].endswith(".lua")] + [RELEASE_MODULE])
        problems = preflight(partial, lua_files, run, luajit, luacheck, luacheck_config_path)
        if problems:
            remove_tree(partial)
            return {"files": files, "problems": problems}
        _check_built(partial, release, digest, module_source)
        if os.path.lexists(final):
            raise ReleaseError("%s appeared while release %s was built; refusing to replace it" % (final, release))
        os.rename(partial, final)
    except BaseException:
        remove_tree(partial)
        raise
    finally:
        os.close(guard)
    return {"files": files, "problems": []}


def _check_built(partial, release, digest, module_source):
    """Right before publishing: the built tree is exactly the checked source plus the module."""
    built = tree_files(partial, exclude=(RELEASE_MODULE,))
    got = digest_of(built)
    with open(os.path.join(partial, RELEASE_MODULE)) as handle:
        module_ok = handle.read() == module_source
    if got != digest or not module_ok:
        raise ReleaseError("release %s changed while it was built (digest %s, not %s%s); not published"
                           % (release, got, digest, "" if module_ok else ", %s differs" % RELEASE_MODULE))


def switch(root, release, previous=None, check_mode=False):
    """Make releases/<release> current, atomically.

    previous: None moves the old current to <root>/previous when current changes; a
    release id sets previous to it; "" removes previous (used to restore a recorded state).
    Returns dict(changed, before=dict(current, previous), after=dict(current, previous)).
    """
    before = {"current": read_link(root, CURRENT), "previous": read_link(root, PREVIOUS)}
    after = dict(before)
    if before["current"] != release:
        after["current"] = release
        if previous is None and before["current"] is not None:
            after["previous"] = before["current"]
    if previous is not None:
        after["previous"] = previous or None
    for value in (after["current"], after["previous"]):
        if value is not None:
            path = release_dir(root, value)
            if not check_mode and not os.path.isdir(path):
                raise ReleaseError("release %s is not on this host (%s is missing)" % (value, path))
    changed = after != before
    if changed and not check_mode:
        # previous first: a failure between the two steps leaves current untouched.
        if after["previous"] != before["previous"]:
            if after["previous"] is None:
                _unlink(root, PREVIOUS)
            else:
                _link_atomic(root, PREVIOUS, after["previous"])
        if after["current"] != before["current"]:
            # The newest switch time orders releases for pruning.
            now = time.time()
            os.utime(release_dir(root, after["current"]), (now, now))
            _link_atomic(root, CURRENT, after["current"])
    return {"changed": changed, "before": before, "after": after}


def list_releases(root):
    """Release ids in releases/, most recently built or made current first."""
    base = _releases_dir(root)
    entries = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith(".") or release_id_errors(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        entries.append((os.stat(path).st_mtime, name))
    return [name for dummy, name in sorted(entries, reverse=True)]


def prune(root, keep, check_mode=False):
    """Remove all but the `keep` most recent releases, never current or previous.

    Leftover partial directories from interrupted builds go too, but never one whose build
    is still running (it holds an flock on it). Returns the removed names.
    """
    if keep < 2:
        raise ReleaseError("keep must be at least 2 (the live release and the previous one), got %r" % keep)
    protected = set(filter(None, [read_link(root, CURRENT), read_link(root, PREVIOUS)]))
    releases = list_releases(root)
    kept = [r for r in releases if r in protected]
    for name in releases:
        if len(kept) >= keep:
            break
        if name not in kept:
            kept.append(name)
    removed = [name for name in releases if name not in kept]
    base = _releases_dir(root)
    removed += sorted(n for n in os.listdir(base)
                      if n.startswith(PARTIAL_PREFIX) and not _partial_in_use(base, n))
    if not check_mode:
        for name in removed:
            remove_tree(os.path.join(base, name))
    return removed


def describe(release, files):
    """Readable text of a release for diffs: its id and one line per file."""
    if release is None:
        return "current: (none)\n"
    lines = ["current: %s" % release]
    lines += ["  %s  %s" % (f["sha256"][:12], f["path"]) for f in files]
    return "\n".join(lines) + "\n"
