"""The release_proof filter as users call it: its documentation renders, and its documented
EXAMPLES, run by ansible-playbook on localhost against a loopback stand-in of the lua_app status
server, return what its documentation says."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
DOC = os.path.join(REPO, "plugins", "filter", "release_proof.yml")
FQCN = "hardened.openresty.release_proof"
DOCUMENTED_URL = "http://127.0.0.1:8399/hardened-openresty/release"


def _collections_path():
    """The directory above ansible_collections/hardened/openresty for this tree."""
    for candidate in [os.path.dirname(os.path.dirname(os.path.dirname(REPO)))] + sys.path:
        collection = os.path.join(candidate or ".", "ansible_collections", "hardened", "openresty")
        if os.path.isdir(collection) and os.path.realpath(collection) == os.path.realpath(REPO):
            return os.path.abspath(candidate)
    pytest.fail("run the tests from a tree laid out as .../ansible_collections/hardened/openresty")


def _env(tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOME=str(tmp_path / "ansible-home"), no_proxy="*", NO_PROXY="*")
    for name in ("ANSIBLE_ROLES_PATH", "ANSIBLE_CONFIG", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env.pop(name, None)
    return env


def _worker(number, release):
    return {"id": number, "pid": 4711 + number, "release": release, "alive": True, "error": None}


class StatusServer(object):
    """Answers each request with the next of `answers` (the last one from then on)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps(server.answers[min(server.asked, len(server.answers) - 1)]).encode()
                server.asked += 1
                self.send_response(200 if self.path == "/hardened-openresty/release" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hardened-openresty/release" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def doc():
    with open(DOC) as handle:
        return yaml.safe_load(handle)


def test_ansible_doc_renders_the_filter(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ansible.cli.doc", "-t", "filter", "--json", FQCN],
                            capture_output=True, text=True, env=_env(tmp_path), check=False)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)[FQCN]
    assert os.path.realpath(entry["doc"]["filename"]) == os.path.realpath(DOC)
    assert sorted(entry["doc"]["options"]) == ["_input", "expected", "url"]
    assert sorted(entry["return"]["_value"]["contains"]) == ["proven", "text", "worker_count", "workers"]
    assert FQCN in entry["examples"]


def test_the_documented_examples_return_what_the_docs_say(doc, tmp_path):
    samples = dict((key, spec["sample"]) for key, spec in doc["RETURN"]["_value"]["contains"].items())
    assert DOCUMENTED_URL in doc["EXAMPLES"]
    # The status server first answers with worker 1 still on 1.9.0, then with both on 2.0.0.
    server = StatusServer([
        {"worker_count": 2, "workers": [_worker(0, "2.0.0"), _worker(1, "1.9.0")]},
        {"worker_count": 2, "workers": [_worker(0, "2.0.0"), _worker(1, "2.0.0")]},
    ])
    examples = yaml.safe_load(doc["EXAMPLES"].replace(DOCUMENTED_URL, server.url))
    playbook = [{"name": "The documented examples", "hosts": "localhost", "connection": "local",
                 "gather_facts": False, "vars": {"ansible_python_interpreter": sys.executable},
                 "tasks": examples}]
    (tmp_path / "examples.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    env = dict(_env(tmp_path), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    try:
        result = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,", "examples.yml"],
                                capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    finally:
        server.close()
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    ran = dict((task["task"]["name"], task["hosts"]["localhost"]) for task in report["plays"][0]["tasks"])
    assert list(ran) == [task["name"] for task in examples]

    # The wait asked until the proof held: the second answer.
    wait = ran["Wait until every worker runs release 2.0.0"]
    assert not wait.get("failed") and wait["attempts"] == 2 and server.asked == 2
    assert wait["json"]["workers"][1]["release"] == "2.0.0"
    assert ran["Show which release each worker runs"]["msg"] == (
        "worker 0: pid 4711, release 2.0.0; worker 1: pid 4712, release 2.0.0;")
    # The answer given in the example returns exactly the documented samples.
    assert ran["Judge an answer of the status server"]["msg"] == samples
    assert samples["proven"] is False and samples["worker_count"] == 2
