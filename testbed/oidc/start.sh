#!/bin/sh
# Make a CA and a server certificate for $OIDC_HOSTNAME, then run the provider in the
# foreground (its settings from the environment, see provider.js).
set -eu
: "${OIDC_HOSTNAME:?}"
tls=/srv/oidc/tls
/srv/test_ca.sh "$tls" "Hubfleet test OIDC CA" "$OIDC_HOSTNAME"
export OIDC_TLS_KEY="$tls/server.key" OIDC_TLS_CERT="$tls/server.crt"
exec node /srv/oidc/provider.js
