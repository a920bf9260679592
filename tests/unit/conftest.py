from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.tests.unit.owner import OWNER


@pytest.fixture
def owner():
    """(uid, gid) that installed and sealed files must have (see tests/unit/owner.py)."""
    return OWNER
