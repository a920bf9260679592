# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse nginx value syntax (durations, sizes) exactly as nginx does.

Plain functions with no Ansible imports, so that modules, filters and pytest share them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# nginx's ngx_parse_time(): units and their length in seconds. Each unit may appear once,
# in this order; a bare number is seconds.
_DURATION_UNITS = (
    ("y", 365 * 24 * 3600),
    ("M", 30 * 24 * 3600),
    ("w", 7 * 24 * 3600),
    ("d", 24 * 3600),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
    ("ms", 0.001),
)
# "ms" is tried before "m" so that 500ms is not read as 500m followed by "s".
_DURATION_PART = re.compile(r"(\d+)(ms|y|M|w|d|h|m|s)?")
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_duration(value):
    """Return the duration in seconds (float) of an nginx time value such as ``1m30s``.

    Raises ValueError with a message quoting the value when nginx would reject it.
    """
    if isinstance(value, bool):
        raise ValueError("invalid nginx duration %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("invalid nginx duration %r: negative" % (value,))
        return float(value)
    # nginx skips spaces between parts ("1m 30s").
    text = str(value).replace(" ", "")
    if not text:
        raise ValueError("invalid nginx duration %r: empty" % (value,))
    total = 0.0
    pos = 0
    seen = []
    order = [pair[0] for pair in _DURATION_UNITS]
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ValueError("invalid nginx duration %r" % (value,))
        number, unit = match.group(1), match.group(2) or "s"
        if match.group(2) is None and match.end() != len(text):
            raise ValueError("invalid nginx duration %r" % (value,))
        if unit in seen or (seen and order.index(unit) <= order.index(seen[-1])):
            raise ValueError("invalid nginx duration %r: units out of order or repeated" % (value,))
        seen.append(unit)
        total += int(number) * dict(_DURATION_UNITS)[unit]
        pos = match.end()
    return total


def parse_size(value):
    """Return the size in bytes of an nginx size value such as ``10m`` or ``8k``."""
    if isinstance(value, bool):
        raise ValueError("invalid nginx size %r" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("invalid nginx size %r: negative" % (value,))
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ValueError("invalid nginx size %r" % (value,))
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()]


def format_seconds(seconds):
    """Render seconds for messages: ``0.5s``, ``2s``, ``90s``."""
    if seconds == int(seconds):
        return "%ds" % int(seconds)
    return "%gs" % seconds
