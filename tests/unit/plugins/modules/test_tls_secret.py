# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_secret's pure decisions: secret versions, rotation, label-based renewal."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.hubfleet.jupyterhub.plugins.modules import tls_secret

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def secret(name, part, version):
    labels = {tls_secret.LABEL_PART: part, tls_secret.LABEL_VERSION: str(version)}
    return {"ID": "id-" + name, "Spec": {"Name": name, "Labels": labels}}


def versions_of(count):
    secrets = []
    for version in range(1, count + 1):
        for part, infix in (("certificate", "cert"), ("private_key", "key")):
            secrets.append(secret(tls_secret.secret_name("hub", infix, version), part, version))
    secrets.append({"ID": "stray", "Spec": {"Name": "stray", "Labels": {tls_secret.LABEL_VERSION: "x"}}})
    return tls_secret.group_versions(secrets)


def test_group_versions_ignores_unversioned_secrets():
    versions = versions_of(3)
    assert sorted(versions) == [1, 2, 3]
    assert versions[2]["private_key"]["Spec"]["Name"] == "hub-key-v2"


def test_rotation_keeps_the_newest_versions():
    removable, in_use = tls_secret.versions_to_remove(versions_of(4), 2, {})
    assert sorted(s["Spec"]["Name"] for s in removable) == ["hub-cert-v1", "hub-cert-v2", "hub-key-v1", "hub-key-v2"]
    assert in_use == []


def test_rotation_never_removes_a_version_a_service_uses():
    removable, in_use = tls_secret.versions_to_remove(versions_of(3), 1, {"id-hub-cert-v1": ["hub"]})
    assert [s["Spec"]["Name"] for s in in_use] == ["hub-cert-v1"]
    assert "hub-cert-v1" not in [s["Spec"]["Name"] for s in removable]
    assert len(removable) == 3


def test_label_renewal_reason():
    labels = {tls_secret.LABEL_NOT_AFTER: (NOW + datetime.timedelta(days=100)).isoformat(),
              tls_secret.LABEL_NAMES: "hub.example.org,192.0.2.1"}
    assert tls_secret.label_renewal_reason(labels, 30, ["HUB.example.org"], ["192.0.2.1"], now=NOW) is None
    assert "within renew_before_days=120" in tls_secret.label_renewal_reason(labels, 120, [], [], now=NOW)
    assert tls_secret.label_renewal_reason(labels, 30, ["new.example.org"], [], now=NOW) == \
        "certificate does not cover new.example.org"
    assert tls_secret.label_renewal_reason({}, 30, [], [], now=NOW) == "secret labels carry no expiry date"
