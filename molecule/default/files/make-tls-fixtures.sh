#!/bin/sh
# Test-only TLS material for the cosocket checks (tests/test_cosocket_tls.py): two CAs, a
# leaf for tls.molecule.test from each, and the "trusted" CA added to the system bundle that
# the role's server_lua_ssl_trusted_certificate names. The other CA stays unknown.
set -eu
dir=/etc/ssl/molecule-tls
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"
printf 'subjectAltName=DNS:tls.molecule.test\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' > leaf.ext
for ca in trusted unknown; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=molecule $ca CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$ca-ca.key" -out "$ca-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=tls.molecule.test \
    -keyout "$ca-leaf.key" -out "$ca-leaf.csr" 2>/dev/null
  openssl x509 -req -in "$ca-leaf.csr" -CA "$ca-ca.crt" -CAkey "$ca-ca.key" -CAcreateserial \
    -days 3650 -extfile leaf.ext -out "$ca-leaf.crt" 2>/dev/null
done
install -m 0644 trusted-ca.crt /usr/local/share/ca-certificates/molecule-trusted-ca.crt
update-ca-certificates >/dev/null
touch done
