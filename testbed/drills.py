"""What the fault drills (tests/faults/) share: timing a recovery, and a user as a browser is one.

    seconds = seconds_until(lambda: hub_answers(hub), 120, "the hub to answer")
    session = login(hub, "alice")              # the test hubs' dummy authenticator
    seconds, page = visit(session, hub, "alice")
    stopped_reason_on(page.text)              # the reason on the "not running" page (HTTP 424)
"""

import re
import time

import requests


def login(hub, user):
    """A browser-like session of ``user`` (the test hub's dummy authenticator)."""
    session = requests.Session()
    page = session.get(hub.url + "/hub/login", timeout=30)
    xsrf = session.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(
        hub.url + "/hub/login",
        data={"username": user, "password": "any", "_xsrf": xsrf},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text
    return session


def visit(session, hub, user):
    """The user's next visit to their server's URL: (seconds, final response)."""
    started = time.monotonic()
    r = session.get(hub.url + "/user/%s/lab" % user, timeout=30)
    return time.monotonic() - started, r


def stopped_reason_on(page):
    """The hub's reason on a "your server is not running" page, or None."""
    match = re.search(r'id="hubfleet-stopped-reason"[^>]*>(.*?)</div>', page, re.S)
    return match.group(1) if match else None


def seconds_until(condition, timeout, what, interval=0.2):
    """Call ``condition`` until it is true; the seconds that took (TimeoutError naming ``what``)."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise TimeoutError("%s: not after %s s" % (what, timeout))
        time.sleep(interval)
    return time.monotonic() - began


def hub_answers(hub):
    """Whether the hub's REST API answers (200) right now."""
    try:
        return requests.get(hub.api_url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
