#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tls_secret
short_description: TLS certificate, key and CA for the hub, as files and versioned swarm secrets
version_added: 0.1.0
description:
  - Generates a CA and a server certificate for the given DNS names and IP addresses, or takes a
    provided certificate, private key and chain and validates them (the key matches the certificate,
    each chain certificate issues the one before it, nothing is expired, the subjectAltNames cover every
    requested name).
  - Writes the material as files (private keys with mode V(0600)) and/or as Docker swarm secrets.
  - Docker never returns a secret's data, so each secret carries a content-hash label and secrets are
    versioned (V(<name>-cert-v<N>), V(<name>-key-v<N>), V(<name>-ca-v<N>)). The newest O(keep_versions)
    versions are kept; an older version that a service still uses is never removed.
  - A generated certificate is renewed when it expires within O(renew_before_days) or no longer covers
    every requested name. Key material never appears in the module's output.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
requirements:
  - cryptography >= 3.1
  - docker (Python SDK) >= 5.0, when O(swarm_secrets=true)
attributes:
  diff_mode:
    details: Shows certificate facts, file and secret names before and after; never key material.
options:
  name:
    description:
      - Name of this TLS set. Files and secrets are named after it.
      - Letters, digits, V(_), V(.) and V(-), starting with a letter or digit, at most 50 characters.
    type: str
    required: true
  state:
    description:
      - V(present) makes the files and secrets exist and be valid.
      - V(absent) removes this set's files in O(dest_dir) and all its secret versions. It fails, and
        removes nothing, if a service still uses one of the secrets.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - V(generate) creates a CA and a server certificate signed by it.
      - V(provided) takes O(certificate), O(private_key) and O(chain) and validates them.
    type: str
    choices: [generate, provided]
    default: generate
  common_name:
    description: Subject common name of a generated server certificate. Defaults to the first of O(dns_names), else O(name).
    type: str
  dns_names:
    description: DNS names the certificate must cover. A provided wildcard V(*.example.org) covers one left-most label.
    type: list
    elements: str
    default: []
  ip_addresses:
    description: IP addresses the certificate must cover.
    type: list
    elements: str
    default: []
  valid_days:
    description: Lifetime of a generated server certificate, in days.
    type: int
    default: 365
  ca_valid_days:
    description: Lifetime of a generated CA, in days. An existing CA in O(dest_dir) is reused while it outlives a new certificate.
    type: int
    default: 3650
  renew_before_days:
    description: Renew a generated certificate when it expires within this many days. A provided certificate expiring within this window makes the module warn.
    type: int
    default: 30
  key_type:
    description: Key algorithm of generated keys.
    type: str
    choices: [ecdsa, rsa]
    default: ecdsa
  certificate:
    description:
      - PEM server certificate, for O(source=provided). Intermediate certificates may follow it.
    type: str
  private_key:
    description: Unencrypted PEM private key of O(certificate), for O(source=provided).
    type: str
  chain:
    description: PEM issuer certificates of O(certificate), nearest issuer first, for O(source=provided).
    type: str
  dest_dir:
    description:
      - Directory to write files into (created with mode V(0755) if missing) V(<name>.crt),
        V(<name>.key), V(<name>-fullchain.crt), V(<name>-ca.crt) and, when generated, V(<name>-ca.key).
      - With O(source=generate) these files are also where the module finds the current certificate and CA.
    type: path
  swarm_secrets:
    description:
      - Also store the material as Docker swarm secrets (the engine at O(docker_host) must be a swarm manager).
      - Without O(dest_dir), a generated set is judged from the secrets' labels, and a renewal also creates a new CA.
    type: bool
    default: false
  keep_versions:
    description: Number of newest secret versions to keep. Older versions are removed unless a service uses them.
    type: int
    default: 3
  hub:
    description: Value of the V(hubfleet.hub) label on created secrets.
    type: str
    default: jupyterhub
  force:
    description:
      - Replace files in O(dest_dir) that cannot be read as a matching certificate and key. Without it the module fails and leaves them alone.
    type: bool
    default: false
notes:
  - Docker options are used only when O(swarm_secrets=true) (or O(state=absent) with O(swarm_secrets=true)).
