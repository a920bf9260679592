# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proof that every nginx worker runs a release, from the lua_app status server's answer.

The status server (the lua_app role's include, 127.0.0.1:<lua_app_status_port>
/hardened-openresty/release) answers {"worker_count": N, "workers": [{"id", "pid", "release",
"alive", "error"}, ...]}, one entry per worker slot. Input here is what ansible.builtin.uri
registered when it asked: status, json, msg and url; a skipped task's result (none of them)
proves nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping


def as_int(value):
    """A number the way Jinja's int filter reads it: "3" and "3.0" are 3, anything else 0."""
    try:
        if isinstance(value, str):
            return int(value, 10)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def worker_proven(worker, expected):
    """A worker slot holds a running worker that loaded release `expected` without an error."""
    return (isinstance(worker, Mapping) and bool(worker.get("alive"))
            and worker.get("release") == expected and not worker.get("error"))


def _shown(value):
    """A value in the text; an absent one (null) shows as nothing, as Ansible renders it."""
    return "" if value is None else "%s" % (value,)


def _worker_line(worker):
    worker = worker if isinstance(worker, Mapping) else {}
    return "worker %s: pid %s, release %s%s%s;" % (
        _shown(worker.get("id")), _shown(worker.get("pid")), _shown(worker.get("release")),
        "" if worker.get("alive") else " (not running)",
        (", error: %s" % _shown(worker.get("error"))) if worker.get("error") else "")


def release_proof(result, expected, url=None):
    """Whether every worker slot the status server reports runs release `expected`.

    Returns a dict:
      proven        the answer was a 200, with worker_count > 0 and exactly worker_count
                    workers, each alive, with release == expected and no error;
      workers       the workers as reported ([] when the answer had none);
      worker_count  the worker count as reported, as an integer (0 when absent);
      text          one line for a message: each worker's id, pid and release (with
                    "(not running)" and its error when so), or, when the answer was not a 200,
                    the URL asked (`url`, else the result's) and what it answered.
    """
    result = result if isinstance(result, Mapping) else {}
    status = result.get("status", 0)
    answer = result.get("json", {})
    answer = answer if isinstance(answer, Mapping) else {}
    workers = answer.get("workers", [])
    workers = list(workers) if isinstance(workers, list) else []
    worker_count = as_int(answer.get("worker_count", 0))

    proven = (status == 200 and worker_count > 0 and len(workers) == worker_count
              and len([worker for worker in workers if worker_proven(worker, expected)]) == worker_count)
    if status != 200:
        text = "the status server at %s answered %s %s" % (
            _shown(url if url is not None else result.get("url")), _shown(result.get("status", "nothing")),
            _shown(result.get("msg", "")))
    else:
        text = " ".join(_worker_line(worker) for worker in workers)
    return {"proven": proven, "workers": workers, "worker_count": worker_count, "text": text.strip()}
