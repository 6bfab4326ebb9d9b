"""Check a deployed Hubfleet hub end to end, with a real browser and the REST API.

    verify_hub.py browser  --url URL --admin NAME --password-file FILE --state FILE --hub NAME
    verify_hub.py restarted --url URL --state FILE --hub NAME

`browser`: the admin logs in (Chromium via Playwright), starts a server (the spawn page
shows progress), JupyterLab loads, a notebook cell runs and writes a file, the server is
stopped and started again and the file is still there. Then, through the REST API, a
second user's server starts next to the admin's and the second user cannot open the
admin's server. Tokens and the servers' containers are written to --state.

`restarted` (run after the hub was restarted by a configuration change): both servers
still answer and write files, their containers were not restarted, and the second user
still cannot open the admin's server.

Exits non-zero with a message on the first failed check.
"""

import argparse
import json
import sys
import time
import uuid

import docker
import requests

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SECOND_USER = "molly"


def check(condition, message):
    if not condition:
        sys.exit("FAILED: " + message)
    print("ok:", message, flush=True)


def api(url, token, method="GET", path="", **kwargs):
    return requests.request(
        method, url + path, headers={"Authorization": "token " + token}, timeout=60, verify=False, **kwargs
    )


def wait_ready(url, token, user, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        model = api(url, token, path="/hub/api/users/%s" % user).json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        time.sleep(1)
    sys.exit("FAILED: server of %s not ready within %ss" % (user, timeout))


def server_containers(hub, users):
    """{user: {"id", "started"}} of the running user-server containers of this hub."""
    client = docker.from_env()
    found = {}
    for container in client.containers.list(filters={"label": ["hubfleet.hub=" + hub, "hubfleet.kind=user-server"]}):
        user = container.labels.get("hubfleet.user")
        if user in users:
            found[user] = {"id": container.id, "started": container.attrs["State"]["StartedAt"]}
    return found


def wait_container_gone(hub, user, timeout=120):
    """Wait until the user's server container is removed (the hub's stop has finished)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if user not in server_containers(hub, [user]):
            return
        time.sleep(0.5)
    sys.exit("FAILED: the server container of %s was not removed within %ss" % (user, timeout))


def write_and_read(url, token, user, marker):
    """Write a file into the user's volume through the proxy and the server, read it back."""
    base = "/user/%s/api/contents/%s.txt" % (user, marker)
    put = api(url, token, "PUT", base, json={"type": "file", "format": "text", "content": marker})
    check(put.status_code in (200, 201), "%s's server writes a file through the hub (%s)" % (user, put.status_code))
    got = api(url, token, path=base + "?content=1")
    check(got.status_code == 200 and got.json().get("content") == marker, "%s's file reads back" % user)


def check_isolation(url, state):
    own = api(url, state["tokens"][SECOND_USER], path="/user/%s/api/status" % SECOND_USER)
    check(own.status_code == 200, "%s opens their own server (%s)" % (SECOND_USER, own.status_code))
    other = api(url, state["tokens"][SECOND_USER], path="/user/%s/api/status" % state["admin"], allow_redirects=False)
    check(other.status_code in (403, 404), "%s cannot open %s's server (%s)" % (SECOND_USER, state["admin"], other.status_code))


def browser_flow(args):
    from playwright.sync_api import sync_playwright

    password = open(args.password_file).read().strip()
    marker = "hubfleet-" + uuid.uuid4().hex[:8]
    url = args.url.rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(180_000)
        seen = []
        page.on("response", lambda response: seen.append(response.url))

        page.goto(url + "/hub/login")
        page.fill("#username_input", args.admin)
        page.fill("#password_input", password)
        page.click("#login_submit")
        page.wait_for_url(lambda current: "/hub/login" not in current)
        check(True, "admin logs in")

        # Logging in starts the server (no options form): spawn page, then JupyterLab.
        # On a rerun the server may be running already; the stop/start below spawns anew.
        page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
        check("/user/%s/lab" % args.admin in page.url, "JupyterLab loads (%s)" % page.url)

        # A notebook cell runs and writes a file into the user's volume.
        page.click(".jp-LauncherCard[data-category='Notebook']")
        # Type only once the new kernel is idle and the cell's editor has the focus.
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        cell.click()
        code = "open('%s.txt', 'w').write('%s'); print('wrote', '%s')" % (marker, marker, marker)
        page.keyboard.type(code)
        page.wait_for_function("code => document.querySelector('.jp-Notebook .cm-content').innerText.includes(code)", arg=code)
        # A cold kernel may drop the very first execute request: run the cell in place
        # (Ctrl+Enter) up to three times before giving up.
        output = ".jp-OutputArea-output:has-text('wrote %s')" % marker
        for _attempt in range(3):
            cell.click()
            page.keyboard.press("Control+Enter")
            try:
                page.wait_for_selector(output, timeout=40_000)
                break
            except Exception:  # playwright's TimeoutError; try once more
                continue
        else:
            page.screenshot(path="/tmp/molecule-hubfleet-verify.png")
            sys.exit("FAILED: the notebook cell gave no output (screenshot /tmp/molecule-hubfleet-verify.png)")
        check(True, "a notebook cell ran and wrote %s.txt" % marker)

        # Stop the server from the home page, start it again, and find the file.
        page.goto(url + "/hub/home")
        page.click("#stop")
        page.wait_for_selector("#start", state="visible")
        wait_container_gone(args.hub, args.admin)
        check(True, "the server stopped and its container is gone")
        page.click("#start")
        page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel")
        check("/user/%s/lab" % args.admin in page.url, "JupyterLab loads again after the restart")
        check(any("/spawn-pending/" in seen_url for seen_url in seen), "the spawn page with its progress bar was shown")
        check(any("/server/progress" in seen_url for seen_url in seen), "the spawn page followed the progress events")
        response = page.request.get(url + "/user/%s/api/contents/%s.txt?content=1" % (args.admin, marker))
        check(response.status == 200 and response.json().get("content") == marker,
              "the notebook's file survived the server restart")

        # An API token for the admin, made with the browser session.
        xsrf = next(
            cookie["value"] for cookie in context.cookies(url + "/hub/api/")
            if cookie["name"] == "_xsrf" and cookie["path"].startswith("/hub")
        )
        response = page.request.post(
            url + "/hub/api/users/%s/tokens" % args.admin,
            headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
            data=json.dumps({"note": "molecule verify", "expires_in": 3600}),
        )
        check(response.status in (200, 201), "admin gets an API token (%s)" % response.status)
        admin_token = response.json()["token"]
        browser.close()

    # A second user, with their own server, through the REST API.
    api(url, admin_token, "POST", "/hub/api/users/%s" % SECOND_USER)
    response = api(url, admin_token, "POST", "/hub/api/users/%s/tokens" % SECOND_USER, json={"expires_in": 3600})
    check(response.status_code in (200, 201), "a token for %s (%s)" % (SECOND_USER, response.status_code))
    second_token = response.json()["token"]
    response = api(url, second_token, "POST", "/hub/api/users/%s/server" % SECOND_USER)
    check(response.status_code in (201, 202, 400), "%s asks for a server (%s)" % (SECOND_USER, response.status_code))
    wait_ready(url, second_token, SECOND_USER)
    state = {"admin": args.admin, "tokens": {args.admin: admin_token, SECOND_USER: second_token}, "marker": marker}
    check_isolation(url, state)
    for user in (args.admin, SECOND_USER):
        write_and_read(url, state["tokens"][user], user, "before-" + marker)
    state["containers"] = server_containers(args.hub, [args.admin, SECOND_USER])
    check(len(state["containers"]) == 2, "both servers run as containers of hub %s" % args.hub)
    with open(args.state, "w") as handle:
        json.dump(state, handle)


def after_restart(args):
    url = args.url.rstrip("/")
    with open(args.state) as handle:
        state = json.load(handle)
    for user, token in state["tokens"].items():
        wait_ready(url, token, user, timeout=60)
        write_and_read(url, token, user, "after-" + state["marker"])
    now = server_containers(args.hub, list(state["tokens"]))
    for user, before in state["containers"].items():
        check(now.get(user) == before, "%s's container kept running through the hub restart" % user)
    check_isolation(url, state)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["browser", "restarted"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--admin", default="admin")
    parser.add_argument("--password-file")
    args = parser.parse_args()
    requests.packages.urllib3.disable_warnings()
    if args.phase == "browser":
        browser_flow(args)
    else:
        after_restart(args)


if __name__ == "__main__":
    main()
