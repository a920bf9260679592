# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read nginx values (numbers, durations, sizes, flags, C strings) exactly as nginx does.

The one value parser of the collection: the verifier's rules and the role input checks
both use it. Each reader follows the nginx function named in its docstring
(src/core/ngx_parse.c, ngx_string.c, ngx_conf_file.c).

Plain functions with no Ansible imports, so that modules, filters and pytest share them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# NGX_MAX_INT_T_VALUE on the 64-bit targets this collection supports.
MAX_INT = 2 ** 63 - 1
# ngx_parse_time(): a unit letter, its step (each step may follow only a smaller one) and
# its length in seconds. In milliseconds mode (is_sec false) the steps start at "month",
# so "y" and "M" are errors, as in nginx.
_STEP_START, _STEP_YEAR, _STEP_MONTH, _STEP_WEEK, _STEP_DAY = 0, 1, 2, 3, 4
_STEP_HOUR, _STEP_MIN, _STEP_SEC, _STEP_MSEC, _STEP_LAST = 5, 6, 7, 8, 9
_TIME_UNITS = {
    "y": (_STEP_YEAR, 365 * 24 * 3600),
    "M": (_STEP_MONTH, 30 * 24 * 3600),
    "w": (_STEP_WEEK, 7 * 24 * 3600),
    "d": (_STEP_DAY, 24 * 3600),
    "h": (_STEP_HOUR, 3600),
    "m": (_STEP_MIN, 60),
    "s": (_STEP_SEC, 1),
    " ": (_STEP_LAST, 1),
}
_DIGITS = re.compile(r"[0-9]+")
_SIZE = re.compile(r"^([0-9]+)([kKmMgG]?)$")
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def c_string(value):
    """The argument as a C consumer (getpwnam, fopen, strcasecmp) sees it: cut at NUL."""
    nul = value.find("\0")
    return value if nul < 0 else value[:nul]


def ngx_atoi(text):
    """ngx_atoi(): only ASCII digits, no sign, no space, overflow rejected; "00" is 0.

    Returns the int, or None where nginx returns NGX_ERROR.
    """
    if not text or _DIGITS.match(text) is None or _DIGITS.match(text).end() != len(text):
        return None
    value = int(text)
    return value if value <= MAX_INT else None


def ngx_parse_time(text, is_sec):
    """ngx_parse_time(): seconds when is_sec, else milliseconds; None on NGX_ERROR.

    Units may appear once each, largest first; a bare number at the end (or one followed
    by a single space) counts as seconds, so "500ms9" is 9500 ms and "5 5" is 10 s.
    """
    value = total = 0
    valid = False
    step = _STEP_START if is_sec else _STEP_MONTH
    pos = 0
    end = len(text)
    while pos < end:
        char = text[pos]
        if "0" <= char <= "9":
            value = value * 10 + ord(char) - 48
            if value > MAX_INT:
                return None
            valid = True
            pos += 1
            continue
        pos += 1
        if char == "m" and pos < end and text[pos] == "s":
            if is_sec or step >= _STEP_MSEC:
                return None
            pos += 1
            step, scale, limit = _STEP_MSEC, 1, MAX_INT
        elif char in _TIME_UNITS:
            new_step, scale = _TIME_UNITS[char]
            if new_step == _STEP_YEAR:
                if step > _STEP_START:
                    return None
            elif step >= (_STEP_SEC if new_step == _STEP_LAST else new_step):
                return None
            step = new_step
            limit = MAX_INT // scale
        else:
            return None
        if step != _STEP_MSEC and not is_sec:
            scale *= 1000
            limit //= 1000
        if value > limit:
            return None
        value *= scale
        if total > MAX_INT - value:
            return None
        total += value
        value = 0
        while pos < end and text[pos] == " ":
            pos += 1
    if not valid:
        return None
    if not is_sec:
        if value > MAX_INT // 1000:
            return None
        value *= 1000
    if total > MAX_INT - value:
        return None
    return total + value


def ngx_parse_size(text):
    """ngx_parse_size() (ngx_conf_set_size_slot): digits with an optional k/K or m/M.

    Returns bytes, or None on NGX_ERROR. "g" is not a size unit for nginx (only offsets).
    """
    if not text:
        return None
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1].lower(), 1)
    number = ngx_atoi(text[:-1] if scale != 1 else text)
    if number is None or number > MAX_INT // scale:
        return None
    return number * scale


def ngx_flag(text):
    """ngx_conf_set_flag_slot(): True for on, False for off (any case, C string), else None."""
    word = c_string(text).lower()
    if word == "on":
        return True
    if word == "off":
        return False
    return None


def parse_msec(text):
    """A directive value read by ngx_conf_set_msec_slot, in seconds (float), or None."""
    msec = ngx_parse_time(text, False)
    return None if msec is None else msec / 1000.0


def parse_duration(value):
    """Return the duration in seconds (float) of an nginx time value such as ``1m30s``.

    For role and policy input: what ngx_parse_time accepts in milliseconds mode (``500ms``)
    or in seconds mode (``1y``). Raises ValueError quoting the value otherwise.
    """
    if isinstance(value, bool):
        raise ValueError("invalid nginx duration %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("invalid nginx duration %r: negative" % (value,))
        return float(value)
    text = str(value)
    seconds = parse_msec(text)
    if seconds is None:
        seconds = ngx_parse_time(text, True)
    if seconds is None:
        raise ValueError("invalid nginx duration %r" % (value,))
    return float(seconds)


def parse_size(value):
    """Return the size in bytes of a size value such as ``10m``, ``8k`` or ``1g``.

    For role input (offsets such as client_max_body_size accept g as well).
    """
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
