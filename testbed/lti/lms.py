"""A small LTI 1.3 platform for the LTI login test: one course whose resource links launch
JupyterHub, the tool, with the platform side of lti1p3platform (its registration, third-party
initiated login, signed launch message and keyset). What this file adds is the web site
around it and the checks a platform makes at its authorization endpoint.

Settings from the environment:
  LTI_HOSTNAME, LTI_PORT       the platform's name and HTTPS port; its issuer is https://NAME:PORT
  LTI_TLS_CERT, LTI_TLS_KEY    its certificate and key (start.sh makes them)
  LTI_CLIENT_ID                the client id of the tool's registration (the hub is given it)
  LTI_DEPLOYMENT_ID            the deployment id of the tool in this platform
  LTI_TOOL_LOGIN_URL           the tool's login initiation URL (.../hub/lti13/oauth_login)
  LTI_TOOL_REDIRECT_URI        the tool's one registered redirect URI (.../hub/lti13/oauth_callback)
  LTI_TOOL_LAUNCH_URL          the target link URI of the course's links
  LTI_LEARNERS                 JSON {login: email address} of the course's learners

Pages:
  /course?learner=LOGIN   signs the learner in (test bed: no password) and shows the course
  /launch/LINK            starts a launch of one of the course's links at the tool
  /auth                   the authorization endpoint: checks the tool's authentication request
                          and answers with the signed id_token, form-POSTed to the tool
  /jwks                   the platform's public keyset

The course's links: "notebooks" launches with the tool's registration; the others make
launches a tool must refuse: "forged" is signed by a key the platform never published (under
the published key's kid), "unregistered" carries a client id the tool was not given and
"other-issuer" another platform's issuer.
"""

import html
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import MessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request

LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
COURSE_CONTEXT = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"
SESSION_COOKIE = "platform_learner"


def new_key_pair():
    """A fresh RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


class ForgedRegistration(Registration):
    """A registration that signs with its own key but names the published key's kid: only
    checking the signature against the platform's keyset tells its launches apart."""

    published_kid = None

    def get_kid(self):
        return self.published_kid


class Platform(LTI1P3PlatformConfAbstract):
    """lti1p3platform's platform configuration, holding one registration of the tool."""

    def init_platform_config(self, registration=None, **kwargs):
        self._registration = registration

    def get_registration_by_params(self, **kwargs):
        return self._registration


class PlatformRequest(Request):
    """An HTTP request as lti1p3platform reads it."""

    def build_metadata(self, request):
        return request


class Login(OIDCLoginAbstract):
    """The third-party initiated login: the learner's browser goes to the tool's login URL."""

    def set_lti_message_hint(self, **kwargs):
        self._lti_message_hint = kwargs["link"]

    def get_redirect(self, url):
        return url


class Launch(MessageLaunchAbstract):
    """The launch message of a link for the signed-in learner, as an auto-submitting form."""

    def __init__(self, request, platform_config, learner, link):
        super().__init__(request, platform_config)
        self._learner, self._link = learner, link

    def prepare_launch(self, preflight_response, **kwargs):
        login, email = self._learner
        self.set_user_data(user_id(login), [LEARNER_ROLE], full_name=login.title(), email_address=email)
        self.set_resource_link_claim(self._link, title=LINK_TITLES[self._link])
        self.set_launch_context_claim("ds101", [COURSE_CONTEXT], "Data science 101", "DS101")
        self.set_launch_presentation_claim(document_target="window")

    def render_launch_form(self, launch_data, **kwargs):
        fields = "".join('<input type="hidden" name="%s" value="%s">' % (name, html.escape(launch_data[name]))
                         for name in ("id_token", "state"))
        return ('<!doctype html><title>Launching</title><form id="launch" method="post" action="%s">%s</form>'
                '<script>document.getElementById("launch").submit()</script>'
                % (html.escape(launch_data["launch_url"]), fields))


def user_id(login):
    """The platform's stable, opaque identifier of a learner (the launch's sub)."""
    return "learner-" + login


LINK_TITLES = {
    "notebooks": "Notebooks (JupyterHub)",
    "forged": "Notebooks, signed with an unpublished key",
    "unregistered": "Notebooks, under an unregistered client id",
    "other-issuer": "Notebooks, from another issuer",
}


