# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session fixtures of the oracle suite: both containers, and every case asked once.

The containers start in parallel and are always removed at the end of the session (the
Makefile removes any leftover by label as well). The answers of one run are written to
tests/output/oracle/answers.json as a log; nothing reads them back: every run asks the
binaries again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading

import pytest

from ansible_collections.hardened.openresty.tests.oracle import harness

OUTPUT = os.path.join(harness.HERE, "..", "output", "oracle")
# Logs of every run (answers, divergences, the generator's examples); absent in a fresh clone.
os.makedirs(OUTPUT, exist_ok=True)
# The cases copied into the containers: a case the generator keeps during this run is
# asked on the next one.
NAMES = harness.case_names()


def _parallel(jobs):
    """Run {key: callable} in threads; return {key: result}, re-raising the first error."""
    results, errors = {}, []

    def run(key, job):
        try:
            results[key] = job()
        except Exception as exc:  # reported below, after every thread ended
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="session")
def oracles():
    started = dict((distro, harness.Oracle(distro)) for distro in harness.DISTROS)
    try:
        _parallel(dict((distro, oracle.start) for distro, oracle in started.items()))
        yield started
    finally:
        for oracle in started.values():
            oracle.close()


@pytest.fixture(scope="session")
def answers(oracles):
    if not os.path.isdir(OUTPUT):
        os.makedirs(OUTPUT)
    log = os.path.join(OUTPUT, "divergences.jsonl")
    if os.path.exists(log):
        os.unlink(log)
    found = _parallel(dict((distro, (lambda o=oracle: harness.ask_all(o, NAMES)))
                           for distro, oracle in oracles.items()))
    with open(os.path.join(OUTPUT, "answers.json"), "w") as handle:
        json.dump({"versions": dict((d, o.versions) for d, o in oracles.items()), "answers": found},
                  handle, indent=1, sort_keys=True)
    return found
