#!/bin/sh
# Make a CA and a certificate for Pebble's own HTTPS listeners ($PEBBLE_HOSTNAME and
# localhost; the CA at /srv/pebble/tls/ca.crt is what ACME clients trust), start
# pebble-challtestsrv as a DNS server with no default answers (names resolve only once the
# test adds them), then run Pebble validating HTTP-01 on $PEBBLE_HTTP_PORT of the address
# a name resolves to.
set -eu
: "${PEBBLE_HOSTNAME:?}"
http_port=${PEBBLE_HTTP_PORT:-8080}
tls=/srv/pebble/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Hubfleet test Pebble listener CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$PEBBLE_HOSTNAME" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$PEBBLE_HOSTNAME" > "$tls/ext.cnf"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/ext.cnf" -out "$tls/server.crt" 2>/dev/null
cat > /srv/pebble/config.json <<JSON
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "$tls/server.crt", "privateKey": "$tls/server.key",
            "httpPort": $http_port, "tlsPort": 5001, "ocspResponderURL": "",
            "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv4 "" -defaultIPv6 "" -dns01 127.0.0.1:8053 -management :8055 \
  -http01 "" -https01 "" -tlsalpn01 "" &
# Every order is validated afresh (no reuse of earlier authorisations).
export PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0
exec pebble -config /srv/pebble/config.json -dnsserver 127.0.0.1:8053
