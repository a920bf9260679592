"""The action group hardened.openresty.nginx and the roles' module_defaults fit the modules.

Ansible gives every default of a group to every module of the group, and a module fails on a
parameter it does not take ("Unsupported parameters"): each key a role gives the group must be
a parameter of every member, each key it gives one module a parameter of that module. The
roles' calls of the group's modules name none of the layout the defaults carry.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import importlib
import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUP = "group/hardened.openresty.nginx"
PREFIX = "hardened.openresty."
LAYOUT = {"binary", "conf_dir", "main_config", "config", "service", "pid_file", "error_log"}
ONE_VARIABLE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def _parameters(module):
    spec = importlib.import_module("ansible_collections.hardened.openresty.plugins.modules." + module).ARGUMENT_SPEC
    return set(spec)


def _members():
    return _load(os.path.join(REPO, "meta", "runtime.yml"))["action_groups"]["nginx"]


def _walk(node, skip=()):
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key not in skip:
                yield from _walk(value, skip)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, skip)


def _role_files(role):
    return sorted(glob.glob(os.path.join(REPO, "roles", role, "tasks", "*.yml"))
                  + glob.glob(os.path.join(REPO, "roles", role, "handlers", "*.yml")))


def _module_defaults(role):
    """Every module_defaults of the role's tasks and handlers, a value naming one variable resolved
    from the role's vars/main.yml."""
    role_vars = _load(os.path.join(REPO, "roles", role, "vars", "main.yml"))
    found = []
    for path in _role_files(role):
        for node in _walk(_load(path)):
            if "module_defaults" in node:
                defaults = {}
                for name, value in node["module_defaults"].items():
                    match = ONE_VARIABLE.match(value) if isinstance(value, str) else None
                    defaults[name] = role_vars[match.group(1)] if match else value
                found.append((os.path.relpath(path, REPO), defaults))
    return found


def test_the_group_holds_the_modules_that_run_the_nginx_binary():
    members = _members()
    assert sorted(members) == ["lua_sandbox_verify", "nginx_config", "nginx_reload"]
    for module in members:
        assert "binary" in _parameters(module), module


def test_every_default_the_roles_give_goes_to_modules_that_take_it():
    seen = 0
    for role in ("server", "lua_app"):
        for path, defaults in _module_defaults(role):
            for name, values in defaults.items():
                assert isinstance(values, dict), (path, name)
                targets = _members() if name == GROUP else [name[len(PREFIX):]]
                assert name == GROUP or name.startswith(PREFIX), (path, name)
                for module in targets:
                    unknown = set(values) - _parameters(module)
                    assert not unknown, (path, name, module, unknown)
                seen += 1
    assert seen >= 8  # server: 2 in tasks, 3 in the handler; lua_app: 3


def test_each_role_gives_every_layout_parameter_its_calls_need():
    for role in ("server", "lua_app"):
        given = {}
        for _path, defaults in _module_defaults(role):
            for name, values in defaults.items():
                for module in (_members() if name == GROUP else [name[len(PREFIX):]]):
                    given.setdefault(module, set()).update(values)
        assert given["nginx_config"] >= {"binary", "conf_dir", "main_config"}, role
        assert given["nginx_reload"] >= {"binary", "config", "service", "pid_file", "error_log"}, role


def test_no_call_of_the_group_names_the_layout_again():
    members = set(PREFIX + module for module in _members())
    for role in ("server", "lua_app"):
        for path in _role_files(role):
            for node in _walk(_load(path), skip=("module_defaults",)):
                for name in members & set(node):
                    assert not LAYOUT & set(node[name] or {}), (path, node.get("name"))