def make_registrations(env):
    """The course's links and the tool registration each launches with; and the keyset."""
    issuer = "https://%s:%s" % (env["LTI_HOSTNAME"], env["LTI_PORT"])
    published_private, published_public = new_key_pair()
    unpublished_private, _ = new_key_pair()

    def registration(kind=Registration, iss=issuer, client_id=env["LTI_CLIENT_ID"], private=published_private):
        return kind().set_iss(iss).set_client_id(client_id).set_deployment_id(env["LTI_DEPLOYMENT_ID"]) \
            .set_launch_url(env["LTI_TOOL_LAUNCH_URL"]).set_oidc_login_url(env["LTI_TOOL_LOGIN_URL"]) \
            .set_platform_private_key(private).set_platform_public_key(published_public)

    published = registration()
    forged = registration(ForgedRegistration, private=unpublished_private)
    forged.published_kid = published.get_kid()
    links = {
        "notebooks": published,
        "forged": forged,
        "unregistered": registration(client_id="unregistered-" + env["LTI_CLIENT_ID"]),
        "other-issuer": registration(iss="https://other-platform.hubfleet.test"),
    }
    return links, Platform(registration=published).get_jwks()


class Handler(BaseHTTPRequestHandler):
    timeout = 30  # a connection that sends nothing does not hold a thread forever
    links, keyset, learners, redirect_uri = {}, {}, {}, ""

    def setup(self):
        super().setup()
        self.request.do_handshake()

    def do_GET(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == "/jwks":
            return self.respond(200, json.dumps(self.keyset), "application/json")
        if url.path == "/course":
            return self.course(query)
        if url.path.startswith("/launch/"):
            return self.launch(url.path[len("/launch/"):])
        if url.path == "/auth":
            return self.authorize(query)
        return self.respond(404, "not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        if urlsplit(self.path).path == "/auth":
            return self.authorize(form)
        return self.respond(404, "not found")

    def signed_in(self):
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value in self.learners:
                return value
        return None

    def course(self, query):
        login = query.get("learner") or self.signed_in()
        if login not in self.learners:
            return self.respond(403, "not a learner of this course")
        links = "".join('<li><a id="launch-%s" href="/launch/%s">%s</a></li>' % (name, name, html.escape(title))
                        for name, title in LINK_TITLES.items())
        page = "<!doctype html><title>DS101</title><h1>Data science 101</h1><p id=learner>%s</p><ul>%s</ul>" % (
            html.escape(self.learners[login]), links)
        cookie = "%s=%s; Path=/; Secure; HttpOnly; SameSite=Lax" % (SESSION_COOKIE, login)
        return self.respond(200, page, "text/html", [("Set-Cookie", cookie)])

    def launch(self, link):
        login = self.signed_in()
        if login is None or link not in self.links:
            return self.respond(403, "sign in to the course first")
        login_flow = Login(None, Platform(registration=self.links[link]))
        login_flow.set_lti_message_hint(link=link)
        return self.respond(302, "", headers=[("Location", login_flow.initiate_login(user_id(login)))])

    def authorize(self, params):
        """The tool's authentication request (IMS Security Framework 5.1.1.2) and the answer."""
        link, login = params.get("lti_message_hint"), self.signed_in()
        expected = {"response_type": "id_token", "scope": "openid", "response_mode": "form_post", "prompt": "none",
                    "redirect_uri": self.redirect_uri}
        wrong = sorted(name for name, value in expected.items() if params.get(name) != value)
        if link not in self.links:
            wrong.append("lti_message_hint")
        if wrong:
            return self.respond(400, "invalid authentication request: %s" % ", ".join(wrong))
        if login is None or params.get("login_hint") != user_id(login):
            return self.respond(403, "login_hint is not the signed-in learner")
        request = PlatformRequest({"method": self.command, "get_data": params, "form_data": {}, "headers": {},
                                   "content_type": None, "path": self.path, "json": None})
        launch = Launch(request, Platform(registration=self.links[link]), (login, self.learners[login]), link)
        try:
            form = launch.lti_launch()
        except Exception as error:  # lti1p3platform's checks of the request (client_id, nonce...)
            return self.respond(400, "invalid authentication request: %r" % error)
        return self.respond(200, form, "text/html")

    def respond(self, status, body, content_type="text/plain", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class TLSServer(ThreadingHTTPServer):
    """HTTPS, each connection's handshake in its own thread."""

    daemon_threads = True

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


def main():
    env = os.environ
    Handler.links, Handler.keyset = make_registrations(env)
    Handler.learners = json.loads(env["LTI_LEARNERS"])
    Handler.redirect_uri = env["LTI_TOOL_REDIRECT_URI"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(env["LTI_TLS_CERT"], env["LTI_TLS_KEY"])
    server = TLSServer(("", int(env["LTI_PORT"])), Handler, context)
    print("platform listening on https://%s:%s" % (env["LTI_HOSTNAME"], env["LTI_PORT"]), flush=True)
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