"""

EXAMPLES = r"""
- name: Generate a CA and a hub certificate, as files and swarm secrets
  hubfleet.jupyterhub.tls_secret:
    name: hub-tls
    dns_names: [hub.example.org, hub]
    ip_addresses: [192.0.2.10]
    dest_dir: /etc/hubfleet/tls
    swarm_secrets: true
  register: hub_tls

- name: Use a certificate issued by the company CA
  hubfleet.jupyterhub.tls_secret:
    name: hub-tls
    source: provided
    certificate: "{{ lookup('file', 'files/hub.crt') }}"
    private_key: "{{ hub_key_pem }}"
    chain: "{{ lookup('file', 'files/company-ca.crt') }}"
    dns_names: [hub.example.org]
    swarm_secrets: true
    keep_versions: 2

- name: Remove the set (fails while a service uses one of its secrets)
  hubfleet.jupyterhub.tls_secret:
    name: hub-tls
    state: absent
    dest_dir: /etc/hubfleet/tls
    swarm_secrets: true
"""

RETURN = r"""
certificate:
  description: Facts about the current server certificate (no key material).
  returned: state is present
  type: dict
  sample:
    subject: CN=hub.example.org
    issuer: CN=hub-tls CA
    not_after: "2027-11-22T05:00:00+00:00"
    dns_names: [hub.example.org]
    ip_addresses: []
    sha256_fingerprint: 3f9a...
not_after:
  description: Expiry of the server certificate, ISO 8601.
  returned: state is present
  type: str
  sample: "2027-11-22T05:00:00+00:00"
renewal_reason:
  description: Why a new certificate was generated, or null.
  returned: state is present
  type: str
  sample: certificate expires on 2026-12-01T00:00:00+00:00, within renew_before_days=30
files:
  description: Paths of the written files, by part (empty without O(dest_dir)).
  returned: state is present
  type: dict
  sample:
    certificate: /etc/hubfleet/tls/hub-tls.crt
    private_key: /etc/hubfleet/tls/hub-tls.key
    fullchain: /etc/hubfleet/tls/hub-tls-fullchain.crt
    ca_certificate: /etc/hubfleet/tls/hub-tls-ca.crt
secrets:
  description: Names of the current secret version, by part (empty without O(swarm_secrets)).
  returned: state is present
  type: dict
  sample:
    certificate: hub-tls-cert-v2
    private_key: hub-tls-key-v2
    ca_certificate: hub-tls-ca-v2
secret_version:
  description: Current secret version number, or null without O(swarm_secrets).
  returned: state is present
  type: int
  sample: 2
removed_secrets:
  description: Secret names removed by rotation or by O(state=absent).
  returned: always
  type: list
  elements: str
kept_in_use:
  description: Old secret names kept beyond O(keep_versions) because a service uses them.
  returned: always
  type: list
  elements: str
actions:
  description: What the module did (or would do in check mode), one line per step; never key material or tokens.
  returned: always
  type: list
  elements: str
removed_files:
  description: Files removed by O(state=absent).
  returned: always
  type: list
  elements: str
