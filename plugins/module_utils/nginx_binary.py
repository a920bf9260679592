# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx binary a module works with: where it is and what `-V` says.

One way for every module: the binary given, else `openresty`, else `nginx` on the path or in
OpenResty's own directories; `-V` run once, with one message when it fails. Standard
library only; the lookup and the command runner are passed in (AnsibleModule.get_bin_path
and run_command on targets, fakes in tests).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import parse_version_output

# Official OpenResty packages install here, often outside the path of a remote shell.
EXTRA_BIN_DIRS = ["/usr/local/openresty/bin", "/usr/local/openresty/nginx/sbin"]
NAMES = ("openresty", "nginx")


class NginxBinaryError(Exception):
    """No binary was found, or `-V` failed: the message says which and why."""


def find_binary(given, get_bin_path):
    """The binary given, else the first of openresty and nginx that get_bin_path finds.

    get_bin_path(name, opt_dirs=...) returns a path or None. Raises NginxBinaryError when
    nothing is found.
    """
    if given:
        return given
    for name in NAMES:
        found = get_bin_path(name, opt_dirs=EXTRA_BIN_DIRS)
        if found:
            return found
    raise NginxBinaryError("no openresty or nginx binary found on the path or in %s: set binary"
                           % ", ".join(EXTRA_BIN_DIRS))


def version_text(run, binary):
    """What `binary -V` prints (nginx prints it to stderr). run(argv) returns (rc, out, err)."""
    rc, out, err = run([binary, "-V"])
    if rc != 0:
        raise NginxBinaryError("%s -V failed (rc %d): %s" % (binary, rc, (err or out).strip()))
    return err + out


def version_facts(run, binary):
    """nginx_runtime.parse_version_output() of `binary -V`."""
    return parse_version_output(version_text(run, binary))
