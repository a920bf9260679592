from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest


@pytest.fixture
def owner():
    """(uid, gid) that installed and sealed files must have, and that the verifier trusts:
    root:root when the tests run as root, as the modules install them; else the user running
    the tests, which the tests set as the modules' owner so that they run as that user too."""
    return (0, 0) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
