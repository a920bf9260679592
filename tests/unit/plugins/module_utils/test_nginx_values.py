from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    format_seconds,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("500ms", 0.5),
        ("2s", 2),
        ("1m30s", 90),
        ("1m 30s", 90),
        ("10", 10),
        ("1h", 3600),
        ("1d", 86400),
        ("1w", 604800),
        ("1M", 2592000),
        ("1y", 31536000),
        ("0", 0),
        (5, 5),
        ("1h1m1s1ms", 3661.001),
    ],
)
def test_parse_duration_accepts_nginx_syntax(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "-1s", "10x", "", "1s1m", "1s1s", "s", "1.5s", True, -3, "2 s x"])
def test_parse_duration_rejects_what_nginx_rejects(text):
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert repr(text) in str(err.value) or str(text) in str(err.value)


@pytest.mark.parametrize("text,size", [("8k", 8192), ("10m", 10485760), ("1G", 1073741824), ("100", 100), (512, 512)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10x", "-1", "k", "1.5m", False])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_seconds():
    assert format_seconds(5.0) == "5s"
    assert format_seconds(0.5) == "0.5s"


# -- the readers nginx uses for directive values ---------------------------------------------

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (  # noqa: E402
    c_string,
    ngx_atoi,
    ngx_flag,
    ngx_parse_size,
    ngx_parse_time,
    parse_msec,
)


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("00", 0), ("007", 7), ("9223372036854775807", 2 ** 63 - 1),
    ("", None), ("+1", None), ("-1", None), (" 1", None), ("1 ", None), ("1k", None),
    ("9223372036854775808", None), ("\u0661", None), ("1\x00", None),
])
def test_ngx_atoi(text, value):
    assert ngx_atoi(text) == value


@pytest.mark.parametrize("text,is_sec,value", [
    ("500ms9", False, 9500),      # a trailing bare number is seconds
    ("5 5", False, 10000),        # one space closes a part like a unit
    ("1m 30s", False, 90000),
    ("1m30", False, 90000),
    ("1h1m1s1ms", False, 3661001),
    ("0", False, 0),
    ("1y", False, None),          # no years or months in milliseconds mode
    ("1M", False, None),
    ("1y", True, 31536000),
    ("1M2w", True, 30 * 86400 + 14 * 86400),
    ("500ms", True, None),        # no milliseconds in seconds mode
    ("5 5 5", False, None),
    ("1s ", False, 1000),
    ("s", False, None),
    ("", False, None),
    ("1s1s", False, None),
    ("1ms1s", False, None),
    ("1.5s", False, None),
    ("9223372036854775807", True, 2 ** 63 - 1),
    ("9223372036854775807", False, None),
])
def test_ngx_parse_time(text, is_sec, value):
    assert ngx_parse_time(text, is_sec) == value


def test_parse_msec_gives_seconds():
    assert parse_msec("500ms9") == 9.5
    assert parse_msec("1y") is None


@pytest.mark.parametrize("text,value", [
    ("8k", 8192), ("8K", 8192), ("1m", 1048576), ("00", 0), ("10", 10),
    ("1g", None), ("", None), ("k", None), ("1.5m", None), (" 1k", None),
])
def test_ngx_parse_size(text, value):
    assert ngx_parse_size(text) == value


@pytest.mark.parametrize("text,value", [
    ("on", True), ("ON", True), ("oN", True), ("off", False), ("OFF", False),
    ("off\x00x", False), ("on\x00", True), ("of", None), ("offx", None), ("1", None), ("", None),
])
def test_ngx_flag(text, value):
    assert ngx_flag(text) is value


def test_c_string_ends_at_nul():
    assert c_string("root\x00x") == "root"
    assert c_string("root") == "root"
    assert c_string("\x00root") == ""
