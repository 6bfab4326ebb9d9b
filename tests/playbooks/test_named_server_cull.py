"""The idle culler as the jupyterhub role configures it stops named servers too (issue 17, items 2 and 5).

One hub deployed by the real playbooks/site.yml with named servers allowed and a culler that
stops servers idle for 20 s, checking every 5 s. The admin starts the default server and a
named one and writes a file in the named one; nobody uses either. Both must be stopped by the
culler (the hub's own jupyterhub-idle-culler service), the named server must stay the user's
(stopped, not deleted) and its file must be there when it starts again. Every playbook run
holds the host lock; clean-up removes every Docker object labelled for the hub and its
configuration directory.
"""

import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT))

from test_playbook_faults import remove_hub  # noqa: E402
from test_restore_upgrade import LockedSite  # noqa: E402
from testbed.hub import free_port  # noqa: E402

DEFAULT_VERSION = yaml.safe_load((ROOT / "roles/images/defaults/main.yml").read_text())["images_jupyterhub_version"]
CULL_TIMEOUT, CULL_EVERY = 20, 5
NAMED = "project"


class CullingSite(LockedSite):
    version = DEFAULT_VERSION
    layout = {"jupyterhub_named_servers": True, "jupyterhub_named_server_limit": 2,
              "jupyterhub_cull_timeout": CULL_TIMEOUT, "jupyterhub_cull_every": CULL_EVERY}

    def server(self, name):
        return self.api("GET", "/users/admin")["servers"].get(name)

    def start(self, name, timeout=120):
        path = "/users/admin/servers/" + name if name else "/users/admin/server"
        requests.post(self.url + "/hub/api" + path, timeout=30,
                      headers={"Authorization": "token " + self.token()}).raise_for_status()
        deadline = time.monotonic() + timeout
        while not (self.server(name) or {}).get("ready"):
            assert time.monotonic() < deadline, "admin's server %r is not ready in %s s" % (name, timeout)
            time.sleep(0.5)

    def named_contents(self, path, text=None):
        """Write (with ``text``) or read a file in the admin's named server, through the proxy."""
        url = "%s/user/admin/%s/api/contents/%s" % (self.url, NAMED, path)
        headers = {"Authorization": "token " + self.token()}
        if text is not None:
            requests.put(url, json={"type": "file", "format": "text", "content": text},
                         headers=headers, timeout=30).raise_for_status()
        response = requests.get(url, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()["content"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "cull-%s" % uuid.uuid4().hex[:8]
    hub = CullingSite(name, free_port(), tmp_path_factory.mktemp(name))
    try:
        deployed = hub.deploy()
        print("deployed with site.yml in %.0f s" % deployed.seconds)
        yield hub
    finally:
        remove_hub(name, hub.config_dir)


def test_the_culler_stops_idle_named_servers_and_keeps_them_and_their_files(site):
    site.start("")
    site.start(NAMED)
    site.named_contents("kept.txt", "written before the cull")
    started = time.monotonic()
    limit = CULL_TIMEOUT + 4 * CULL_EVERY + 30
    stopped_at = {}
    while len(stopped_at) < 2 and time.monotonic() - started < limit:
        for name in set(("", NAMED)) - set(stopped_at):
            if site.server(name) is None:  # the hub lists a user's active servers only
                stopped_at[name] = time.monotonic() - started
        time.sleep(1)
    assert set(stopped_at) == {"", NAMED}, "not culled within %s s: %s" % (
        limit, sorted({"", NAMED} - set(stopped_at)))
    assert not site.user_container("admin"), "a culled server's container still runs"
    # Stopped, not deleted: the named server is still the admin's (its record and its files).
    named = site.api("GET", "/users/admin?include_stopped_servers")["servers"]
    assert NAMED in named and not named[NAMED]["ready"], named
    site.start(NAMED)
    assert site.named_contents("kept.txt") == "written before the cull"
    print("idle servers culled (timeout %d s, every %d s): default after %.1f s, named %r after %.1f s; the named "
          "server kept with its file" % (CULL_TIMEOUT, CULL_EVERY, stopped_at[""], NAMED, stopped_at[NAMED]))
