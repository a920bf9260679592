"""release_proof: the proof that every worker runs a release, from the status server's answer
as ansible.builtin.uri registers it (the lua_app role's go-live and rollback, playbooks/verify.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.release_proof import as_int, release_proof

URL = "http://127.0.0.1:8399/hardened-openresty/release"


def worker(number, **changes):
    entry = {"id": number, "pid": 100 + number, "release": "r1", "alive": True, "error": None}
    entry.update(changes)
    return entry


def answer(workers, worker_count=None, status=200):
    """What uri registers for a JSON answer of the status server."""
    return {"status": status, "url": URL, "msg": "OK (unknown bytes)",
            "json": {"worker_count": len(workers) if worker_count is None else worker_count,
                     "serving_pid": 100, "workers": workers}}


def test_every_slot_running_the_release_is_proven():
    workers = [worker(0), worker(1)]
    proof = release_proof(answer(workers), "r1")
    assert proof == {"proven": True, "workers": workers, "worker_count": 2,
                     "text": "worker 0: pid 100, release r1; worker 1: pid 101, release r1;"}


@pytest.mark.parametrize("changes,shown", [
    ({"release": "r0"}, "worker 1: pid 101, release r0;"),
    ({"alive": False}, "worker 1: pid 101, release r1 (not running);"),
    ({"error": "app.init_worker() failed"}, "worker 1: pid 101, release r1, error: app.init_worker() failed;"),
    # A slot no worker of this generation has filled yet.
    ({"pid": None, "release": None, "alive": False}, "worker 1: pid , release  (not running);"),
])
def test_one_worker_off_the_release_fails_the_proof_and_is_named(changes, shown):
    proof = release_proof(answer([worker(0), worker(1, **changes)]), "r1")
    assert proof["proven"] is False
    assert proof["worker_count"] == 2 and len(proof["workers"]) == 2
    assert proof["text"] == "worker 0: pid 100, release r1; " + shown


def test_the_release_is_compared_as_it_is_given():
    assert release_proof(answer([worker(0)]), "r0")["proven"] is False
    assert release_proof(answer([worker(0, release="2")]), "2")["proven"] is True
    # Ids are strings (lua_app_version | string): a number is another value.
    assert release_proof(answer([worker(0, release="2")]), 2)["proven"] is False


@pytest.mark.parametrize("workers,worker_count", [
    ([worker(0), worker(1)], 3),   # a slot the status server did not list
    ([worker(0), worker(1)], 1),   # more entries than slots
    ([], 0),                       # no workers at all
    ([], None),
])
def test_the_entries_must_match_the_worker_count(workers, worker_count):
    result = answer(workers)
    result["json"]["worker_count"] = worker_count
    assert release_proof(result, "r1")["proven"] is False


@pytest.mark.parametrize("result", [
    {"status": 200, "json": {"workers": [worker(0)]}},          # no worker_count
    {"status": 200, "json": {"worker_count": 1}},              # no workers
    {"status": 200, "json": {"worker_count": 1, "workers": "worker 0"}},
    {"status": 200, "json": {"worker_count": 1, "workers": [None]}},
    {"status": 200, "json": [worker(0)]},
    {"status": 200, "json": None},
    {"status": 200, "content": "not JSON"},
    None,
])
def test_an_answer_without_the_expected_shape_proves_nothing(result):
    proof = release_proof(result, "r1")
    assert proof["proven"] is False


def test_only_a_200_proves():
    result = answer([worker(0), worker(1)], status=503)
    result["msg"] = "Status code was 503 and not [200]: HTTP Error 503: Service Unavailable"
    proof = release_proof(result, "r1")
    assert proof["proven"] is False
    # The workers are still those the answer held (lua_app_result.worker_pids reads them).
    assert [entry["pid"] for entry in proof["workers"]] == [100, 101]
    assert proof["text"] == ("the status server at %s answered 503 Status code was 503 and not [200]: "
                             "HTTP Error 503: Service Unavailable" % URL)


def test_no_answer_names_the_url_and_what_was_answered():
    refused = {"status": -1, "url": URL, "json": None,
               "msg": "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>"}
    proof = release_proof(refused, "r1")
    assert proof == {"proven": False, "workers": [], "worker_count": 0,
                     "text": "the status server at %s answered -1 %s" % (URL, refused["msg"])}


def test_a_skipped_probe_proves_nothing_and_the_text_names_the_given_url():
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    assert release_proof(skipped, "r1") == {"proven": False, "workers": [], "worker_count": 0,
                                            "text": "the status server at  answered nothing"}
    assert release_proof(skipped, "r1", url=URL)["text"] == "the status server at %s answered nothing" % URL
    # The given URL wins over the result's, so that every message names the URL configured.
    assert release_proof(answer([], status=-1), "r1", url="http://x/")["text"].startswith(
        "the status server at http://x/ answered -1")


@pytest.mark.parametrize("value,number", [
    (2, 2), ("2", 2), ("2.0", 2), (2.7, 2), (" 3 ", 3), (None, 0), ("two", 0), ([], 0), (True, 1),
])
def test_the_worker_count_is_read_as_jinja_int_reads_it(value, number):
    assert as_int(value) == number
    result = answer([worker(0), worker(1)])
    result["json"]["worker_count"] = value
    proof = release_proof(result, "r1")
    assert proof["worker_count"] == number
    assert proof["proven"] is (number == 2)


def test_truthy_values_count_as_alive_and_empty_errors_as_none():
    assert release_proof(answer([worker(0, alive=1, error="")]), "r1")["proven"] is True
    assert release_proof(answer([worker(0, alive=0)]), "r1")["proven"] is False
    assert release_proof(answer([worker(0, error=0)]), "r1")["proven"] is True
