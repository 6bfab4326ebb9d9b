"""Check a deployed Hubfleet hub end to end, with a real browser and the REST API.

    verify_hub.py browser  --url URL --admin NAME --password-file FILE --state FILE --hub NAME
    verify_hub.py restarted --url URL --state FILE --hub NAME
    verify_hub.py operator --url URL --admin NAME --password-file FILE --state FILE --hub NAME --templates-dir DIR

`browser`: the admin logs in (Chromium via Playwright), starts a server (the spawn page
shows progress), JupyterLab loads, a notebook cell runs and writes a file, the server is
stopped and started again and the file is still there. Then, through the REST API, a
second user's server starts next to the admin's and the second user cannot open the
admin's server. Tokens and the servers' containers are written to --state.

`restarted` (run after the hub was restarted by a configuration change): both servers
still answer and write files, their containers were not restarted, and the second user
still cannot open the admin's server.

`operator` (the settings of molecule.yml's group_vars): the login page is the site's own
(jupyterhub_templates_dir) with the announcement on it, escaped, and /hub/logo serves the
site's logo.svg byte for byte (the admin's login below goes through that page); in Chromium the spawn form shows the admin (a grader) both profiles and
shows the second user only the one for everyone; the second user is refused the graders'
profile (HTTP 400); a named server with the graders' profile runs with its memory limit
and the graders' CPU limit; a second named server starts, a third is refused; named
servers mount the user's volume, and deleting them keeps it; the metrics token (from the
host's 0600 file) reads /hub/metrics and a user's token is refused; the server reports
its memory limit (jupyter-resource-usage).

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
        if user in users and not container.labels.get("hubfleet.server"):
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


def start_from_form(page, expected):
    """On the spawn form, check it offers exactly the ``expected`` profiles, then start the
    checked one. Does nothing when the server is running already (JupyterLab shows)."""
    page.wait_for_selector("#spawn_form, .jp-LauncherCard, #jp-main-dock-panel")
    if not page.locator("#spawn_form").count():
        return
    offered = form_profiles(page)
    check(offered == expected, "the spawn form offers the profiles %s (%s)" % (expected, offered))
    page.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")


def form_profiles(page):
    return [radio.get_attribute("value") for radio in page.locator("#spawn_form input[name=profile]").all()]


def login(page, url, admin, password):
    page.goto(url + "/hub/login")
    page.fill("#username_input", admin)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(lambda current: "/hub/login" not in current)


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

        login(page, url, args.admin, password)
        check(True, "admin logs in")

        # Logging in leads to the spawn form (profiles): the default one is checked; start
        # it. On a rerun the server may be running already; the stop/start below spawns anew.
        start_from_form(page, expected=["Standard", "Grading"])
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
        start_from_form(page, expected=["Standard", "Grading"])
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


def wait_named_ready(url, token, user, name, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        server = api(url, token, path="/hub/api/users/%s" % user).json().get("servers", {}).get(name)
        if server and server.get("ready"):
            return server
        time.sleep(1)
    sys.exit("FAILED: named server %s of %s not ready within %ss" % (name, user, timeout))


def named_container(hub, user, name):
    client = docker.from_env()
    found = client.containers.list(
        filters={"label": ["hubfleet.hub=" + hub, "hubfleet.user=" + user, "hubfleet.server=" + name]}
    )
    check(len(found) == 1, "named server %s of %s runs in one container" % (name, user))
    return found[0]


def operator_settings(args):
    url = args.url.rstrip("/")
    with open(args.state) as handle:
        state = json.load(handle)
    admin, admin_token = state["admin"], state["tokens"][state["admin"]]
    second_token = state["tokens"][SECOND_USER]

    login_page = requests.get(url + "/hub/login", timeout=60, verify=False).text
    check("Exam week: servers restart at 02:00 &lt;UTC&gt;" in login_page, "the announcement is on the login page, escaped")
    check("Welcome to the Molecule Institute hub." in login_page and 'id="site-welcome"' in login_page,
          "the login page is the site's native-login.html (jupyterhub_templates_dir)")
    check('src="/hub/logo"' in login_page, "the banner shows the hub's logo")
    logo = requests.get(url + "/hub/logo", timeout=60, verify=False)
    with open(args.templates_dir + "/logo.svg", "rb") as site_logo:
        logo_bytes = site_logo.read()
    check(logo.status_code == 200 and logo.content == logo_bytes
          and logo.headers.get("Content-Type", "").startswith("image/svg+xml"),
          "/hub/logo serves the site's logo.svg (%s, %s, %d bytes)"
          % (logo.status_code, logo.headers.get("Content-Type"), len(logo.content)))

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(60_000)
        login(page, url, admin, open(args.password_file).read().strip())
        # Opening a named server's spawn page makes that server's entry, which counts
        # against the limit: use the name of the one started below.
        page.goto(url + "/hub/spawn/%s/grading" % admin)
        page.wait_for_selector("#spawn_form")
        check(form_profiles(page) == ["Standard", "Grading"], "Chromium: a grader's spawn form shows both profiles")
        check(page.locator("#spawn_form").inner_text().count("768M memory") == 1, "the form shows the graders' profile's memory")
        page.goto(url + "/hub/spawn/%s/grading" % SECOND_USER)
        page.wait_for_selector("#spawn_form")
        check(form_profiles(page) == ["Standard"], "Chromium: another user's spawn form shows only the profile for everyone")
        browser.close()

    refused = api(url, second_token, "POST", "/hub/api/users/%s/servers/grading" % SECOND_USER, json={"profile": "Grading"})
    check(refused.status_code == 400 and "Grading" in refused.text,
          "%s is refused the graders' profile (%s %s)" % (SECOND_USER, refused.status_code, refused.text[:200]))

    started = api(url, admin_token, "POST", "/hub/api/users/%s/servers/grading" % admin, json={"profile": "Grading"})
    check(started.status_code in (201, 202), "%s starts a named server with the graders' profile (%s)" % (admin, started.status_code))
    wait_named_ready(url, admin_token, admin, "grading")
    host_config = named_container(args.hub, admin, "grading").attrs["HostConfig"]
    check(host_config["Memory"] == 768 * 1024**2, "the profile's memory limit is on the container (%s)" % host_config["Memory"])
    check(host_config["NanoCpus"] == 1_500_000_000, "the graders' CPU limit is on the container (%s)" % host_config["NanoCpus"])

    second = api(url, admin_token, "POST", "/hub/api/users/%s/servers/extra" % admin, json={"profile": "Standard"})
    check(second.status_code in (201, 202), "a second named server starts (%s)" % second.status_code)
    wait_named_ready(url, admin_token, admin, "extra")
    third = api(url, admin_token, "POST", "/hub/api/users/%s/servers/third" % admin, json={"profile": "Standard"})
    check(third.status_code == 400 and "named server" in third.text,
          "a third named server is refused (%s %s)" % (third.status_code, third.text[:200]))

    # The role's volume template names the user, not the server: a user's named servers
    # mount the same volume as their default server (the same files everywhere).
    default_volumes = {m["Name"] for m in server_container_mounts(args.hub, admin, "")}
    for name in ("grading", "extra"):
        named = {m["Name"] for m in named_container(args.hub, admin, name).attrs["Mounts"] if m["Type"] == "volume"}
        check(named == default_volumes and named, "named server %s mounts the user's volume %s" % (name, sorted(named)))
        deleted = api(url, admin_token, "DELETE", "/hub/api/users/%s/servers/%s" % (admin, name), json={"remove": True})
        check(deleted.status_code in (202, 204), "named server %s is deleted (%s)" % (name, deleted.status_code))
    deadline = time.time() + 120
    while time.time() < deadline and api(url, admin_token, path="/hub/api/users/%s" % admin).json()["servers"].keys() - {""}:
        time.sleep(1)
    client = docker.from_env()
    for volume in default_volumes:
        check(bool(client.volumes.list(filters={"name": volume})), "deleting the named servers kept the user's volume %s" % volume)
    write_and_read(url, admin_token, admin, "after-named-" + state["marker"])

    # Metrics: the scraper's token (from the host's 0600 file) reads /hub/metrics; a user's does not.
    scrape_token = open("/etc/hubfleet/%s/metrics-token" % args.hub).read().strip()
    scraped = api(url, scrape_token, path="/hub/metrics")
    check(scraped.status_code == 200 and "jupyterhub_active_users" in scraped.text,
          "the metrics token scrapes /hub/metrics (%s)" % scraped.status_code)
    refused = api(url, second_token, path="/hub/metrics")
    check(refused.status_code == 403, "a user's token is refused /hub/metrics (%s)" % refused.status_code)
    # jupyter-resource-usage in the default image reports the server's memory limit.
    usage = api(url, admin_token, path="/user/%s/api/metrics/v1" % admin)
    limit = usage.json().get("limits", {}).get("memory", {}).get("rss") if usage.status_code == 200 else None
    check(limit == 1024**3, "the server reports its memory against its 1G limit (%s, %s)" % (usage.status_code, limit))


def server_container_mounts(hub, user, name):
    """The volume mounts of the running container of ``user``'s server ``name`` ("" the default)."""
    client = docker.from_env()
    found = [
        c for c in client.containers.list(filters={"label": ["hubfleet.hub=" + hub, "hubfleet.user=" + user, "hubfleet.kind=user-server"]})
        if c.labels.get("hubfleet.server", "") == name
    ]
    check(len(found) == 1, "%s's server %r runs in one container" % (user, name))
    return [m for m in found[0].attrs["Mounts"] if m["Type"] == "volume"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["browser", "restarted", "operator"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--admin", default="admin")
    parser.add_argument("--password-file")
    parser.add_argument("--templates-dir")
    args = parser.parse_args()
    requests.packages.urllib3.disable_warnings()
    if args.phase == "browser":
        browser_flow(args)
    elif args.phase == "operator":
        operator_settings(args)
    else:
        after_restart(args)


if __name__ == "__main__":
    main()
