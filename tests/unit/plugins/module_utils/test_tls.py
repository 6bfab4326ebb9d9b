# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate logic of tls_secret: SAN coverage, chain order, expiry and renewal, key mismatch."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils import tls

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return tls.generate_ca("Test CA", 3650, now=NOW)


@pytest.fixture(scope="module")
def server(ca):
    ca_key, ca_cert = ca
    return tls.generate_server_certificate(ca_key, ca_cert, "hub.example.org", ["hub.example.org", "*.users.example.org"],
                                           ["192.0.2.10", "2001:db8::1"], 365, now=NOW)


def pems(ca, server):
    return (tls.certificate_pem(server[1]), tls.private_key_pem(server[0]), tls.certificate_pem(ca[1]))


@pytest.mark.parametrize("name, covered", [
    ("hub.example.org", True),
    ("HUB.example.org.", True),
    ("alice.users.example.org", True),
    ("users.example.org", False),
    ("a.b.users.example.org", False),
    ("other.example.org", False),
])
def test_dns_name_coverage_with_single_label_wildcards(name, covered):
    assert tls.dns_name_covered(name, ["hub.example.org", "*.users.example.org"]) is covered


def test_uncovered_names_lists_missing_dns_and_ips_in_request_order(server):
    cert = server[1]
    assert tls.uncovered_names(cert, ["hub.example.org", "x.example.org"], ["192.0.2.10", "192.0.2.11"]) == \
        ["x.example.org", "192.0.2.11"]
    assert tls.uncovered_names(cert, [], ["2001:0db8:0000::1"]) == []


def test_valid_bundle_passes_and_returns_the_server_certificate(ca, server):
    cert_pem, key_pem, chain_pem = pems(ca, server)
    cert = tls.validate_bundle(cert_pem, key_pem, chain_pem, ["hub.example.org"], ["192.0.2.10"],
                               now=NOW + datetime.timedelta(days=1))
    assert tls.fingerprint(cert) == tls.fingerprint(server[1])


def test_key_mismatch_is_refused_without_echoing_the_key(ca, server):
    cert_pem, _key, chain_pem = pems(ca, server)
    wrong_key = tls.private_key_pem(ca[0])
    with pytest.raises(tls.TLSValidationError) as err:
        tls.validate_bundle(cert_pem, wrong_key, chain_pem, [], [], now=NOW)
    assert "private_key does not match" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


def test_chain_in_wrong_order_is_refused(ca, server):
    cert_pem, key_pem, chain_pem = pems(ca, server)
    other_ca = tls.generate_ca("Other CA", 3650, now=NOW)[1]
    with pytest.raises(tls.TLSValidationError, match="chain order: certificate 0"):
        tls.validate_bundle(cert_pem, key_pem, tls.certificate_pem(other_ca), [], [], now=NOW)


def test_intermediate_chain_must_go_leaf_first():
    root_key, root = tls.generate_ca("Root", 3650, now=NOW)
    # An intermediate CA signed by the root (path_length=0 on the root is not enforced here).
    inter_key, inter = tls.generate_server_certificate(root_key, root, "Intermediate", [], [], 1000, now=NOW)
    leaf_key, leaf = tls.generate_server_certificate(inter_key, inter, "leaf", ["leaf.example.org"], [], 100, now=NOW)
    good = tls.certificate_pem(inter) + tls.certificate_pem(root)
    bad = tls.certificate_pem(root) + tls.certificate_pem(inter)
    tls.validate_bundle(tls.certificate_pem(leaf), tls.private_key_pem(leaf_key), good, [], [], now=NOW)
    with pytest.raises(tls.TLSValidationError, match="chain order"):
        tls.validate_bundle(tls.certificate_pem(leaf), tls.private_key_pem(leaf_key), bad, [], [], now=NOW)


def test_expired_and_not_yet_valid_certificates_are_refused(ca, server):
    cert_pem, key_pem, chain_pem = pems(ca, server)
    with pytest.raises(tls.TLSValidationError, match="certificate expired on"):
        tls.validate_bundle(cert_pem, key_pem, chain_pem, [], [], now=NOW + datetime.timedelta(days=400))
    with pytest.raises(tls.TLSValidationError, match="not valid before"):
        tls.validate_bundle(cert_pem, key_pem, chain_pem, [], [], now=NOW - datetime.timedelta(days=1))
    # check_dates=False is how existing files are judged before the renewal decision.
    tls.validate_bundle(cert_pem, key_pem, chain_pem, [], [], now=NOW + datetime.timedelta(days=400), check_dates=False)


