"""The server role's input check gets every variable its argument spec declares, and no other.

ansible-playbook evaluates the role's own vars/main.yml (__server_input, what the role's first
assert passes to hardened.openresty.server_input_errors) on localhost, with this tree as the
only collections path. The probe roles are the server role's defaults, vars and meta (linked,
not copied) with one task file that prints what the check gets; a second one has a copy of
the argument spec with one option more. Nothing runs on the host: no facts, one debug task.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(REPO, "roles", "server")
ADDED = "server_probe_added"

PROBE_TASKS = """---
- name: Show what the input check gets
  ansible.builtin.debug:
    msg:
      input: "{{ __server_input }}"
      errors: "{{ __server_input | hardened.openresty.server_input_errors }}"
"""

PLAYBOOK = """---
- name: Evaluate the server role's input
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    %(added)s: from the play
  tasks:
    - name: The role as it is, with its defaults
      ansible.builtin.include_role:
        name: server
        tasks_from: probe
    - name: The role as it is, with one bad value
      ansible.builtin.include_role:
        name: server
        tasks_from: probe
      vars:
        server_listen: 0
    - name: The role with one option more in its argument spec
      ansible.builtin.include_role:
        name: server_extended
        tasks_from: probe
""" % {"added": ADDED}


def _load(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle)


def _collections_path():
    """The directory above ansible_collections/hardened/openresty for this tree (see test_docs)."""
    for candidate in [os.path.dirname(os.path.dirname(os.path.dirname(REPO)))] + sys.path:
        collection = os.path.join(candidate or ".", "ansible_collections", "hardened", "openresty")
        if os.path.isdir(collection) and os.path.realpath(collection) == os.path.realpath(REPO):
            return os.path.abspath(candidate)
    pytest.fail("no ansible_collections/hardened/openresty leading to %s on sys.path" % REPO)


def _probe_role(roles, name, spec_path=None):
    role = os.path.join(roles, name)
    os.makedirs(os.path.join(role, "tasks"))
    for part in ("defaults", "vars"):
        os.symlink(os.path.join(SERVER, part), os.path.join(role, part))
    if spec_path is None:
        os.symlink(os.path.join(SERVER, "meta"), os.path.join(role, "meta"))
    else:
        os.makedirs(os.path.join(role, "meta"))
        os.rename(spec_path, os.path.join(role, "meta", "argument_specs.yml"))
    with open(os.path.join(role, "tasks", "probe.yml"), "w") as handle:
        handle.write(PROBE_TASKS)


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """What the input check got in each of the playbook's three probes, in order."""
    work = tmp_path_factory.mktemp("server_input")
    roles = str(work / "roles")
    _probe_role(roles, "server")
    spec = _load(SERVER, "meta", "argument_specs.yml")
    spec["argument_specs"]["main"]["options"][ADDED] = {"type": "str", "description": "A new variable."}
    extended_spec = str(work / "argument_specs.yml")
    with open(extended_spec, "w") as handle:
        yaml.safe_dump(spec, handle)
    _probe_role(roles, "server_extended", extended_spec)
    (work / "probe.yml").write_text(PLAYBOOK)

    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_ROLES_PATH=roles,
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
               ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,", "probe.yml"],
                            cwd=str(work), capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    shown = [task["hosts"]["localhost"]["msg"] for task in tasks
             if task["task"]["name"].endswith("Show what the input check gets")]
    assert len(shown) == 3
    return shown


def test_the_check_gets_every_variable_of_the_argument_spec_with_its_value(probes):
    options = _load(SERVER, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = _load(SERVER, "defaults", "main.yml")
    given = probes[0]["input"]
    assert sorted(given) == sorted(options)
    assert given == defaults  # values and types (int, bool, list) as the role has them
    assert probes[0]["errors"] == []


def test_a_value_given_to_the_role_reaches_the_check(probes):
    assert probes[1]["input"]["server_listen"] == 0
    assert probes[1]["errors"] == ["server_listen: 0 is not a TCP port (1-65535)"]


def test_a_variable_added_to_the_argument_spec_reaches_the_check_and_no_other_does(probes):
    assert ADDED not in probes[0]["input"]  # defined in the play, but not in the role's spec
    assert probes[2]["input"][ADDED] == "from the play"
    assert sorted(probes[2]["input"]) == sorted(list(probes[0]["input"]) + [ADDED])
