"""Automatic HTTPS end to end: site.yml with jupyterhub_tls_source acme against a real Pebble.

Pebble (Debian's pebble package, testbed/pebble/) runs in a container on a network of the
test's own, with real validation: it resolves the hub's name through pebble-challtestsrv,
which the test points at the hub's ACME container once the play has started it, and fetches
the HTTP-01 answer from that container. The hub is deployed once by playbooks/site.yml on
this machine, trusting Pebble's listener CA for the ACME API; the renewal threshold is
above the 5 years Pebble's certificates live, so the ACME container renews at every check
(every 20 s), as it would near expiry. In Chromium, trusting Pebble's root: the plain-HTTP
port redirects to HTTPS and a user gets JupyterLab. Then, while requests keep going to the
hub over HTTPS, the certificate is renewed: not one request fails, the hub and the user's
server keep running (not restarted) and new connections get the new certificate.
"""

import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid

import docker
import pytest

from testbed.host_lock import host_lock
from testbed.images import pebble_image
from testbed.site import free_port, remove_deployment, run_site

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--no-proxy-server"]
PASSWORD = "acme-%s" % uuid.uuid4().hex[:12]


def start_pebble(client, name, label):
    network = client.networks.create("%s-ca" % name, labels={"hubfleet.test": label})
    pebble = client.containers.run(pebble_image(), name="%s-pebble" % name, hostname="%s-pebble" % name, detach=True,
                                   network=network.name, labels={"hubfleet.test": label},
                                   environment={"PEBBLE_HOSTNAME": "%s-pebble" % name})
    deadline = time.monotonic() + 240  # seconds on an idle machine, much longer on a loaded one
    while time.monotonic() < deadline:
        if pebble.exec_run(["curl", "-sf", "--cacert", "/srv/pebble/tls/ca.crt", "https://localhost:14000/dir"]).exit_code == 0:
            return pebble, pebble.exec_run(["cat", "/srv/pebble/tls/ca.crt"]).output.decode()
        time.sleep(0.5)
    log = pebble.logs().decode()[-2000:]
    pebble.remove(force=True)
    network.remove()
    raise AssertionError("Pebble did not answer within 240 s:\n%s" % log)


def point_name_at(client, pebble, domain, container_name, network, stop):
    """Once the play has started ``container_name``, make challtestsrv (Pebble's DNS) answer
    ``domain`` with its address on ``network``."""
    while not stop.is_set():
        try:
            address = client.containers.get(container_name).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        except (docker.errors.NotFound, KeyError):
            address = ""
        if address:
            record = json.dumps({"host": domain + ".", "addresses": [address]})
            pebble.exec_run(["curl", "-sf", "-X", "POST", "-d", record, "http://localhost:8055/add-a"])
            return
        stop.wait(0.2)


class HubConnection(http.client.HTTPSConnection):
    """HTTPS to the hub's published port on loopback, verified for ``domain`` (SNI and name)."""

    def __init__(self, domain, port, context):
        super().__init__(domain, port, context=context, timeout=10)
        self.hub_context = context

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock = self.hub_context.wrap_socket(raw, server_hostname=self.host)


def served_fingerprint(hub):
    connection = HubConnection(hub["domain"], hub["port"], hub["context"])
    try:
        connection.connect()
        return hashlib.sha256(connection.sock.getpeercert(binary_form=True)).hexdigest(), connection.sock.getpeercert()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def hub():
    run = uuid.uuid4().hex[:8]
    name, label, port, http_port = "acme-%s" % run, "acme-https-%s" % run, free_port(), free_port()
    domain = "%s.hubfleet.test" % name
    client = docker.from_env()
    pebble, listener_ca = start_pebble(client, name, label)  # no hub yet: before the host lock
    with host_lock():
        try:
            stop = threading.Event()
            resolver = threading.Thread(target=point_name_at, args=(client, pebble, domain, "%s-acme" % name, "%s-ca" % name, stop))
            resolver.start()
            try:
                rc, output = run_site(name, port, label, {
                    "jupyterhub_https": True,
                    "jupyterhub_tls_source": "acme",
                    "jupyterhub_tls_dns_names": [domain],
                    "jupyterhub_acme_directory_url": "https://%s-pebble:14000/dir" % name,
                    "jupyterhub_acme_agree_tos": True,
                    "jupyterhub_acme_email": "hub-admin@hubfleet.test",
                    "jupyterhub_acme_ca_certificate": listener_ca,
                    "jupyterhub_acme_network": "%s-ca" % name,
                    "jupyterhub_acme_http_port": http_port,
                    # Above the 5 years Pebble's certificates live: every check renews.
                    "jupyterhub_acme_renew_before_days": 100000,
                    "jupyterhub_acme_check_interval": 20,
                    "jupyterhub_acme_retry_interval": 10,
                    "jupyterhub_authenticator": "dummy",
                    "jupyterhub_dummy_password": PASSWORD,
                    "jupyterhub_admin_users": ["ada"],
                })
            finally:
                stop.set()
                resolver.join()
            assert rc == 0, output[-6000:]
            root = pebble.exec_run(["curl", "-sf", "--cacert", "/srv/pebble/tls/ca.crt", "https://localhost:15000/roots/0"])
            assert root.exit_code == 0, root.output
            yield {"name": name, "domain": domain, "port": port, "http_port": http_port, "client": client,
                   "root_pem": root.output.decode(), "context": ssl.create_default_context(cadata=root.output.decode())}
        finally:
            remove_deployment(name, label)


