"""The per-user storage limit (issue 11, usage and limits) on a hub deployed by the real
playbooks/site.yml on this machine, measured by the real playbooks/usage.yml.

alice fills her kept home past ``jupyterhub_volume_size_limit``, bob stays under it; then
usage.yml measures (the engine's disk usage report) and writes the report into the hub's
data volume. Shown: alice's hub pages carry the notice, bob's do not, the admin's name
alice; alice's next server has the notice in its environment and in a new terminal (bash
reads the image's /etc/bash.bashrc). Every playbook run holds the host lock; clean-up
removes every Docker object labelled for the hub and its configuration directory.
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT))

from test_playbook_faults import Site, deployed  # noqa: E402
from testbed.hub import free_port  # noqa: E402
from testbed.host_lock import HOST_LOCK  # noqa: E402

LIMIT = "1M"


class LimitedSite(Site):
    """The hub with a 1 MiB per-user limit; every playbook run holds the host lock."""

    def argv(self, playbook, *extra):
        return super().argv(playbook, {"jupyterhub_volume_size_limit": LIMIT}, *extra)

    def run(self, *extra, **kwargs):
        with open(HOST_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return super().run(*extra, **kwargs)

    def login(self, user, password):
        """A browser-like session of ``user`` (pages want the hub's cookie, not a token)."""
        session = requests.Session()
        session.get(self.url + "/hub/login", timeout=30)
        response = session.post(self.url + "/hub/login", timeout=60, data={
            "username": user, "password": password, "_xsrf": session.cookies.get("_xsrf")})
        response.raise_for_status()
        assert "/hub/login" not in response.url, "%s could not log in" % user
        return session

    def sign_up(self, admin, user):
        """NativeAuthenticator's sign-up of ``user``, authorized by the admin; their session."""
        password = "Storage-%s-%s" % (user, uuid.uuid4().hex[:8])
        anonymous = requests.Session()
        anonymous.get(self.url + "/hub/signup", timeout=30)
        anonymous.post(self.url + "/hub/signup", timeout=60, data={
            "username": user, "signup_password": password, "signup_password_confirmation": password,
            "_xsrf": anonymous.cookies.get("_xsrf")}).raise_for_status()
        admin.get(self.url + "/hub/authorize/" + user, timeout=30).raise_for_status()
        return self.login(user, password)

    def notice(self, session):
        """The storage notice on the session's hub home page ("" when none)."""
        response = session.get(self.url + "/hub/home", timeout=30)
        response.raise_for_status()
        found = re.findall(r'id="hubfleet-storage-notice">([^<]*)<', response.text)
        return found[0] if found else ""

    def in_server(self, user, script, *args):
        container = self.user_container(user)
        assert container, "%s's server is not running" % user
        return subprocess.run(["docker", "exec", container["Id"], "sh", "-c", script, "sh"] + list(args),
                              capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "quota-%s" % uuid.uuid4().hex[:8]
    with deployed(LimitedSite(name, free_port(), tmp_path_factory.mktemp(name)), "with a 1 MiB limit") as hub:
        yield hub


def test_users_over_the_limit_are_told_and_the_admins_see_who(site):
    admin = site.login("admin", (site.config_dir / "admin-password").read_text().strip())
    sessions = {user: site.sign_up(admin, user) for user in ("alice", "bob")}
    for user in ("alice", "bob"):
        site.start_server(user)
    # alice: 2 MiB in her home (kept in her volume by default); bob: a few bytes.
    site.in_server("alice", 'head -c 2097152 /dev/urandom > "$HOME/dataset.bin"')
    site.in_server("bob", 'echo notes > "$HOME/notes.txt"')
    assert site.notice(sessions["alice"]) == "", "no notice before anything is measured"

    started = time.monotonic()
    measured = site.run(playbook="usage.yml")
    assert measured.rc == 0, measured.output
    print("usage.yml measured and wrote the report in %.1f s" % (time.monotonic() - started))
    assert "1 user(s) over the limit of %s: alice" % LIMIT in measured.output, measured.output

    volume = json.loads(subprocess.run(["docker", "volume", "inspect", site.name + "-data"], capture_output=True,
                                       text=True, check=True).stdout)[0]
    report_path = Path(volume["Mountpoint"]) / "usage.json"
    stat = os.stat(report_path)
    assert (oct(stat.st_mode & 0o777), stat.st_uid) == ("0o600", 901)
    report = json.loads(report_path.read_text())
    assert report["limit"] == 1024 ** 2
    assert report["users"]["alice"] >= 2 * 1024 ** 2 > 1024 ** 2 > report["users"]["bob"]

    alice_sees = site.notice(sessions["alice"])
    assert alice_sees.startswith("Your files use 2") and "more than your limit of 1 MiB" in alice_sees, alice_sees
    assert site.notice(sessions["bob"]) == ""
    assert site.notice(admin).startswith("1 user over the storage limit of 1 MiB: alice (2")

    # The next servers: alice's has the notice in its environment and in a new terminal.
    for user in ("alice", "bob"):
        site.stop_server(user)
        site.start_server(user)
    notice = site.in_server("alice", 'printf %s "$HUBFLEET_STORAGE_NOTICE"')
    assert notice.startswith("Your files use 2") and "limit of 1 MiB" in notice
    assert notice in site.in_server("alice", "bash -i -c true 2>/dev/null")
    assert site.in_server("bob", 'printf %s "${HUBFLEET_STORAGE_NOTICE:-none}"') == "none"
