"""OpenID Connect login end to end: site.yml with jupyterhub_authenticator oidc against a real
OpenID provider.

The provider is panva's oidc-provider (OpenID Certified; testbed/oidc/), in a container on a
network of the test's own, serving HTTPS by a certificate a throwaway CA made for the
container's name. Its issuer is https://<container name>:8443, one URL for both sides of the
flow: the hub, attached to the provider's network after site.yml (an operator's hub reaches
its provider by routing), resolves the name by Docker's DNS and trusts the CA by
jupyterhub_oidc_ca_certificate; Chromium, on this machine, is told the container's address on
the test network for that name (--host-resolver-rules), which Linux routes to the bridge.
The hub itself is reached on 127.0.0.1, where its callback URL points.

In Chromium: a member of the allowed group logs in at the provider with her password and
gets JupyterLab; a wrong password is turned away by the provider; a user the provider
authenticates but outside the allowed group is refused by the hub.
"""

import time
import uuid

import docker
import pytest

from testbed.host_lock import host_lock
from testbed.images import oidc_image
from testbed.site import free_port, remove_deployment, run_site

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PROVIDER_PORT = 8443
PASSWORDS = {"ada": "ada-%s" % uuid.uuid4().hex[:12], "carl": "carl-%s" % uuid.uuid4().hex[:12]}
CLIENT_ID = "hubfleet-hub"
CLIENT_SECRET = uuid.uuid4().hex


def start_provider(client, name, label, callback_url):
    """Run the provider as ``name`` on a new network ``name``; returns (its address, its CA PEM)."""
    network = client.networks.create(name, labels={"hubfleet.test": label})
    server = client.containers.run(
        oidc_image(), name=name, hostname=name, detach=True, network=network.name,
        labels={"hubfleet.test": label},
        environment={
            "OIDC_HOSTNAME": name, "OIDC_PORT": str(PROVIDER_PORT),
            "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET, "OIDC_REDIRECT_URI": callback_url,
            "ADA_PASSWORD": PASSWORDS["ada"], "CARL_PASSWORD": PASSWORDS["carl"],
        },
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.reload()
        if server.status != "running" and server.status != "created":
            break
        if "listening on" in server.logs().decode():
            address = server.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
            return address, server.exec_run(["cat", "/srv/oidc/tls/ca.crt"]).output.decode()
        time.sleep(0.5)
    raise AssertionError("the provider did not start within 60 s:\n%s" % server.logs().decode()[-2000:])


@pytest.fixture(scope="module")
def hub():
    run = uuid.uuid4().hex[:8]
    name, label, port = "oidc-%s" % run, "oidc-login-%s" % run, free_port()
    provider = "%s-provider" % name
    issuer = "https://%s:%d" % (provider, PROVIDER_PORT)
    url = "http://127.0.0.1:%d" % port
    client = docker.from_env()
    with host_lock():
        try:
            address, ca_pem = start_provider(client, provider, label, url + "/hub/oauth_callback")
            rc, output = run_site(name, port, label, {
                "jupyterhub_authenticator": "oidc",
                "jupyterhub_admin_users": [],
                "jupyterhub_oidc_authorize_url": issuer + "/auth",
                "jupyterhub_oidc_token_url": issuer + "/token",
                "jupyterhub_oidc_userinfo_url": issuer + "/me",
                "jupyterhub_oidc_client_id": CLIENT_ID,
                "jupyterhub_oidc_client_secret": CLIENT_SECRET,
                "jupyterhub_oidc_callback_url": url + "/hub/oauth_callback",
                "jupyterhub_oidc_scopes": ["openid", "profile", "groups"],
                "jupyterhub_oidc_allowed_groups": ["students"],
                "jupyterhub_oidc_ca_certificate": ca_pem,
                "jupyterhub_oidc_login_service": "Hubfleet test provider",
            })
            assert rc == 0, output[-6000:]
            assert CLIENT_SECRET not in output, "the client secret was logged"
            client.networks.get(provider).connect("%s-hub" % name)
            yield {"url": url, "name": name, "client": client, "provider": provider, "address": address}
        finally:
            remove_deployment(name, label)


def log_in(page, url, user, password):
    """From the hub's login page through the provider's login form."""
    page.goto(url + "/hub/login")
    page.click("text=Sign in with Hubfleet test provider")
    page.wait_for_selector("#password")
    page.fill("#login", user)
    page.fill("#password", password)
    page.click("#submit")


def test_provider_users_log_in_in_chromium_and_others_are_turned_away(hub):
    from playwright.sync_api import sync_playwright

    args = CHROMIUM_ARGS + ["--host-resolver-rules=MAP %s %s" % (hub["provider"], hub["address"])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            # The browser does not know the test CA: its trust is not what is tested here.
            def new_page(timeout):
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.set_default_timeout(timeout)
                return page

            page = new_page(60_000)
            log_in(page, hub["url"], "ada", "not-her-password")
            page.wait_for_selector("#error")
            assert page.url.startswith("https://%s:" % hub["provider"]), page.url
            assert "Invalid login or password" in page.content()

            # carl's password is right: the provider sends him back, the hub refuses him.
            page = new_page(60_000)
            with page.expect_response(lambda response: "/hub/oauth_callback" in response.url) as callback:
                log_in(page, hub["url"], "carl", PASSWORDS["carl"])
            assert callback.value.status == 403, (callback.value.status, page.content()[-2000:])

            page = new_page(180_000)
            log_in(page, hub["url"], "ada", PASSWORDS["ada"])
            page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
            assert "/user/ada/lab" in page.url
        finally:
            browser.close()
    containers = hub["client"].containers.list(all=True, filters={"label": ["hubfleet.hub=%s" % hub["name"]]})
    users = sorted(c.labels.get("hubfleet.user") for c in containers if c.labels.get("hubfleet.user"))
    assert users == ["ada"], users
    (server,) = [c for c in containers if c.labels.get("hubfleet.user") == "ada"]
    assert server.status == "running"
