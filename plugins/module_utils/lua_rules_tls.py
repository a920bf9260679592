# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of the catalogue about cosocket TLS: is the peer's certificate really verified?

lua-nginx-module verifies a cosocket's peer only when the code asks for it
(``sslhandshake(session, name, true)``) and only against ``lua_ssl_trusted_certificate``
(no bundle by default), accepts a chain of one certificate by default
(``lua_ssl_verify_depth 1``), and still allows TLSv1 and TLSv1.1 by default (SSLv3 before
0.10.25). These rules register in lua_catalogue.RULES like every other rule; lua_rules
imports this module so that the catalogue is always complete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat

from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (
    FILESYSTEM,
    LOW,
    MEDIUM,
    rule,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import find_tls_verify_off

LEGACY_SSL_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
MODERN_SSL_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
# lua_ssl_verify_depth's default, and the least that accepts a leaf signed by an
# intermediate (leaf + intermediate; the root comes from the bundle).
DEFAULT_VERIFY_DEPTH = 1
MIN_VERIFY_DEPTH = 2
# Lua module files larger than this are not read for lua-module-tls-verify-off.
MAX_SOURCE_BYTES = 4 * 1024 * 1024


def default_ssl_protocols(lua_module_version):
    """lua_ssl_protocols when the directive is absent, for a lua-nginx-module version.

    0.10.25 dropped SSLv3 from the default and added TLSv1.3. The version is None when
    nginx -V does not name the module (Debian's dynamic module): None is returned then.
    """
    if not lua_module_version:
        return None
    parts = []
    for piece in lua_module_version.split(".")[:3]:
        match = re.match(r"\d+", piece)  # "24rc1" is 24
        parts.append(int(match.group(0)) if match else 0)
    if tuple(parts) >= (0, 10, 25):
        return "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
    return "SSLv3 TLSv1 TLSv1.1 TLSv1.2"


def _missing_at_http(facts, name, consequence):
    http = facts.http
    if http is None or not facts.lua_in_use or facts.at_http(name):
        return
    yield ("no %s in http: %s" % (name, consequence), http.file, http.line)


@rule("lua-ssl-trusted-certificate-missing", MEDIUM, "lua_ssl_trusted_certificate is not set in http",
      "Without a trusted bundle a cosocket that verifies its peer fails every handshake, and "
      "the usual reaction is to turn verification off; set the CA bundle once in http.")
def lua_ssl_trusted_certificate_missing(facts):
    return _missing_at_http(facts, "lua_ssl_trusted_certificate",
                            "cosockets have no CA to verify a TLS peer against")


@rule("lua-ssl-protocols-legacy", MEDIUM, "lua_ssl_protocols allows a version older than TLSv1.2",
      "lua-nginx-module's default lua_ssl_protocols still offers TLSv1 and TLSv1.1 (SSLv3 "
      "before 0.10.25): a peer or a man in the middle can negotiate a broken protocol.")
def lua_ssl_protocols_legacy(facts):
    http = facts.http
    if http is not None and facts.lua_in_use and not facts.at_http("lua_ssl_protocols"):
        default = default_ssl_protocols(facts.versions.get("lua_nginx_module"))
        if default is None:
            text = ("the default allows TLSv1 and TLSv1.1 (and SSLv3 before lua-nginx-module "
                    "0.10.25)")
        else:
            legacy = [p for p in default.split() if p in LEGACY_SSL_PROTOCOLS]
            text = "the default %s allows %s" % (default, " and ".join(legacy))
        yield ("no lua_ssl_protocols in http: %s" % text, http.file, http.line)
    for node, _context in facts.named("lua_ssl_protocols"):
        legacy = [p for p in node.args if p in LEGACY_SSL_PROTOCOLS]
        if legacy:
            yield ("lua_ssl_protocols %s allows %s, older than TLSv1.2"
                   % (" ".join(node.args), " and ".join(legacy)), node.file, node.line)


@rule("lua-ssl-verify-depth-too-low", LOW, "lua_ssl_verify_depth is below 2",
      "The default depth 1 rejects any certificate issued by an intermediate CA, which is "
      "almost every public certificate; code then tends to switch verification off.")
def lua_ssl_verify_depth_too_low(facts):
    yield from _missing_at_http(facts, "lua_ssl_verify_depth",
                                "the default depth %d fails chains with an intermediate CA"
                                % DEFAULT_VERIFY_DEPTH)
    for node, _context in facts.named("lua_ssl_verify_depth"):
        value = node.args[0] if node.args else ""
        if not value.isdigit():
            yield ("lua_ssl_verify_depth %r is not a whole number" % value, node.file, node.line)
        elif int(value) < MIN_VERIFY_DEPTH:
            yield ("lua_ssl_verify_depth %s is below %d" % (value, MIN_VERIFY_DEPTH), node.file, node.line)


@rule("lua-tls-verify-off", MEDIUM, "inline Lua turns TLS certificate verification off",
      "sslhandshake() verifies the peer only when its verify argument is true, and "
      "lua-resty-http's ssl_verify = false skips it: the connection then trusts whoever "
      "answers, a man in the middle included.")
def lua_tls_verify_off(facts):
    for node, code, first_line in facts.inline_code():
        for reference, line in find_tls_verify_off(code):
            yield ("%s: %s does not verify the peer's certificate" % (node.directive, reference),
                   node.file, first_line + line - 1)


def _read_source(path):
    """The text of a regular file, read without following a symlink; None when not one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SOURCE_BYTES:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("latin-1")
    finally:
        os.close(fd)


@rule("lua-module-tls-verify-off", MEDIUM,
      "a Lua module or *_by_lua_file target turns TLS certificate verification off",
      "The same as lua-tls-verify-off for code in files: Lua modules under the module "
      "roots and *_by_lua_file targets.", needs=(FILESYSTEM,))
def lua_module_tls_verify_off(facts):
    paths = []
    for root in facts.unique_roots():
        roots = [r for r in facts.module_roots() if r.path == root.path]
        for path, st in facts.tree(root.path):
            if stat.S_ISREG(st.st_mode) and path.endswith(".lua") and any(r.is_module(path) for r in roots):
                paths.append(path)
    for node, _context, path in facts.lua_files():
        if "$" not in path:
            resolved = facts.resolve(path)
            if resolved:
                paths.append(os.path.realpath(resolved))
    seen = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        source = _read_source(path)
        if source is None:
            continue
        for reference, line in find_tls_verify_off(source):
            yield ("%s line %d: %s does not verify the peer's certificate" % (path, line, reference),
                   path, line)
