from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_role_readmes_are_generated_from_their_argument_specs():
    script = os.path.join(ROOT, "scripts", "role_docs.py")  # run with this interpreter
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_role_variable_in_defaults_is_in_the_argument_spec():
    import yaml

    roles = os.path.join(ROOT, "roles")
    for role in os.listdir(roles):
        defaults_path = os.path.join(roles, role, "defaults", "main.yml")
        if not os.path.exists(defaults_path):
            continue
        with open(defaults_path) as handle:
            defaults = yaml.safe_load(handle) or {}
        with open(os.path.join(roles, role, "meta", "argument_specs.yml")) as handle:
            options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
        assert sorted(defaults) == sorted(options), role
        for name, value in defaults.items():
            assert options[name].get("default") == value, (role, name)
