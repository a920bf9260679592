"""The (uid, gid) the tests give installed, sealed and trusted files: root:root as the modules
do when the tests run as root; else the user running them, which the tests then set as the
modules' owner so that they run as that user too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

OWNER = (0, 0) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
