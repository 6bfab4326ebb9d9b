#!/bin/sh
# Make a CA and a server certificate for $LDAP_HOSTNAME, load the configuration and the
# directory (passwords from $ADA_PASSWORD and $CARL_PASSWORD, stored hashed), then run
# slapd in the foreground on ldap:/// (StartTLS offered).
set -eu
: "${LDAP_HOSTNAME:?}" "${ADA_PASSWORD:?}" "${CARL_PASSWORD:?}"
tls=/srv/ldap/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Hubfleet test LDAP CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$LDAP_HOSTNAME" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$LDAP_HOSTNAME" > "$tls/ext.cnf"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/ext.cnf" -out "$tls/server.crt" 2>/dev/null
slapadd -n 0 -F /etc/ldap/slapd.d -l /srv/ldap/config.ldif
sed -e "s|@ADA_PASSWORD@|$(slappasswd -s "$ADA_PASSWORD")|" -e "s|@CARL_PASSWORD@|$(slappasswd -s "$CARL_PASSWORD")|" \
  /srv/ldap/directory.ldif | slapadd -n 1 -F /etc/ldap/slapd.d
chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap "$tls"
exec slapd -d 0 -h "ldap:///" -F /etc/ldap/slapd.d -u openldap -g openldap
