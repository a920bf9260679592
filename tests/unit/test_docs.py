"""The documentation users read: ansible-doc for every module and role, and docs/rules.md.

ansible-doc runs with this tree as the only collections path, so what is checked is what a
user of this checkout sees, not a copy installed elsewhere.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMESPACE = "hardened.openresty"
MODULES = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
                 if not os.path.basename(path).startswith("_"))
ROLES = sorted(name for name in os.listdir(os.path.join(REPO, "roles"))
               if os.path.isdir(os.path.join(REPO, "roles", name)))
RULE_ID = r"(?:lua|nginx)-[a-z0-9]+(?:-[a-z0-9]+)+"
# Hyphenated names in the docs that are not rule ids.
NOT_RULES = {"lua-nginx-module", "lua-resty-core", "lua-resty-lrucache", "lua-check"}


def _collections_path():
    """The directory holding ansible_collections/hardened/openresty for this tree.

    Tests run from .../ansible_collections/hardened/openresty with PYTHONPATH at the directory
    above ansible_collections; that directory (from this file's path, else from sys.path) is
    where ansible-doc must look.
    """
    candidates = [os.path.dirname(os.path.dirname(os.path.dirname(REPO)))] + sys.path
    for candidate in candidates:
        collection = os.path.join(candidate or ".", "ansible_collections", "hardened", "openresty")
        if os.path.isdir(collection) and os.path.realpath(collection) == os.path.realpath(REPO):
            return os.path.abspath(candidate)
    pytest.fail("no ansible_collections/hardened/openresty leading to %s on sys.path; run the tests from "
                "a tree laid out as .../ansible_collections/hardened/openresty with PYTHONPATH at the "
                "directory above ansible_collections" % REPO)


def ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_ROLES_PATH", None)
    result = subprocess.run([sys.executable, "-m", "ansible.cli.doc"] + list(args),
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return result


def _version(text):
    return tuple(int(part) for part in str(text).split("-", maxsplit=1)[0].split("."))


def _argument_specs(role):
    path = os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")
    assert os.path.isfile(path), "role %s has no meta/argument_specs.yml" % role
    with open(path) as handle:
        return yaml.safe_load(handle)["argument_specs"]


@pytest.fixture(scope="module")
def galaxy_version():
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


def test_ansible_doc_lists_every_module_and_role():
    modules = json.loads(ansible_doc("-t", "module", "-l", NAMESPACE, "--json").stdout)
    assert sorted(modules) == ["%s.%s" % (NAMESPACE, name) for name in MODULES]
    roles = json.loads(ansible_doc("-t", "role", "-l", NAMESPACE, "--json").stdout)
    assert sorted(roles) == ["%s.%s" % (NAMESPACE, name) for name in ROLES]
    assert "lua_sandbox_verify" in MODULES and "nginx_reload" in MODULES and "server" in ROLES


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(galaxy_version, name):
    fqcn = "%s.%s" % (NAMESPACE, name)
    entry = json.loads(ansible_doc("-t", "module", "--json", fqcn).stdout)[fqcn]
    doc = entry["doc"]
    assert os.path.realpath(doc["filename"]) == os.path.realpath(os.path.join(REPO, "plugins", "modules", name + ".py"))
    assert doc["short_description"] and doc["description"]
    assert doc["options"], "no options"
    for option, spec in doc["options"].items():
        assert spec.get("description"), "option %s has no description" % option
        assert spec.get("type"), "option %s has no type" % option
    assert set(doc["attributes"]) >= {"check_mode", "diff_mode", "platform"}
    # The descriptions come from the doc fragment hardened.openresty.attributes, the support
    # from the module: the merge ansible-doc makes of the two must give both.
    for attribute, spec in doc["attributes"].items():
        assert spec.get("description") and spec.get("support"), "attribute %s: %r" % (attribute, spec)
    assert doc["attributes"]["check_mode"]["support"] in ("full", "partial", "none")
    assert doc["attributes"]["diff_mode"]["support"] in ("full", "partial", "none")
    assert doc["attributes"]["platform"]["platforms"] == "posix"
    # Docs sites show "added in X": a version after the collection's own is wrong.
    assert _version(doc["version_added"]) <= _version(galaxy_version), (
        "version_added %s is after the collection version %s" % (doc["version_added"], galaxy_version))
    examples = yaml.safe_load(entry["examples"])
    assert isinstance(examples, list) and examples, "EXAMPLES is not a list of tasks"
    used = [task for task in examples if "%s.%s" % (NAMESPACE, name) in task]
    assert used, "no example uses %s.%s" % (NAMESPACE, name)
    assert entry["return"], "RETURN is empty"
    for key, spec in entry["return"].items():
        assert spec.get("description") and spec.get("returned") and spec.get("type"), key


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module_as_text(name):
    fqcn = "%s.%s" % (NAMESPACE, name)
    result = ansible_doc(fqcn)
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    assert fqcn in result.stdout


@pytest.mark.parametrize("name", ROLES)
def test_ansible_doc_renders_every_entry_point_of_the_role(name):
    specs = _argument_specs(name)
    fqcn = "%s.%s" % (NAMESPACE, name)
    rendered = json.loads(ansible_doc("-t", "role", "--json", fqcn).stdout)[fqcn]["entry_points"]
    assert sorted(rendered) == sorted(specs)
    for entry_name, spec in specs.items():
        entry = rendered[entry_name]
        assert entry["short_description"] == spec["short_description"]
        assert sorted(entry["options"]) == sorted(spec.get("options", {}))
        for option, option_spec in entry["options"].items():
            assert option_spec.get("description"), "%s: %s has no description" % (entry_name, option)


@pytest.mark.parametrize("name", ROLES)
def test_ansible_doc_renders_the_role_as_text(name):
    entry_points = _argument_specs(name)
    result = ansible_doc("-t", "role", "%s.%s" % (NAMESPACE, name))
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    for entry_name in entry_points:
        assert re.search(r"^ENTRY POINT: \*?%s\*?" % re.escape(entry_name), result.stdout, re.M), entry_name


def test_the_maintainers_map_names_every_module_and_module_util():
    utils = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "plugins", "module_utils", "*.py"))
                   if not path.endswith("__init__.py"))
    with open(os.path.join(REPO, "docs", "MAINTAINERS.md")) as handle:
        text = handle.read()
    assert [name for name in MODULES + utils if not re.search(r"\b%s\b" % name, text)] == []


def test_rules_md_documents_exactly_the_rules_of_the_catalogue():
    with open(os.path.join(REPO, "docs", "rules.md")) as handle:
        docs = handle.read()
    ids = set(item.id for item in lua_rules.RULES)
    headings = re.findall(r"^## `(%s)`" % RULE_ID, docs, re.M)
    assert set(headings) == ids
    # Every rule id the docs or the module's documentation name must exist: a renamed rule
    # leaves such references behind.
    with open(os.path.join(REPO, "plugins", "modules", "lua_sandbox_verify.py")) as handle:
        module_source = handle.read()
    named = set(re.findall(r"`(%s)`" % RULE_ID, docs)) | set(re.findall(r"\(#(%s)\)" % RULE_ID, docs))
    named |= set(re.findall(r"C\((%s)\)" % RULE_ID, module_source))
    assert named - NOT_RULES - ids == set()


def test_the_limits_are_the_same_in_the_policy_the_input_check_the_argument_specs_and_the_docs():
    """One table of limits (lua_rules.DEFAULT_POLICY): every place that states one agrees."""
    from ansible_collections.hardened.openresty.plugins.module_utils import role_input
    from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import parse_duration

    policy = lua_rules.DEFAULT_POLICY
    with open(os.path.join(REPO, "roles", "server", "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    with open(os.path.join(REPO, "docs", "rules.md")) as handle:
        rules_doc = handle.read()
    for kind in ("connect", "send", "read", "keepalive"):
        key, variable = "socket_%s_timeout_max" % kind, "server_lua_socket_%s_timeout" % kind
        maximum = parse_duration(policy[key])
        assert role_input.SOCKET_TIMEOUT_MAX[variable] == maximum
        stated = re.search(r"at most (\S+?)\.", " ".join(_text(options[variable]["description"]))).group(1)
        assert parse_duration(stated) == maximum, variable
        assert "`%s: %s`" % (key, policy[key]) in rules_doc
        too_long = "%ds" % (maximum + 1)
        assert any(e.startswith(variable) for e in role_input.server_input_errors({variable: too_long}))
    for key, variable, constant in (("regex_match_limit_max", "server_lua_regex_match_limit",
                                     role_input.REGEX_MATCH_LIMIT_MAX),
                                    ("regex_cache_max_entries_max", "server_lua_regex_cache_max_entries",
                                     role_input.REGEX_CACHE_MAX_ENTRIES_MAX)):
        assert constant == policy[key]
        stated = re.search(r"between 1 and\s+([\d,]+)", " ".join(_text(options[variable]["description"]))).group(1)
        assert int(stated.replace(",", "")) == policy[key], variable
        assert "`%s: %s`" % (key, policy[key]) in rules_doc


def _text(description):
    return description if isinstance(description, list) else [description]
