#!/bin/sh
# Make a CA and a server certificate for $LDAP_HOSTNAME, load the configuration and the
# directory (passwords from $ADA_PASSWORD and $CARL_PASSWORD, stored hashed), then run
# slapd in the foreground on ldap:/// (StartTLS offered).
set -eu
: "${LDAP_HOSTNAME:?}" "${ADA_PASSWORD:?}" "${CARL_PASSWORD:?}"
tls=/srv/ldap/tls
/srv/test_ca.sh "$tls" "Hubfleet test LDAP CA" "$LDAP_HOSTNAME"
slapadd -n 0 -F /etc/ldap/slapd.d -l /srv/ldap/config.ldif
sed -e "s|@ADA_PASSWORD@|$(slappasswd -s "$ADA_PASSWORD")|" -e "s|@CARL_PASSWORD@|$(slappasswd -s "$CARL_PASSWORD")|" \
  /srv/ldap/directory.ldif | slapadd -n 1 -F /etc/ldap/slapd.d
chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap "$tls"
exec slapd -d 0 -h "ldap:///" -F /etc/ldap/slapd.d -u openldap -g openldap
