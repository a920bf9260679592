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
