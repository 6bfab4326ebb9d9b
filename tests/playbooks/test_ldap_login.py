"""LDAP login end to end: site.yml with jupyterhub_authenticator ldap against a real slapd.

The directory is OpenLDAP from Debian's slapd package (testbed/ldap/) in a container on a
network of the test's own, with StartTLS by a certificate made for its name; the hub is
deployed by playbooks/site.yml on this machine with the directory's CA, a bind DN
template and one allowed group, then attached to the directory's network (an operator's
hub reaches its directory by routing). In Chromium: a member of the group logs in with
their directory password and gets JupyterLab; a wrong password and a user outside the
group are turned away at the login page.
"""

import time
import uuid

import docker
import pytest

from testbed.host_lock import host_lock
from testbed.images import ldap_image
from testbed.site import free_port, remove_deployment, run_site

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PEOPLE = "ou=people,dc=hubfleet,dc=test"
STUDENTS = "cn=students,ou=groups,dc=hubfleet,dc=test"
PASSWORDS = {"ada": "ada-%s" % uuid.uuid4().hex[:12], "carl": "carl-%s" % uuid.uuid4().hex[:12]}


def start_directory(client, name, label):
    network = client.networks.create(name, labels={"hubfleet.test": label})
    server = client.containers.run(
        ldap_image(), name=name, hostname=name, detach=True, network=network.name,
        labels={"hubfleet.test": label},
        environment={"LDAP_HOSTNAME": name, "ADA_PASSWORD": PASSWORDS["ada"], "CARL_PASSWORD": PASSWORDS["carl"]},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = server.exec_run(["sh", "-c", "test -s /srv/ldap/tls/server.crt && ldapsearch -x -H ldap://localhost -b '' -s base >/dev/null"])
        if ready.exit_code == 0:
            return server, server.exec_run(["cat", "/srv/ldap/tls/ca.crt"]).output.decode()
        time.sleep(0.5)
    raise AssertionError("slapd did not answer within 60 s:\n%s" % server.logs().decode()[-2000:])


@pytest.fixture(scope="module")
def hub():
    run = uuid.uuid4().hex[:8]
    name, label, port = "ldap-%s" % run, "ldap-login-%s" % run, free_port()
    directory = "%s-directory" % name
    client = docker.from_env()
    with host_lock():
        try:
            server, ca_pem = start_directory(client, directory, label)
            rc, output = run_site(name, port, label, {
                "jupyterhub_authenticator": "ldap",
                "jupyterhub_admin_users": ["ada"],
                "jupyterhub_ldap_server_address": directory,
                "jupyterhub_ldap_ca_certificate": ca_pem,
                "jupyterhub_ldap_bind_dn_template": ["uid={username},%s" % PEOPLE],
                "jupyterhub_ldap_allowed_groups": [STUDENTS],
            })
            assert rc == 0, output[-6000:]
            client.networks.get(directory).connect("%s-hub" % name)
            yield {"url": "http://127.0.0.1:%d" % port, "name": name, "client": client}
        finally:
            remove_deployment(name, label)


def log_in(page, url, user, password):
    page.goto(url + "/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")


def test_directory_users_log_in_in_chromium_and_others_are_turned_away(hub):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for user, password in (("ada", "not-her-password"), ("carl", PASSWORDS["carl"])):
                page = browser.new_context().new_page()
                page.set_default_timeout(60_000)
                log_in(page, hub["url"], user, password)
                page.wait_for_selector(".alert-danger, #login_submit")
                assert "/hub/login" in page.url, (user, page.url)
                assert "Invalid username or password" in page.content(), user

            page = browser.new_context().new_page()
            page.set_default_timeout(180_000)
            log_in(page, hub["url"], "ada", PASSWORDS["ada"])
            page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
            assert "/user/ada/lab" in page.url
        finally:
            browser.close()
    (server,) = hub["client"].containers.list(filters={"label": ["hubfleet.hub=%s" % hub["name"], "hubfleet.user=ada"]})
    assert server.status == "running"
