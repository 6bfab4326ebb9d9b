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
/srv/test_ca.sh "$tls" "Hubfleet test Pebble listener CA" "$PEBBLE_HOSTNAME" localhost
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
