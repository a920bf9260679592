"""Cosocket TLS on a converged host: certificates are verified, old protocols refused.

Loopback TLS servers (openssl s_server, started as transient systemd units) answer with a
certificate for tls.molecule.test from a CA that the role's lua_ssl_trusted_certificate
bundle holds, from a CA it does not hold, and over TLSv1.1 only. A Lua location
(/probe/tls, files/molecule-probe.conf.j2) calls sslhandshake(nil, name, true) on each. All
traffic stays on loopback inside the container.
"""

import re
import time

import pytest

FIXTURES = "/etc/ssl/molecule-tls"
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SERVERS = {
    # port: (unit, certificate prefix, extra s_server arguments)
    8443: ("molecule-tls-trusted", "trusted", []),
    8444: ("molecule-tls-unknown-ca", "unknown", []),
    # TLSv1.1 needs security level 0 in OpenSSL 3 (its signature algorithms are legacy).
    8445: ("molecule-tls-v1-1", "trusted", ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
}


def probe(host, port):
    return host.check_output("curl -s --max-time 10 %s", "http://127.0.0.1:8081/probe/tls?port=%d" % port)


def error_log_since(host, marker):
    """Lines the error log got after marker (a byte offset)."""
    return host.check_output("tail -c +%s /var/log/nginx/error.log", str(marker + 1))


def log_size(host):
    return int(host.check_output("stat -c %s /var/log/nginx/error.log"))


@pytest.fixture(scope="module")
def servers(host):
    for port, (unit, cert, extra) in SERVERS.items():
        host.run("systemctl stop %s", unit)
        host.run("systemctl reset-failed %s", unit)
        argv = ["systemd-run", "--unit", unit, "--collect", "openssl", "s_server", "-quiet", "-www",
                "-accept", "127.0.0.1:%d" % port, "-cert", "%s/%s-leaf.crt" % (FIXTURES, cert),
                "-key", "%s/%s-leaf.key" % (FIXTURES, cert)] + extra
        host.check_output(" ".join(argv))
    deadline = time.time() + 15
    while time.time() < deadline:
        listening = host.check_output("ss -Hltn")
        if all("127.0.0.1:%d " % port in listening for port in SERVERS):
            break
        time.sleep(0.3)
    else:
        pytest.fail("TLS test servers did not start: %s" % host.run("journalctl -u 'molecule-tls-*' -n 20").stdout)
    yield
    for unit, _cert, _extra in SERVERS.values():
        host.run("systemctl stop %s", unit)


def test_the_trusted_ca_is_in_the_bundle_the_role_configures(host):
    effective = host.check_output("nginx -T 2>/dev/null")
    assert "lua_ssl_trusted_certificate %s;" % BUNDLE in effective
    assert "lua_ssl_protocols TLSv1.2 TLSv1.3;" in effective
    trusted = host.check_output("openssl x509 -in %s/trusted-ca.crt -noout -fingerprint -sha256", FIXTURES)
    in_bundle = host.check_output(
        "openssl crl2pkcs7 -nocrl -certfile %s | openssl pkcs7 -print_certs | grep -c 'molecule trusted CA' || true",
        BUNDLE)
    assert trusted and int(in_bundle) >= 1
    unknown = host.check_output(
        "openssl crl2pkcs7 -nocrl -certfile %s | openssl pkcs7 -print_certs | grep -c 'molecule unknown CA' || true",
        BUNDLE)
    assert int(unknown) == 0


def test_a_server_whose_ca_is_in_the_bundle_is_accepted(host, servers):
    answer = probe(host, 8443)
    assert answer.startswith("ACCEPTED HTTP/1.0 200"), answer


def test_a_certificate_from_an_unknown_ca_is_refused_with_the_verification_error(host, servers):
    """Every attempt is refused and logged; none ever reads the server's answer.

    lua-nginx-module returns OpenSSL's verify result, "<code>: <reason>": the leaf's issuer is
    in no trusted bundle, so the first (and only) certificate cannot be verified. When the
    handshake completes within its first call (loopback timing), lua-resty-core 0.1.25
    (Debian 12) raises "assertion failed!" instead of returning it; the connection is closed
    all the same. Several attempts exercise both paths, and neither may ever accept.
    """
    attempts = 20
    marker = log_size(host)
    answers = [probe(host, 8444).strip() for dummy in range(attempts)]
    refused = [a for a in answers if a == "REFUSED 21: unable to verify the first certificate"]
    raised = [a for a in answers if a.startswith("RAISED ") and a.endswith("assertion failed!")]
    assert len(refused) + len(raised) == attempts, answers
    assert refused, answers
    log = error_log_since(host, marker)
    assert log.count("lua ssl certificate verify error: (21: unable to verify the first certificate)") \
        == attempts, log


def test_the_tls_1_1_server_really_speaks_tls_1_1(host, servers):
    """The refusal below is the client's choice: the server completes a TLSv1.1 handshake."""
    session = host.run("echo | openssl s_client -connect 127.0.0.1:8445 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' "
                       "-servername tls.molecule.test 2>&1")
    assert re.search(r"^\s*Protocol\s*: TLSv1\.1$", session.stdout, re.M), session.stdout


def test_a_tls_1_1_only_server_is_refused(host, servers):
    marker = log_size(host)
    answer = probe(host, 8445)
    assert answer.strip() == "REFUSED handshake failed", answer
    log = error_log_since(host, marker)
    # Debian 12 (OpenSSL 3.0) and 13 (3.5) alike: the cosocket offers TLSv1.2 and TLSv1.3
    # only (lua_ssl_protocols), so the TLSv1.1-only server answers with a protocol_version alert.
    assert ("SSL_do_handshake() failed (SSL: error:0A00042E:SSL routines::tlsv1 alert protocol version:"
            "SSL alert number 70)") in log, log


# A second nginx on loopback, from a throw-away prefix, whose lua_ssl_protocols still allows
# TLSv1.1 (lua-nginx-module's default does too): it shows what the role's setting changes.
LEGACY_PREFIX = "/run/molecule-tls-legacy"
LEGACY_CONF = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/error.log;
events { worker_connections 16; }
http {
    access_log off;
    lua_package_path "/usr/share/lua/5.1/?.lua";
    lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so";
    lua_ssl_trusted_certificate %(bundle)s;
    lua_ssl_verify_depth 3;
    lua_ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:8091;
        location = /tls {
            content_by_lua_block {
                local sock = ngx.socket.tcp()
                sock:settimeout(2000)
                assert(sock:connect("127.0.0.1", 8445))
                local session, err = sock:sslhandshake(nil, "tls.molecule.test", true)
                ngx.say(session and "ACCEPTED" or "REFUSED " .. tostring(err))
            }
        }
    }
}
""" % {"prefix": LEGACY_PREFIX, "bundle": BUNDLE}


@pytest.fixture(scope="module")
def legacy_nginx(host, servers):
    host.check_output("mkdir -p %s/conf", LEGACY_PREFIX)
    host.check_output("printf '%%s' %s > %s/conf/nginx.conf", LEGACY_CONF, LEGACY_PREFIX)
    host.check_output("nginx -p %s/ -c conf/nginx.conf", LEGACY_PREFIX)
    yield LEGACY_PREFIX
    host.run("nginx -p %s/ -c conf/nginx.conf -s quit", LEGACY_PREFIX)
    # Gone before the other test modules count nginx masters.
    deadline = time.time() + 15
    while host.file("%s/nginx.pid" % LEGACY_PREFIX).exists and time.time() < deadline:
        time.sleep(0.2)
    host.run("rm -rf %s", LEGACY_PREFIX)


def test_what_refuses_tls_1_1_on_each_distro(host, legacy_nginx):
    """With TLSv1.1 allowed, Debian 12's client negotiates it and only then fails on the
    server's legacy signature algorithm: the role's lua_ssl_protocols is what refuses the
    protocol there. Debian 13's OpenSSL does not offer TLSv1.1 at its default security level
    at all, so the refusal is the same protocol_version alert with or without the setting.
    """
    answer = host.check_output("curl -s --max-time 10 http://127.0.0.1:8091/tls")
    assert answer.strip() == "REFUSED handshake failed", answer
    log = host.check_output("cat %s/error.log", legacy_nginx)
    version = host.system_info.release or ""
    if version.startswith("12"):
        assert "legacy sigalg disallowed or unsupported" in log, log
        assert "alert protocol version" not in log, log
    else:
        assert "tlsv1 alert protocol version" in log, log
