#!/bin/sh
# Make a CA and a server certificate for $LTI_HOSTNAME, then run the platform in the
# foreground (its settings from the environment, see lms.py).
set -eu
: "${LTI_HOSTNAME:?}"
tls=/srv/lti/tls
/srv/test_ca.sh "$tls" "Hubfleet test LTI CA" "$LTI_HOSTNAME"
export LTI_TLS_KEY="$tls/server.key" LTI_TLS_CERT="$tls/server.crt"
exec /srv/lti/venv/bin/python /srv/lti/lms.py
