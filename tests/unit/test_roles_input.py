"""Each role's input check gets every variable its argument spec declares, and no other.

ansible-playbook evaluates the role's own vars/main.yml (__<role>_input, what the role's first
assert passes to hardened.openresty.<role>_input_errors) on localhost, with this tree as the
only collections path. The probe roles are the role's defaults, vars and meta (linked, not
copied) with one task file that prints what the check gets; a second one has a copy of the
argument spec with one option more. Nothing runs on the host: no facts, one debug task.
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
ADDED = "probe_added"
# Per role: variables the play gives (lua_app needs a source), a bad value and its message.
ROLES = {
    "server": {
        "given": {},
        "bad": ("server_listen", 0),
        "error": "server_listen: 0 is not a TCP port (1-65535)",
    },
    "lua_app": {
        "given": {"lua_app_src": "{{ playbook_dir }}/app"},
        "bad": ("lua_app_port", 0),
        "error": "lua_app_port: 0 is not a TCP port (1-65535)",
    },
}

PROBE_TASKS = """---
- name: Show what the input check gets
  ansible.builtin.debug:
    msg:
      input: "{{ __%(role)s_input }}"
      errors: "{{ __%(role)s_input | hardened.openresty.%(role)s_input_errors }}"
"""

PLAYBOOK = """---
- name: Evaluate the role's input
  hosts: localhost
  connection: local
  gather_facts: false
  vars: %(vars)s
  tasks:
    - name: The role as it is, with its defaults
      ansible.builtin.include_role:
        name: %(role)s
        tasks_from: probe
    - name: The role as it is, with one bad value
      ansible.builtin.include_role:
        name: %(role)s
        tasks_from: probe
      vars: %(bad)s
    - name: The role with one option more in its argument spec
      ansible.builtin.include_role:
        name: %(role)s_extended
        tasks_from: probe
"""


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


def _probe_role(roles, role, name, spec_path=None):
    source = os.path.join(REPO, "roles", role)
    probe = os.path.join(roles, name)
    os.makedirs(os.path.join(probe, "tasks"))
    for part in ("defaults", "vars"):
        os.symlink(os.path.join(source, part), os.path.join(probe, part))
    if spec_path is None:
        os.symlink(os.path.join(source, "meta"), os.path.join(probe, "meta"))
    else:
        os.makedirs(os.path.join(probe, "meta"))
        os.rename(spec_path, os.path.join(probe, "meta", "argument_specs.yml"))
    with open(os.path.join(probe, "tasks", "probe.yml"), "w") as handle:
        handle.write(PROBE_TASKS % {"role": role})


@pytest.fixture(scope="module", params=sorted(ROLES))
def probes(request, tmp_path_factory):
    """(role, what the input check got in each of the playbook's three probes, in order)."""
    role = request.param
    work = tmp_path_factory.mktemp("%s_input" % role)
    (work / "app").mkdir()
    (work / "app" / "app.lua").write_text(u"return {}\n")
    roles = str(work / "roles")
    _probe_role(roles, role, role)
    spec = _load(REPO, "roles", role, "meta", "argument_specs.yml")
    spec["argument_specs"]["main"]["options"][ADDED] = {"type": "str", "description": "A new variable."}
    extended_spec = str(work / "argument_specs.yml")
    with open(extended_spec, "w") as handle:
        yaml.safe_dump(spec, handle)
    _probe_role(roles, role, role + "_extended", extended_spec)
    name, value = ROLES[role]["bad"]
    play_vars = dict(ROLES[role]["given"], **{ADDED: "from the play"})
    (work / "probe.yml").write_text(PLAYBOOK % {"role": role, "vars": json.dumps(play_vars),
                                                "bad": json.dumps({name: value})})

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
    return role, shown, str(work)


def test_the_check_gets_every_variable_of_the_argument_spec_with_its_value(probes):
    role, shown, work = probes
    options = _load(REPO, "roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = _load(REPO, "roles", role, "defaults", "main.yml")
    given = shown[0]["input"]
    assert sorted(given) == sorted(options)
    # values and types (int, bool, list) as the role has them, with what the play gives
    played = dict((name, value.replace("{{ playbook_dir }}", work)) for name, value in ROLES[role]["given"].items())
    assert given == dict(defaults, **played)
    assert shown[0]["errors"] == []


def test_a_value_given_to_the_role_reaches_the_check(probes):
    role, shown, _work = probes
    name, value = ROLES[role]["bad"]
    assert shown[1]["input"][name] == value
    assert shown[1]["errors"] == [ROLES[role]["error"]]


def test_a_variable_added_to_the_argument_spec_reaches_the_check_and_no_other_does(probes):
    _role, shown, _work = probes
    assert ADDED not in shown[0]["input"]  # defined in the play, but not in the role's spec
    assert shown[2]["input"][ADDED] == "from the play"
    assert sorted(shown[2]["input"]) == sorted(list(shown[0]["input"]) + [ADDED])