"""

import datetime
import os
import re
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    connect,
    docker_argument_spec,
    docker_error_message,
    make_diff,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.labels import (
    KIND_SECRET,
    label_filters,
    object_labels,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.tls import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    TLSValidationError,
    ca_reusable,
    certificate_pem,
    content_hash,
    describe,
    generate_ca,
    generate_server_certificate,
    load_certificates,
    load_private_key,
    private_key_pem,
    renewal_reason,
    utcnow,
    validate_bundle,
    validate_names,
)

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,49}$")

# file part -> (file name suffix, is secret)
FILE_PARTS = (
    ("certificate", ".crt", False),
    ("private_key", ".key", True),
    ("fullchain", "-fullchain.crt", False),
    ("ca_certificate", "-ca.crt", False),
    ("ca_private_key", "-ca.key", True),
)
# secret part -> (secret name infix, material part)
SECRET_PARTS = (
    ("certificate", "cert", "fullchain"),
    ("private_key", "key", "private_key"),
    ("ca_certificate", "ca", "ca_certificate"),
)

LABEL_SET = "hubfleet.tls.set"
LABEL_PART = "hubfleet.tls.part"
LABEL_VERSION = "hubfleet.tls.version"
LABEL_HASH = "hubfleet.tls.sha256"
LABEL_NOT_AFTER = "hubfleet.tls.not_after"
LABEL_NAMES = "hubfleet.tls.names"


def secret_name(set_name, infix, version):
    return "%s-%s-v%d" % (set_name, infix, version)


def group_versions(secrets):
    """{version: {part: secret}} from Docker secret objects carrying our labels."""
    versions = {}
    for secret in secrets:
        labels = secret.get("Spec", {}).get("Labels") or {}
        try:
            version = int(labels.get(LABEL_VERSION, ""))
        except ValueError:
            continue
        versions.setdefault(version, {})[labels.get(LABEL_PART)] = secret
    return versions


def versions_to_remove(versions, keep_versions, used_ids):
    """(removable secrets, kept-in-use secrets) among versions older than the newest ``keep_versions``."""
    removable, in_use = [], []
    for version in sorted(versions, reverse=True)[keep_versions:]:
        for part in sorted(versions[version]):
            secret = versions[version][part]
            (in_use if secret["ID"] in used_ids else removable).append(secret)
    return removable, in_use


def label_renewal_reason(labels, renew_before_days, dns_names, ip_addresses, now=None):
    """Renewal decision from a secret's labels, when no certificate file is at hand."""
    now = now or utcnow()
    try:
        not_after = datetime.datetime.fromisoformat(labels.get(LABEL_NOT_AFTER, ""))
    except ValueError:
        return "secret labels carry no expiry date"
    if not_after - now <= datetime.timedelta(days=renew_before_days):
        return "certificate expires on %s, within renew_before_days=%d" % (not_after.isoformat(), renew_before_days)
    covered = set((labels.get(LABEL_NAMES) or "").split(","))
    missing = [name for name in list(dns_names) + list(ip_addresses) if name.lower() not in covered]
    if missing:
        return "certificate does not cover %s" % ", ".join(missing)
    return None


