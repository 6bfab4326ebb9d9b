# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate logic for the tls_secret module: generate, load, validate, decide renewal.

Pure functions over PEM bytes and ``cryptography`` objects; no Ansible, no Docker, so
the unit tests exercise every decision directly. Error messages never include key
material.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import ipaddress
import traceback

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None


class TLSValidationError(ValueError):
    """Certificate material is unusable; the message says why and names the part."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def content_hash(*parts):
    """sha256 hex digest over PEM parts; stored in labels, never the data itself."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else (part or b"")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def _to_bytes(pem):
    return pem.encode("utf-8") if isinstance(pem, str) else pem


def not_valid_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def not_valid_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return value


def load_certificates(pem, what):
    """Every certificate in a PEM bundle, in order; ``what`` names the input in errors."""
    data = _to_bytes(pem or b"")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TLSValidationError("%s contains no PEM certificate" % what)
    try:
        return x509.load_pem_x509_certificates(data)
    except AttributeError:  # cryptography < 39: one certificate per block
        marker = b"-----END CERTIFICATE-----"
        blocks = [block + marker for block in data.split(marker) if b"-----BEGIN" in block]
        try:
            return [x509.load_pem_x509_certificate(block) for block in blocks]
        except ValueError:
            raise TLSValidationError("%s is not a valid PEM certificate" % what)
    except ValueError:
        raise TLSValidationError("%s is not a valid PEM certificate" % what)


def load_private_key(pem, what):
    """A private key from PEM; the error message never repeats the input."""
    try:
        return serialization.load_pem_private_key(_to_bytes(pem or b""), password=None)
    except (ValueError, TypeError):
        raise TLSValidationError("%s is not an unencrypted PEM private key" % what)


def key_matches_certificate(key, cert):
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return key.public_key().public_bytes(encoding, public) == cert.public_key().public_bytes(encoding, public)


def certificate_names(cert):
    """(dns names, ip address strings) from the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


def dns_name_covered(name, san_dns_names):
    """Whether ``name`` is matched by a SAN entry; a wildcard covers exactly one left label."""
    name = name.lower().rstrip(".")
    for pattern in san_dns_names:
        pattern = pattern.lower().rstrip(".")
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name:
            first, rest = name.split(".", 1)
            if first and rest == pattern[2:]:
                return True
    return False


def uncovered_names(cert, dns_names, ip_addresses):
    """Requested names the certificate's SANs do not cover, in request order."""
    san_dns, san_ips = certificate_names(cert)
    san_ips = set(ipaddress.ip_address(ip) for ip in san_ips)
    missing = [name for name in dns_names if not dns_name_covered(name, san_dns)]
    missing.extend(ip for ip in ip_addresses if ipaddress.ip_address(ip) not in san_ips)
    return missing


def _issued_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except AttributeError:  # cryptography < 40: compare names only
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_chain_order(certs):
    """Raise unless every certificate is directly issued by the next one."""
    for index in range(len(certs) - 1):
        if not _issued_by(certs[index], certs[index + 1]):
            raise TLSValidationError(
                "chain order: certificate %d (%s) is not issued by certificate %d (%s); "
                "give the server certificate first, then each issuer in turn"
                % (index, certs[index].subject.rfc4514_string(), index + 1, certs[index + 1].subject.rfc4514_string())
            )


def renewal_reason(cert, renew_before_days, dns_names, ip_addresses, now=None):
    """Why ``cert`` must be replaced (a sentence), or None when it is still good."""
    now = now or utcnow()
    if not_valid_before(cert) > now:
        return "certificate is not valid before %s" % not_valid_before(cert).isoformat()
    expires = not_valid_after(cert)
    if expires <= now:
        return "certificate expired on %s" % expires.isoformat()
    if expires - now <= datetime.timedelta(days=renew_before_days):
        return "certificate expires on %s, within renew_before_days=%d" % (expires.isoformat(), renew_before_days)
    missing = uncovered_names(cert, dns_names, ip_addresses)
    if missing:
        return "certificate does not cover %s" % ", ".join(missing)
    return None


