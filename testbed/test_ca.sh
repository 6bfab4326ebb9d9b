#!/bin/sh
# test_ca.sh DIR CA_NAME SERVER_NAME [MORE_DNS_NAMES...]
# A throwaway test CA (DIR/ca.crt, DIR/ca.key, valid 2 days) and a server certificate it
# signs (DIR/server.crt, DIR/server.key) for SERVER_NAME and the other DNS names given.
# Shared by the test bed's service images (LDAP, Pebble, ...): copied into their build
# contexts by testbed/images.py. Test bed only.
set -eu
dir=$1 ca_name=$2 name=$3
shift 3
sans="DNS:$name"
for extra in "$@"; do sans="$sans,DNS:$extra"; done
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$ca_name" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" > "$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
  -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null
