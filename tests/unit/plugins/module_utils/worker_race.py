"""The worker user as an adversary: a forked child that drops to www-data and races.

Every loop is bounded by a count and a time, so a test cannot hang whatever the code under
test does.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import tempfile
import time

WORKER_UID = WORKER_GID = 33


def shared_dir(prefix):
    """A root-owned 0755 directory the worker can reach (pytest's tmp_path is 0700)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


def remove(path):
    if os.path.lexists(path):
        shutil.rmtree(path)


class Worker(object):
    """worker = Worker(fn); fn(ready) runs as uid 33 in a child; ready() tells the parent
    it is under way. worker.stop() kills it; worker.join() waits for it (bounded)."""

    def __init__(self, fn, timeout=10.0):
        self.timeout = timeout
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(read_end)
                os.setgroups([])
                os.setgid(WORKER_GID)
                os.setuid(WORKER_UID)

                def ready():
                    os.write(write_end, b"r")
                code = fn(ready) or 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._ready = read_end

    def wait_ready(self):
        import select
        got, dummy, dummy = select.select([self._ready], [], [], self.timeout)
        assert got, "the worker did not start"
        assert os.read(self._ready, 1) == b"r", "the worker failed before it started"

    def join(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self._ready)
                return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
                    else os.WEXITSTATUS(status)
            time.sleep(0.01)
        self.stop()
        raise AssertionError("the worker did not finish in %.0fs" % self.timeout)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self._ready)