def validate_bundle(cert_pem, key_pem, chain_pem, dns_names, ip_addresses, now=None, what="certificate",
                    check_dates=True):
    """Validate a server certificate, its key and issuer chain for the requested names.

    Returns the parsed server certificate. Raises TLSValidationError naming the problem:
    key mismatch, wrong chain order, expired or not yet valid (unless ``check_dates`` is
    false), SANs not covering a name.
    """
    now = now or utcnow()
    certs = load_certificates(cert_pem, what)
    server = certs[0]
    chain = certs[1:]
    if chain_pem:
        chain.extend(load_certificates(chain_pem, "chain"))
    key = load_private_key(key_pem, "private_key")
    if not key_matches_certificate(key, server):
        raise TLSValidationError("private_key does not match %s (%s)" % (what, server.subject.rfc4514_string()))
    check_chain_order([server] + chain)
    for index, cert in enumerate([server] + chain if check_dates else []):
        label = what if index == 0 else "chain certificate %d (%s)" % (index, cert.subject.rfc4514_string())
        if not_valid_after(cert) <= now:
            raise TLSValidationError("%s expired on %s" % (label, not_valid_after(cert).isoformat()))
        if not_valid_before(cert) > now:
            raise TLSValidationError("%s is not valid before %s" % (label, not_valid_before(cert).isoformat()))
    missing = uncovered_names(server, dns_names, ip_addresses)
    if missing:
        raise TLSValidationError("%s subjectAltName does not cover: %s" % (what, ", ".join(missing)))
    return server


def new_private_key(key_type="ecdsa", key_size=2048):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def certificate_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def generate_ca(common_name, valid_days, key_type="ecdsa", now=None):
    """A self-signed CA: (key, certificate)."""
    now = now or utcnow()
    key = new_private_key(key_type)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def generate_server_certificate(ca_key, ca_cert, common_name, dns_names, ip_addresses, valid_days,
                                key_type="ecdsa", now=None):
    """A server certificate signed by the CA for the given names: (key, certificate)."""
    now = now or utcnow()
    key = new_private_key(key_type)
    alt_names = [x509.DNSName(name) for name in dns_names]
    alt_names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
    not_after = min(now + datetime.timedelta(days=valid_days), not_valid_after(ca_cert))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def ca_reusable(ca_key_pem, ca_cert_pem, valid_days, now=None):
    """Whether an existing CA can sign a new server certificate valid for ``valid_days``."""
    now = now or utcnow()
    try:
        ca_cert = load_certificates(ca_cert_pem, "CA certificate")[0]
        ca_key = load_private_key(ca_key_pem, "CA private key")
    except TLSValidationError:
        return False
    if not key_matches_certificate(ca_key, ca_cert):
        return False
    return not_valid_after(ca_cert) - now > datetime.timedelta(days=valid_days)


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex()


def describe(cert):
    """Non-secret facts about a certificate for results and diffs."""
    dns, ips = certificate_names(cert)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_valid_after(cert).isoformat(),
        "dns_names": dns,
        "ip_addresses": ips,
        "sha256_fingerprint": fingerprint(cert),
    }


def validate_names(dns_names, ip_addresses):
    """Raise TLSValidationError naming a malformed dns_names or ip_addresses entry."""
    for name in dns_names:
        labels = name.rstrip(".").split(".")
        if not name or any(not label or len(label) > 63 for label in labels) or len(name) > 253:
            raise TLSValidationError("dns_names: %r is not a valid DNS name" % name)
        for index, label in enumerate(labels):
            if label == "*" and index == 0:
                continue
            if not all(c.isalnum() or c == "-" for c in label) or label.startswith("-") or not label.isascii():
                raise TLSValidationError("dns_names: %r is not a valid DNS name" % name)
    for ip in ip_addresses:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise TLSValidationError("ip_addresses: %r is not an IP address" % ip)
