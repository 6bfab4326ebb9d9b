"""LTI 1.3 login end to end: site.yml with jupyterhub_authenticator lti13 against a real
LTI 1.3 platform.

The platform is lti1p3platform's platform side (PyPI; testbed/lti/) behind a small course
site, in a container on a network of the test's own, serving HTTPS by a certificate a
throwaway CA made for the container's name. Its issuer is https://<container name>:8443:
the hub, attached to the platform's network after site.yml, fetches the platform's keyset
there and trusts the CA by jupyterhub_lti13_ca_certificate; Chromium, on this machine, is told
the container's address for that name. The tool is registered at the platform with the hub's
own URLs on 127.0.0.1 (login initiation, redirect URI, target link).

In Chromium a learner signed in to the course launches the hub from it: the platform's
third-party initiated login goes to the hub, the hub's authentication request to the
platform, the platform form-POSTs its signed id_token back, and the learner lands in
JupyterLab as the user her launch's email claim names. Launches the hub must refuse are
refused at its callback: one signed by a key the platform never published (under the
published key's kid), one for a client id the hub was not given, one from another issuer.
"""

import uuid

import docker
import pytest

from testbed.host_lock import host_lock
from testbed.images import lti_image
from testbed.services import chromium, start_tls_service
from testbed.site import free_port, remove_deployment, run_site

PLATFORM_PORT = 8443


@pytest.fixture(scope="module")
def hub():
    run = uuid.uuid4().hex[:8]
    name, label, port = "lti-%s" % run, "lti-login-%s" % run, free_port()
    platform = "%s-platform" % name
    issuer = "https://%s:%d" % (platform, PLATFORM_PORT)
    url = "http://127.0.0.1:%d" % port
    client_id, email = "hubfleet-%s" % run, "ada.%s@hubfleet.test" % run
    client = docker.from_env()
    with host_lock():
        try:
            address, ca_pem = start_tls_service(client, lti_image(), platform, label, {
                "LTI_HOSTNAME": platform, "LTI_PORT": str(PLATFORM_PORT),
                "LTI_CLIENT_ID": client_id, "LTI_DEPLOYMENT_ID": "ds101-%s" % run,
                "LTI_TOOL_LOGIN_URL": url + "/hub/lti13/oauth_login",
                "LTI_TOOL_REDIRECT_URI": url + "/hub/lti13/oauth_callback",
                "LTI_TOOL_LAUNCH_URL": url + "/",
                "LTI_LEARNERS": '{"ada": "%s"}' % email,
            }, "/srv/lti/tls/ca.crt")
            rc, output = run_site(name, port, label, {
                "jupyterhub_authenticator": "lti13",
                "jupyterhub_admin_users": [],
                "jupyterhub_lti13_issuer": issuer,
                "jupyterhub_lti13_client_ids": [client_id],
                "jupyterhub_lti13_authorize_url": issuer + "/auth",
                "jupyterhub_lti13_jwks_url": issuer + "/jwks",
                "jupyterhub_lti13_ca_certificate": ca_pem,
            })
            assert rc == 0, output[-6000:]
            client.networks.get(platform).connect("%s-hub" % name)
            yield {"url": url, "name": name, "client": client, "platform": platform, "address": address,
                   "course": "https://%s:%d/course?learner=ada" % (platform, PLATFORM_PORT), "email": email}
        finally:
            remove_deployment(name, label)


def launch(browser, hub, link, timeout):
    """Ada, signed in to the course, clicks one of its links; returns the page and the hub's
    answer to the platform's form POST."""
    # The browser does not know the test CA: its trust is not what is tested here.
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.set_default_timeout(timeout)
    page.goto(hub["course"])
    with page.expect_response(lambda response: "/hub/lti13/oauth_callback" in response.url) as callback:
        page.click("#launch-%s" % link)
    page.wait_for_load_state()
    return page, callback.value


@pytest.mark.parametrize("link, status, reason", [
    ("forged", 400, "Signature verification failed"),
    ("unregistered", 401, "Audience doesn't match"),
    ("other-issuer", 400, "Invalid issuer"),
])
def test_a_launch_the_platform_did_not_sign_for_this_hub_is_refused(hub, link, status, reason):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, chromium(playwright, {hub["platform"]: hub["address"]}) as browser:
        page, callback = launch(browser, hub, link, 60_000)
        assert callback.status == status, (callback.status, page.content()[-2000:])
        assert reason in page.content(), page.content()[-2000:]
        assert page.goto(hub["url"] + "/hub/api/user").status == 403, "the refused launch logged in"


def test_a_learner_launched_from_the_course_gets_jupyterlab_as_her_email(hub):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, chromium(playwright, {hub["platform"]: hub["address"]}) as browser:
        page, callback = launch(browser, hub, "notebooks", 180_000)
        assert callback.status == 302, (callback.status, page.content()[-2000:])
        page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
        assert "/lab" in page.url and page.url.startswith(hub["url"] + "/user/"), page.url
        who = page.goto(hub["url"] + "/hub/api/user")
        assert who.status == 200 and who.json()["name"] == hub["email"], (who.status, who.text())
    (server,) = hub["client"].containers.list(all=True, filters={"label": ["hubfleet.hub=%s" % hub["name"], "hubfleet.user"]})
    assert server.labels.get("hubfleet.user") == hub["email"], server.labels
    assert server.status == "running"
