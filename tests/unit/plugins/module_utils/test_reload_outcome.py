from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import reload_outcome

MASTER = 100
ALERT = "2024/05/01 12:00:00 [alert] 100#100: failed to load the 'resty.core' module (reason: not found)"
WORKER_ERROR = "2024/05/01 12:00:00 [error] 11#11: *1 lua entry thread aborted: boom"
NOTICE = "2024/05/01 12:00:00 [notice] 100#100: signal process started"


def killed(pid):
    return "2024/05/01 12:00:00 [alert] 100#100: worker process %d exited on signal 9" % pid


def verdict(outcome, new=(), active=(), draining=(), lines=()):
    return {"outcome": outcome, "new_worker_pids": list(new), "old_workers_active": list(active),
            "old_workers_draining": list(draining), "error_log_lines": list(lines)}


# --- reload verdicts ---------------------------------------------------------------------

@pytest.mark.parametrize("draining,words", [([], "0 old workers draining"), ([11], "1 old worker draining"),
                                            ([11, 12], "2 old workers draining")])
def test_a_new_generation_serving_is_a_success_that_counts_the_draining_workers(draining, words):
    failed, changed, msg = reload_outcome.reload_verdict(verdict("reloaded", [21, 22], draining=draining),
                                                         MASTER, 30)
    assert (failed, changed) == (False, True)
    assert msg == "new generation serving (workers [21, 22]), %s" % words


def test_a_rejected_reload_fails_unchanged_with_the_masters_words_and_the_respawns():
    lines = [WORKER_ERROR, killed(11), ALERT]
    failed, changed, msg = reload_outcome.reload_verdict(verdict("rejected", active=[12, 23], lines=lines),
                                                         MASTER, 30)
    assert (failed, changed) == (True, False), "the master keeps the old configuration: nothing changed"
    assert msg.startswith("nginx rejected the reload and keeps serving with the old configuration "
                          "(old workers [12, 23]; killed and respawned with it: [11]): ")
    # Only the master's load failure is quoted: not a worker's error, not the reaped worker.
    assert msg.endswith(": " + ALERT)


def test_a_rejected_reload_without_respawns_does_not_mention_them():
    dummy, dummy, msg = reload_outcome.reload_verdict(verdict("rejected", active=[11, 12], lines=[ALERT]),
                                                      MASTER, 30)
    assert "respawned" not in msg and "(old workers [11, 12]): " in msg


def test_a_master_that_exited_is_a_changed_failure():
    assert reload_outcome.reload_verdict(verdict("master_exited"), MASTER, 30) == (
        True, True, "the nginx master 100 exited during the reload")


def test_a_timeout_names_the_old_workers_and_quotes_the_log_when_there_is_one():
    failed, changed, msg = reload_outcome.reload_verdict(verdict("timeout", active=[11, 12]), MASTER, 7)
    assert (failed, changed) == (True, True)
    assert msg == "no new worker generation within 7s (old workers still serving [11, 12])"
    dummy, dummy, msg = reload_outcome.reload_verdict(verdict("timeout", active=[11], lines=[NOTICE, WORKER_ERROR]),
                                                      MASTER, 7)
    # No load failure of the master and nothing serious: the lines themselves, as they came.
    assert msg.endswith("[11]): %s | %s" % (NOTICE, WORKER_ERROR))


def test_failure_lines_quote_the_last_five_of_the_best_kind():
    alerts = ["2024/05/01 12:00:0%d [alert] 100#100: failure %d" % (i, i) for i in range(7)]
    quoted = reload_outcome.failure_lines([NOTICE] + alerts, MASTER)
    assert quoted == " | ".join(alerts[-5:])
    # Serious entries of another process when the master logged nothing at error or above.
    crit = "2024/05/01 12:00:00 [crit] 11#11: *1 open() failed"
    assert reload_outcome.failure_lines([NOTICE, crit], MASTER) == crit


# --- starts and restarts -----------------------------------------------------------------

def test_a_failed_start_quotes_nginxs_error_lines_else_systemctls_words():
    lines = ["-- Boot --", "nginx.service: Control process exited", "nginx: [emerg] bind() to 0.0.0.0:80 failed",
             "2024/05/01 12:00:01 [error] 300#300: init_by_lua error: boom"]
    assert reload_outcome.start_failure(lines, "Job failed") == " | ".join(lines[2:])
    assert reload_outcome.start_failure(lines[:2], "Job failed") == " | ".join(lines[:2])
    assert reload_outcome.start_failure([], " Job for nginx.service failed.\n") == "Job for nginx.service failed."
    assert reload_outcome.start_failed_message("nginx", True, [], "Job failed") == "restarting nginx failed: Job failed"
    assert reload_outcome.start_failed_message("nginx", False, [], "x") == "starting nginx failed: x"


@pytest.mark.parametrize("old,new,workers,proven", [
    (None, 100, [101], True),      # started: a master with workers
    (100, 200, [201], True),       # restarted: a new master with workers
    (100, 100, [101], False),      # restarted, but the master is the one that ran before
    (None, 100, [], False),        # a master without a serving worker
    (None, None, [], False),       # nothing runs
])
def test_a_start_or_restart_is_proven_only_by_a_new_master_with_workers(old, new, workers, proven):
    msg = reload_outcome.start_unproven_message("nginx", "restarted" if old else "started", 5, old, new, workers)
    if proven:
        assert msg is None
    else:
        assert msg == ("nginx was %s but no new nginx master with workers was running after 5s"
                       % ("restarted" if old else "started"))


# --- before anything runs ----------------------------------------------------------------

@pytest.mark.parametrize("action,plan", [
    ("reloaded", "send SIGHUP to master 100"),
    ("restarted", "restart nginx.service (master 100)"),
    ("started", "start nginx"),
])
def test_check_mode_says_what_it_would_do(action, plan):
    master = None if action == "started" else MASTER
    assert reload_outcome.check_mode_message(action, master, "nginx", "/etc/nginx/nginx.conf", "/usr/sbin/nginx") == (
        "check mode: would test /etc/nginx/nginx.conf with /usr/sbin/nginx -t, then %s and prove a new worker "
        "generation" % plan)


def test_a_master_outside_the_unit_is_named_with_its_pid_file_and_the_unit():
    msg = reload_outcome.stray_master_message(4711, "/run/nginx.pid", "openresty")
    assert msg.startswith("the nginx master 4711 named by /run/nginx.pid runs outside openresty.service: ")


def test_foreign_ports_are_listed_in_order_and_none_is_no_message():
    assert reload_outcome.foreign_ports_message({}) is None
    msg = reload_outcome.foreign_ports_message({8443: "nothing listens there",
                                                8080: "listened on by a socket the master does not hold"})
    assert msg == ("the new generation runs, but not every port is the service's own: port 8080: listened on by "
                   "a socket the master does not hold; port 8443: nothing listens there")