class TLSSecretManager(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = self.params["name"]
        self.check_mode = module.check_mode
        self.client = None
        self.changed = False
        self.actions = []
        self.result = dict(removed_secrets=[], kept_in_use=[], removed_files=[])
        self.diff_before = {}
        self.diff_after = {}

    # ---- parameters -------------------------------------------------
    def validate_parameters(self):
        p = self.params
        if not NAME_PATTERN.match(self.name):
            self.fail("name: %r must be letters, digits, '_', '.', '-', start with a letter or digit, "
                      "and have at most 50 characters" % self.name)
        for option, minimum in (("valid_days", 1), ("ca_valid_days", 1), ("renew_before_days", 0), ("keep_versions", 1)):
            if p[option] < minimum:
                self.fail("%s: must be at least %d, got %d" % (option, minimum, p[option]))
        if p["state"] == "present":
            if not p["dest_dir"] and not p["swarm_secrets"]:
                self.fail("dest_dir or swarm_secrets=true is required: there is nowhere to put the material")
            if p["source"] == "provided":
                for option in ("certificate", "private_key"):
                    if not p[option]:
                        self.fail("%s is required when source=provided" % option)
            else:
                for option in ("certificate", "private_key", "chain"):
                    if p[option]:
                        self.fail("%s is only used with source=provided" % option)
                if not p["dns_names"] and not p["ip_addresses"]:
                    self.fail("dns_names or ip_addresses is required when source=generate")
                if p["renew_before_days"] >= p["valid_days"]:
                    self.fail("renew_before_days (%d) must be less than valid_days (%d), or every run would renew"
                              % (p["renew_before_days"], p["valid_days"]))
        else:
            if not p["dest_dir"] and not p["swarm_secrets"]:
                self.fail("state=absent needs dest_dir or swarm_secrets=true to know what to remove")
        try:
            validate_names(p["dns_names"], p["ip_addresses"])
        except TLSValidationError as exc:
            self.fail(str(exc))

    def fail(self, msg):
        self.module.fail_json(msg=msg, changed=False, **self.result)

    # ---- files -------------------------------------------------------
    def file_path(self, suffix):
        return os.path.join(self.params["dest_dir"], self.name + suffix)

    def read_files(self):
        """{part: text} for the set's files that exist in dest_dir."""
        found = {}
        if not self.params["dest_dir"]:
            return found
        for part, suffix, _secret in FILE_PARTS:
            path = self.file_path(suffix)
            if os.path.exists(path):
                try:
                    with open(path, "r") as handle:
                        found[part] = handle.read()
                except (IOError, OSError, UnicodeDecodeError) as exc:
                    self.fail("dest_dir: cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
        return found

    def write_file(self, path, text, mode):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
        try:
            os.fchmod(handle, mode)
            with os.fdopen(handle, "w") as out:
                out.write(text)
            os.replace(temp, path)
        except Exception:
            if os.path.exists(temp):
                os.unlink(temp)
            raise

    def sync_files(self, material):
        """Write parts of ``material`` that differ from the files; fix key file modes."""
        files = {}
        if not self.params["dest_dir"]:
            return files
        existing = self.read_files()
        for part, suffix, secret in FILE_PARTS:
            text = material.get(part)
            if text is None:
                continue
            path = self.file_path(suffix)
            files[part] = path
            mode = 0o600 if secret else 0o644
            same = existing.get(part) == text
            mode_ok = same and (os.stat(path).st_mode & 0o777) == mode
            self.diff_before[path] = ("present" if secret else self.file_fact(existing.get(part))) if part in existing else "absent"
            self.diff_after[path] = self.diff_before[path] if same else ("replaced" if secret and part in existing else
                                                                         ("present" if secret else self.file_fact(text)))
            if same and mode_ok:
                continue
            if not same:
                self.actions.append("write %s" % path)
            else:
                self.actions.append("chmod %o %s" % (mode, path))
                self.diff_after[path] += " mode %o" % mode
            self.changed = True
            if not self.check_mode:
                if same:
                    os.chmod(path, mode)
                else:
                    self.write_file(path, text, mode)
        return files

    @staticmethod
    def file_fact(text):
        try:
            return "certificate sha256:%s" % describe(load_certificates(text, "file")[0])["sha256_fingerprint"]
        except TLSValidationError:
            return "unreadable certificate"

    # ---- secrets -----------------------------------------------------
    def docker(self):
        if self.client is None:
            self.client = connect(self.module)
        return self.client

    def get_secrets(self):
        filters = {"label": label_filters(hub=self.params["hub"], kind=KIND_SECRET) + ["%s=%s" % (LABEL_SET, self.name)]}
        return self.docker().secrets(filters=filters)

    def used_secret_ids(self):
        """IDs of secrets referenced by any service, with the services' names."""
        used = {}
        for service in self.docker().services():
            spec = service.get("Spec", {})
            refs = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Secrets") or []
            for ref in refs:
                used.setdefault(ref.get("SecretID"), []).append(spec.get("Name"))
        return used

    def secret_labels(self, part, version, text, facts):
        extra = {
            LABEL_SET: self.name,
            LABEL_PART: part,
            LABEL_VERSION: str(version),
            LABEL_HASH: content_hash(text),
            LABEL_NOT_AFTER: facts["not_after"],
            LABEL_NAMES: ",".join(self.params["dns_names"] + self.params["ip_addresses"]).lower(),
        }
        return object_labels(self.params["hub"], KIND_SECRET, extra=extra)

    @staticmethod
    def version_matches(parts, material):
        wanted = dict((part, content_hash(material[source])) for part, _infix, source in SECRET_PARTS if material.get(source))
        have = dict((part, (secret["Spec"].get("Labels") or {}).get(LABEL_HASH)) for part, secret in parts.items())
        return wanted == have

    def create_version(self, version, material, facts):
        names = {}
        for part, infix, source in SECRET_PARTS:
            text = material.get(source)
            if text is None:
                continue
            name = secret_name(self.name, infix, version)
            names[part] = name
            self.actions.append("create secret %s" % name)
            if not self.check_mode:
                self.docker().create_secret(name, text.encode("utf-8"), labels=self.secret_labels(part, version, text, facts))
        self.changed = True
        return names

    def rotate(self, versions):
        used = self.used_secret_ids()
        removable, in_use = versions_to_remove(versions, self.params["keep_versions"], used)
        for secret in in_use:
            self.result["kept_in_use"].append(secret["Spec"]["Name"])
        for secret in removable:
            self.result["removed_secrets"].append(secret["Spec"]["Name"])
            self.actions.append("remove secret %s" % secret["Spec"]["Name"])
            self.changed = True
            if not self.check_mode:
                self.docker().remove_secret(secret["ID"])
        if in_use:
            self.module.warn("Kept %s beyond keep_versions=%d: a service still uses them"
                             % (", ".join(self.result["kept_in_use"]), self.params["keep_versions"]))

    def sync_secrets(self, material, facts):
        """Create a new version unless the newest matches; then prune old versions."""
        versions = group_versions(self.get_secrets())
        latest = max(versions) if versions else 0
        before = dict((part, s["Spec"]["Name"]) for part, s in versions.get(latest, {}).items())
        self.diff_before["secrets"] = before
        if material is not None and (not latest or not self.version_matches(versions[latest], material)):
            latest += 1
            names = self.create_version(latest, material, facts)
            versions[latest] = dict((part, {"ID": None, "Spec": {"Name": n}}) for part, n in names.items())
        else:
            names = before
        self.diff_after["secrets"] = names
        self.rotate(versions)
        self.result["secrets"] = names
        self.result["secret_version"] = latest

    # ---- material ----------------------------------------------------
    def provided_material(self):
        p = self.params
        try:
            server = validate_bundle(p["certificate"], p["private_key"], p["chain"], p["dns_names"], p["ip_addresses"])
        except TLSValidationError as exc:
            self.fail(str(exc))
        certs = load_certificates(p["certificate"], "certificate")
        if p["chain"]:
            certs += load_certificates(p["chain"], "chain")
        reason = renewal_reason(server, p["renew_before_days"], [], [])
        if reason:
            self.module.warn("Provided %s; replace it soon" % reason)
        material = dict(
            certificate=certificate_pem(server),
            private_key=private_key_pem(load_private_key(p["private_key"], "private_key")),
            fullchain="".join(certificate_pem(cert) for cert in certs),
        )
        if len(certs) > 1:
            material["ca_certificate"] = certificate_pem(certs[-1])
        return material, describe(server), None

    def existing_generated(self, files):
        """(server cert, None) from dest_dir files, (None, why) when absent or broken and force is set.

        Broken files without force fail the module: they may be someone's hand-placed material.
        """
        p = self.params
        if not files.get("certificate") and not files.get("private_key"):
            return None, "no certificate yet"
        try:
            server = validate_bundle(files.get("certificate"), files.get("private_key"), files.get("ca_certificate"),
                                     [], [], what="certificate file", check_dates=False)
        except TLSValidationError as exc:
            if p["force"]:
                return None, "existing files replaced (force): %s" % exc
            self.fail("dest_dir %s: %s; set force=true to replace these files" % (p["dest_dir"], exc))
        return server, None

    def label_facts(self):
        """Facts of the newest secret version when it is still good (secrets only, no files), else None."""
        p = self.params
        versions = group_versions(self.get_secrets())
        if not versions:
            return None, "no certificate yet"
        labels = ((versions[max(versions)].get("certificate") or {}).get("Spec") or {}).get("Labels") or {}
        reason = label_renewal_reason(labels, p["renew_before_days"], p["dns_names"], p["ip_addresses"])
        if reason:
            return None, reason
        return dict(not_after=labels.get(LABEL_NOT_AFTER), names=(labels.get(LABEL_NAMES) or "").split(",")), None

    def generated_material(self, files):
        """(material or None, facts, renewal reason); material None means "keep what exists"."""
        p = self.params
        server, reason = self.existing_generated(files)
        if server is not None:
            reason = renewal_reason(server, p["renew_before_days"], p["dns_names"], p["ip_addresses"])
            if reason is None:
                # Rebuilt rather than read, so a deleted fullchain file comes back.
                material = dict(files, fullchain=files["certificate"] + (files.get("ca_certificate") or ""))
                return material, describe(server), None
        elif not p["dest_dir"] and p["swarm_secrets"]:
            facts, reason = self.label_facts()
            if facts is not None:
                return None, facts, None
        ca_key_pem, ca_cert_pem = files.get("ca_private_key"), files.get("ca_certificate")
        if ca_key_pem and ca_cert_pem and ca_reusable(ca_key_pem, ca_cert_pem, p["valid_days"]):
            ca_key = load_private_key(ca_key_pem, "CA private key")
            ca_cert = load_certificates(ca_cert_pem, "CA certificate")[0]
        else:
            ca_key, ca_cert = generate_ca("%s CA" % self.name, p["ca_valid_days"], p["key_type"])
            ca_key_pem, ca_cert_pem = private_key_pem(ca_key), certificate_pem(ca_cert)
        common_name = p["common_name"] or (p["dns_names"][0] if p["dns_names"] else self.name)
        key, cert = generate_server_certificate(ca_key, ca_cert, common_name, p["dns_names"], p["ip_addresses"],
                                                p["valid_days"], p["key_type"])
        material = dict(
            certificate=certificate_pem(cert),
            private_key=private_key_pem(key),
            fullchain=certificate_pem(cert) + ca_cert_pem,
            ca_certificate=ca_cert_pem,
            ca_private_key=ca_key_pem,
        )
        return material, describe(cert), reason

    # ---- states ------------------------------------------------------
    def present(self):
        files = self.read_files()
        if self.params["source"] == "provided":
            material, facts, reason = self.provided_material()
        else:
            material, facts, reason = self.generated_material(files)
        if reason:
            self.actions.append("renew: %s" % reason)
        self.result["files"] = self.sync_files(material) if material is not None else {}
        if self.params["swarm_secrets"]:
            self.sync_secrets(material, facts)
        else:
            self.result["secrets"] = {}
            self.result["secret_version"] = None
        self.result.update(certificate=facts, not_after=facts["not_after"],
                           renewal_reason=reason if self.changed else None)

    def absent(self):
        p = self.params
        if p["swarm_secrets"]:
            secrets = self.get_secrets()
            used = self.used_secret_ids()
            busy = ["%s (used by %s)" % (s["Spec"]["Name"], ", ".join(used[s["ID"]])) for s in secrets if s["ID"] in used]
            if busy:
                self.fail("state=absent: secrets still in use, nothing removed: %s" % "; ".join(sorted(busy)))
            for secret in sorted(secrets, key=lambda s: s["Spec"]["Name"]):
                self.result["removed_secrets"].append(secret["Spec"]["Name"])
                self.diff_before.setdefault("secrets", []).append(secret["Spec"]["Name"])
                self.changed = True
                if not self.check_mode:
                    self.docker().remove_secret(secret["ID"])
            self.diff_after["secrets"] = []
        if p["dest_dir"]:
            for _part, suffix, _secret in FILE_PARTS:
                path = self.file_path(suffix)
                if os.path.exists(path):
                    self.result["removed_files"].append(path)
                    self.diff_before[path] = "present"
                    self.diff_after[path] = "absent"
                    self.changed = True
                    if not self.check_mode:
                        os.unlink(path)

    def run(self):
        self.validate_parameters()
        if self.params["state"] == "present":
            self.present()
        else:
            self.absent()
        self.result["changed"] = self.changed
        self.result["actions"] = self.actions
        if self.module._diff:
            self.result["diff"] = make_diff(self.diff_before, self.diff_after)
        self.module.exit_json(**self.result)


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        source=dict(type="str", default="generate", choices=["generate", "provided"]),
        common_name=dict(type="str"),
        dns_names=dict(type="list", elements="str", default=[]),
        ip_addresses=dict(type="list", elements="str", default=[]),
        valid_days=dict(type="int", default=365),
        ca_valid_days=dict(type="int", default=3650),
        renew_before_days=dict(type="int", default=30),
        key_type=dict(type="str", default="ecdsa", choices=["ecdsa", "rsa"]),
        certificate=dict(type="str"),
        private_key=dict(type="str", no_log=True),
        chain=dict(type="str"),
        dest_dir=dict(type="path"),
        swarm_secrets=dict(type="bool", default=False),
        keep_versions=dict(type="int", default=3),
        hub=dict(type="str", default="jupyterhub"),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)
    manager = TLSSecretManager(module)
    try:
        manager.run()
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker error: %s" % docker_error_message(exc), exception=traceback.format_exc(),
                         **manager.result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="dest_dir: %s" % exc, exception=traceback.format_exc(), **manager.result)


if __name__ == "__main__":
    main()