def test_expired_chain_certificate_is_named():
    root_key, root = tls.generate_ca("Short Root", 10, now=NOW)
    leaf_key, leaf = tls.generate_server_certificate(root_key, root, "leaf", ["leaf.example.org"], [], 365, now=NOW)
    # The leaf's lifetime is capped at the CA's.
    assert tls.not_valid_after(leaf) == tls.not_valid_after(root)
    with pytest.raises(tls.TLSValidationError, match="expired"):
        tls.validate_bundle(tls.certificate_pem(leaf), tls.private_key_pem(leaf_key), tls.certificate_pem(root),
                            [], [], now=NOW + datetime.timedelta(days=11))


def test_san_not_covering_a_requested_name_is_refused(ca, server):
    cert_pem, key_pem, chain_pem = pems(ca, server)
    with pytest.raises(tls.TLSValidationError, match="does not cover: evil.example.org, 192.0.2.99"):
        tls.validate_bundle(cert_pem, key_pem, chain_pem, ["evil.example.org"], ["192.0.2.99"], now=NOW)


@pytest.mark.parametrize("days_later, renew_before, expected", [
    (1, 30, None),
    (334, 30, None),
    (335, 30, "within renew_before_days=30"),
    (364, 0, None),
    (366, 0, "expired"),
])
def test_renewal_decision_by_expiry(server, days_later, renew_before, expected):
    reason = tls.renewal_reason(server[1], renew_before, ["hub.example.org"], [],
                                now=NOW + datetime.timedelta(days=days_later))
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


def test_renewal_decision_by_new_name(server):
    reason = tls.renewal_reason(server[1], 30, ["hub.example.org", "new.example.org"], [], now=NOW)
    assert reason == "certificate does not cover new.example.org"


def test_ca_is_reused_only_while_it_outlives_a_new_certificate(ca):
    key_pem, cert_pem = tls.private_key_pem(ca[0]), tls.certificate_pem(ca[1])
    assert tls.ca_reusable(key_pem, cert_pem, 365, now=NOW)
    assert not tls.ca_reusable(key_pem, cert_pem, 365, now=NOW + datetime.timedelta(days=3650 - 100))
    other_key = tls.private_key_pem(tls.new_private_key())
    assert not tls.ca_reusable(other_key, cert_pem, 365, now=NOW)
    assert not tls.ca_reusable("junk", cert_pem, 365, now=NOW)


def test_generated_rsa_certificate_validates():
    ca_key, ca_cert = tls.generate_ca("RSA CA", 100, key_type="rsa", now=NOW)
    key, cert = tls.generate_server_certificate(ca_key, ca_cert, "rsa.example.org", ["rsa.example.org"], [], 30,
                                                key_type="rsa", now=NOW)
    tls.validate_bundle(tls.certificate_pem(cert), tls.private_key_pem(key), tls.certificate_pem(ca_cert),
                        ["rsa.example.org"], [], now=NOW)


def test_garbage_inputs_name_the_part():
    with pytest.raises(tls.TLSValidationError, match="^certificate contains no PEM certificate$"):
        tls.load_certificates("nope", "certificate")
    with pytest.raises(tls.TLSValidationError, match="^private_key is not an unencrypted PEM private key$"):
        tls.load_private_key("-----BEGIN PRIVATE KEY-----\nsecretstuff\n-----END PRIVATE KEY-----\n", "private_key")


@pytest.mark.parametrize("dns, ips, message", [
    (["-bad.example.org"], [], "dns_names"),
    (["bad..example.org"], [], "dns_names"),
    (["a.*.example.org"], [], "dns_names"),
    (["ünï.example.org"], [], "dns_names"),
    (["x" * 64 + ".org"], [], "dns_names"),
    ([], ["1.2.3"], "ip_addresses"),
])
def test_malformed_names_are_refused(dns, ips, message):
    with pytest.raises(tls.TLSValidationError, match=message):
        tls.validate_names(dns, ips)


def test_wellformed_names_pass():
    tls.validate_names(["*.users.example.org", "hub", "hub.example.org."], ["::1", "10.0.0.1"])


def test_content_hash_distinguishes_part_boundaries():
    assert tls.content_hash("ab", "c") != tls.content_hash("a", "bc")
    assert tls.content_hash("abc") == tls.content_hash(b"abc")