@pytest.fixture(scope="module")
def browser(hub):
    """Chromium with Pebble's root in its certificate store and the hub's name on loopback."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        nssdb = "sql:%s/.pki/nssdb" % home
        os.makedirs("%s/.pki/nssdb" % home)
        root_file = os.path.join(home, "pebble-root.pem")
        with open(root_file, "w") as stream:
            stream.write(hub["root_pem"])
        subprocess.run(["certutil", "-N", "-d", nssdb, "--empty-password"], check=True)
        subprocess.run(["certutil", "-A", "-d", nssdb, "-t", "C,,", "-n", "pebble-root", "-i", root_file], check=True)
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", env=dict(os.environ, HOME=home),
                args=CHROMIUM_ARGS + ["--host-resolver-rules=MAP %s 127.0.0.1" % hub["domain"]])
            try:
                yield chromium
            finally:
                chromium.close()


def test_pebble_certificate_files_and_keys_are_private(hub):
    fingerprint, certificate = served_fingerprint(hub)  # verified against Pebble's root, for the hub's name
    assert dict(item[0] for item in certificate["issuer"])["commonName"].startswith("Pebble Intermediate CA")
    assert ("DNS", hub["domain"]) in certificate["subjectAltName"]
    acme_dir = "/etc/hubfleet/%s/acme" % hub["name"]
    for key in ("account/account.key", "live/server.key"):
        assert oct(os.stat(os.path.join(acme_dir, key)).st_mode & 0o777) == "0o600", key
    (acme,) = hub["client"].containers.list(filters={"label": ["hubfleet.hub=%s" % hub["name"], "hubfleet.kind=acme"]})
    assert acme.attrs["Config"]["User"] == "901:901" and acme.attrs["HostConfig"]["CapDrop"] == ["ALL"]


def test_http_port_redirects_only_to_the_hubs_names_and_hides_unknown_tokens(hub):
    def ask(path, host):
        connection = http.client.HTTPConnection("127.0.0.1", hub["http_port"], timeout=10)
        try:
            connection.request("GET", path, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.getheader("Location")
        finally:
            connection.close()

    hub_url = "https://%s:%d" % (hub["domain"], hub["port"])
    assert ask("/hub/home?x=1", "%s:%d" % (hub["domain"], hub["http_port"])) == (301, hub_url + "/hub/home?x=1")
    assert ask("/hub/home", "elsewhere.example.org") == (301, hub_url + "/hub/home")
    assert ask("/.well-known/acme-challenge/not-a-token", hub["domain"]) == (404, None)


def test_chromium_follows_the_redirect_and_shows_the_hub_over_https(hub, browser):
    page = browser.new_context().new_page()
    page.set_default_timeout(180_000)
    page.goto("http://%s:%d/hub/login" % (hub["domain"], hub["http_port"]))
    assert page.url.startswith("https://%s:%d/hub/login" % (hub["domain"], hub["port"])), page.url
    page.fill("#username_input", "ada")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
    assert page.url.startswith("https://%s:%d/user/ada/lab" % (hub["domain"], hub["port"])), page.url


def test_renewal_reaches_new_connections_without_downtime(hub, browser):
    client = hub["client"]
    (server,) = client.containers.list(filters={"label": ["hubfleet.hub=%s" % hub["name"], "hubfleet.user=ada"]})
    hub_container = client.containers.get("%s-hub" % hub["name"])
    before = {c.id: c.attrs["State"]["StartedAt"] for c in (server, hub_container)}
    first, _ = served_fingerprint(hub)

    outcomes, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            connection = HubConnection(hub["domain"], hub["port"], hub["context"])
            try:
                connection.request("GET", "/hub/health")
                outcomes.append(connection.getresponse().status)
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(repr(exc))
            finally:
                connection.close()
            stop.wait(0.2)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        deadline, renewed = time.monotonic() + 150, first
        while renewed == first and time.monotonic() < deadline:
            time.sleep(1)
            renewed, _ = served_fingerprint(hub)
        time.sleep(2)  # requests on the new certificate too
    finally:
        stop.set()
        asker.join()
    assert renewed != first, "the served certificate did not change within 150 s:\n%s" % (
        client.containers.get("%s-acme" % hub["name"]).logs().decode()[-2000:])
    failures = [outcome for outcome in outcomes if outcome != 200]
    assert len(outcomes) > 20 and not failures, (len(outcomes), failures[:5])
    for container in (server, hub_container):
        container.reload()
        assert container.status == "running" and container.attrs["State"]["StartedAt"] == before[container.id]
    assert "new TLS certificate" in hub_container.logs().decode()

    page = browser.new_context().new_page()  # a new connection, on the renewed certificate
    page.set_default_timeout(60_000)
    page.goto("https://%s:%d/hub/login" % (hub["domain"], hub["port"]))
    page.wait_for_selector("#login_submit")
