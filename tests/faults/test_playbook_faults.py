"""Fault drills of the playbook (issue 12, drills 5-8), on this machine's real engine.

Every drill runs the real playbooks/site.yml (inventory/local) for one hub with a name
and port unique to this run, as tests/playbooks/test_site_validation.py does. The drills
share that one hub, in file order, because a deployment is what each drill starts from
(each site.yml run costs about half a minute, most of it the images role); a drill that
finds no healthy hub deploys one first. Clean-up removes every Docker object labelled
``hubfleet.hub=<name>`` and /etc/hubfleet/<name>.

Measured recovery times are printed (pytest -rA shows them) for the README's
"What survives what" table.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from testbed.hub import free_port
from testbed.hub_rules import remove_hub_rules

ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)")


# The users' volumes as the jupyterhub role laid them out before it kept the whole home (its
# defaults until commit 0d98b9f): one volume per user at /home/jovyan/work, JupyterLab opening
# there, no other volume.
OLD_LAYOUT = {
    "jupyterhub_user_volume_template": "{prefix}-user-{username}",
    "jupyterhub_user_volume_mount": "/home/jovyan/work",
    "jupyterhub_notebook_dir": "/home/jovyan/work",
    "jupyterhub_work_volume_template": "",
}


class Run:
    def __init__(self, rc, output, seconds, killed_at=None):
        self.rc, self.output, self.seconds, self.killed_at = rc, output, seconds, killed_at

    @property
    def changed(self):
        found = RECAP.search(self.output)
        return int(found.group(1)) if found else None

    def changed_tasks(self):
        """The names of the tasks that reported a change."""
        names, task = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line
            elif line.startswith("changed:") and task:
                names.append(task)
        return names


class Site:
    """One hub deployed by site.yml on this machine, and what a drill asks of it."""

    def __init__(self, name, port, workdir):
        self.name, self.port, self.workdir = name, port, workdir
        self.config_dir = Path("/etc/hubfleet", name)
        self.backup_dir = workdir / "backups"
        self.container = name + "-hub"
        self.url = "http://127.0.0.1:%d" % port
        self._token = None

    def argv(self, playbook, *extra):
        argv = ["ansible-playbook", "-i", str(ROOT / "inventory/local/hosts.yml"), str(ROOT / "playbooks" / playbook),
                "-e", json.dumps({
                    "jupyterhub_name": self.name, "jupyterhub_port": self.port,
                    "jupyterhub_labels": {"hubfleet.test": self.name},
                    "jupyterhub_backup_dir": str(self.backup_dir), "jupyterhub_mem_limit": "512M",
                    # This checkout's own build contexts: other checkouts on this machine
                    # build into the default directory at the same time.
                    "images_build_dir": str(ROOT / ".cache" / "image-build"),
                })]
        for value in extra:
            argv += ["-e", value if isinstance(value, str) else json.dumps(value)]
        return argv

    def run(self, *extra, playbook="site.yml", kill_at=None, kill_after=0.5, timeout=600):
        """Run ``playbook``; with ``kill_at`` (a task name), SIGKILL the whole run once that task started."""
        collections = ROOT / ".cache" / "collections" / "ansible_collections" / "hubfleet"
        collections.mkdir(parents=True, exist_ok=True)
        if not (collections / "jupyterhub").is_symlink():
            (collections / "jupyterhub").symlink_to("../../../..")
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")
        started = time.monotonic()
        # Its own process group: the kill takes ansible-playbook, its workers and the docker
        # commands they run, as a lost controller would.
        process = subprocess.Popen(self.argv(playbook, *extra), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines, killed_at = [], None
        timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                if kill_at and killed_at is None and line.startswith("TASK [") and (": " + kill_at + "]") in line:
                    time.sleep(kill_after)
                    os.killpg(process.pid, signal.SIGKILL)
                    killed_at = kill_at
            rc = process.wait()
        finally:
            timer.cancel()
        if kill_at:
            assert killed_at, "site.yml never reached the task %r:\n%s" % (kill_at, "".join(lines))
        return Run(rc, "".join(lines), time.monotonic() - started, killed_at)

    def deploy(self, *extra, playbook="site.yml"):
        result = self.run(*extra, playbook=playbook)
        assert result.rc == 0, result.output
        return result

    # -- the hub --

    def healthy(self):
        try:
            return requests.get(self.url + "/hub/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def ensure_deployed(self):
        if not self.healthy():
            self.deploy()

    def inspect(self, name=None):
        """``docker inspect`` of the hub container (or ``name``); None when it does not exist."""
        done = subprocess.run(["docker", "inspect", name or self.container], capture_output=True, text=True, check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    def token(self):
        """An API token of the admin, made by JupyterHub in the hub container."""
        if self._token is None:
            done = subprocess.run(["docker", "exec", self.container, "jupyterhub", "token", "admin",
                                   "-f", "/etc/jupyterhub/jupyterhub_config.py"],
                                  capture_output=True, text=True, check=True)
            self._token = done.stdout.strip().splitlines()[-1]
        return self._token

    def api(self, method, path, **kwargs):
        response = requests.request(method, self.url + "/hub/api" + path, timeout=30,
                                    headers={"Authorization": "token " + self.token()}, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def start_server(self, user="admin", timeout=120):
        if not self.api("GET", "/users/" + user).get("servers", {}).get("", {}).get("ready"):
            requests.post(self.url + "/hub/api/users/%s/server" % user, timeout=30,
                          headers={"Authorization": "token " + self.token()})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api("GET", "/users/" + user).get("servers", {}).get("", {}).get("ready"):
                return
            time.sleep(1)
        raise AssertionError("%s's server did not become ready in %s s" % (user, timeout))

    def stop_server(self, user="admin"):
        self.api("DELETE", "/users/%s/server" % user)
        deadline = time.monotonic() + 60
        while self.user_container(user) and time.monotonic() < deadline:
            time.sleep(0.5)

    def user_volume(self, user):
        return "%s-user-%s" % (self.name, user)

    def user_container(self, user="admin"):
        done = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", "label=hubfleet.hub=" + self.name,
                               "--filter", "label=hubfleet.user=" + user], capture_output=True, text=True, check=True)
        ids = done.stdout.split()
        return self.inspect(ids[0]) if ids else None

    def user_exists(self, user):
        response = requests.get(self.url + "/hub/api/users/" + user, timeout=30,
                                headers={"Authorization": "token " + self.token()})
        return response.status_code == 200

    def contents(self, path, text=None, user="admin"):
        """Write (with ``text``) or read a file in the user's server, through the hub's proxy."""
        url = "%s/user/%s/api/contents/%s" % (self.url, user, path)
        headers = {"Authorization": "token " + self.token()}
        if text is not None:
            requests.put(url, json={"type": "file", "format": "text", "content": text},
                         headers=headers, timeout=30).raise_for_status()
        response = requests.get(url, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()["content"]

    def login(self, user, password):
        """Log in through the hub's login form; True when the hub accepted the password."""
        session = requests.Session()
        session.get(self.url + "/hub/login", timeout=30)
        response = session.post(self.url + "/hub/login", timeout=30, allow_redirects=False,
                                data={"username": user, "password": password,
                                      "_xsrf": session.cookies.get("_xsrf", "")})
        return response.status_code == 302 and "/hub/login" not in response.headers.get("Location", "")

    def config_checksum(self):
        return hashlib.sha256((self.config_dir / "jupyterhub_config.py").read_bytes()).hexdigest()


class HealthWatch:
    """Polls /hub/health every 0.25 s in a thread; reports the longest time it did not answer 200."""

    def __init__(self, site):
        self.site, self.samples, self._stop = site, [], threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.site.healthy()))
            time.sleep(0.25)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def longest_outage(self):
        longest, down_since = 0.0, None
        for when, ok in self.samples:
            if not ok and down_since is None:
                down_since = when
            elif ok and down_since is not None:
                longest, down_since = max(longest, when - down_since), None
        if down_since is not None:
            longest = max(longest, self.samples[-1][0] - down_since)
        return longest

    def healthy_at_end(self):
        return bool(self.samples) and self.samples[-1][1]


def remove_hub(name, config_dir):
    """Remove the hub's Docker objects by label, its configuration and its network isolation rules."""
    remove_hub_rules(name)
    for kind, flags in (("container", ["-a"]), ("volume", []), ("network", [])):
        ids = subprocess.run(["docker", kind, "ls", "-q"] + flags + ["--filter", "label=hubfleet.hub=" + name],
                             capture_output=True, text=True, check=False).stdout.split()
        if ids:
            subprocess.run(["docker", kind, "rm"] + (["-f"] if kind == "container" else []) + ids,
                           capture_output=True, check=False)
    # The Docker API filter's socket volume carries no hub label.
    subprocess.run(["docker", "volume", "rm", name + "-docker-api"], capture_output=True, check=False)
    shutil.rmtree(config_dir, ignore_errors=True)


@contextlib.contextmanager
def deployed(hub, what="site.yml"):
    """``hub`` deployed by site.yml (the time printed, after ``what``) for the block, then
    removed whatever happened."""
    try:
        result = hub.deploy()
        print("deployed %s in %.0f s" % (what, result.seconds))
        yield hub
    finally:
        remove_hub(hub.name, hub.config_dir)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "faults-%s" % uuid.uuid4().hex[:8]
    hub = Site(name, free_port(), tmp_path_factory.mktemp(name))
    yield hub
    remove_hub(name, hub.config_dir)


# -- Drill 5: an interrupted playbook ------------------------------------------------------

FIRST_RUN_KILLS = ["Start the hub container", "Make the first admin's account exist with that password"]
CHANGE_RUN_KILLS = ["Keep it as the previous hub", "Wait until the new hub answers /hub/health (or crash-loops)"]


def test_first_run_killed_twice_then_rerun_converges_and_a_second_run_changes_nothing(site):
    for task in FIRST_RUN_KILLS:
        killed = site.run(kill_at=task)
        assert killed.rc != 0, killed.output
    converged = site.deploy()
    assert site.healthy()
    password = (site.config_dir / "admin-password").read_text()
    assert site.login("admin", password), "the admin cannot log in with the password file's password"
    again = site.run()
    assert again.rc == 0, again.output
    assert again.changed == 0, "a second run changed: %s\n%s" % (again.changed_tasks(), again.output)
    print("drill 5 first run: killed at %s; the re-run converged in %.0f s; the next run changed=0 (%.0f s)"
          % (FIRST_RUN_KILLS, converged.seconds, again.seconds))


def test_configuration_change_killed_twice_then_rerun_converges_servers_and_files_untouched(site):
    site.ensure_deployed()
    site.start_server()
    site.contents("drill5.txt", "written before the interrupted runs")
    server = site.user_container()
    with HealthWatch(site) as watch:
        for task in CHANGE_RUN_KILLS:
            killed = site.run({"jupyterhub_extra_config": "c.Spawner.debug = True"}, kill_at=task)
            assert killed.rc != 0, killed.output
        converged = site.run({"jupyterhub_extra_config": "c.Spawner.debug = True"})
        assert converged.rc == 0, converged.output
    assert site.inspect(site.container + "-previous") is None, "the set-aside hub was left behind"
    assert "c.Spawner.debug = True" in (site.config_dir / "jupyterhub_config.py").read_text()
    after = site.user_container()
    assert after and after["Id"] == server["Id"] and after["State"]["StartedAt"] == server["State"]["StartedAt"]
    assert site.api("GET", "/users/admin")["servers"][""]["ready"]
    assert site.contents("drill5.txt") == "written before the interrupted runs"
    print("drill 5 configuration change: killed at %s; re-run converged in %.0f s; hub unanswered at most %.1f s "
          "over the three runs; the user's server kept running" % (CHANGE_RUN_KILLS, converged.seconds,
                                                                   watch.longest_outage()))


# -- Drill 6: a bad configuration never takes a running hub down -------------------------------

def test_a_syntax_error_in_extra_config_is_refused_before_the_hub_is_touched(site):
    site.ensure_deployed()
    site.start_server()
    hub = site.inspect()
    config = site.config_checksum()
    with HealthWatch(site) as watch:
        refused = site.run({"jupyterhub_extra_config": 'c.Spawner.cmd = (["jupyterhub-singleuser"]'})
    assert refused.rc != 0
    assert "SyntaxError: '(' was never closed" in refused.output, refused.output
    assert "nothing was changed" in refused.output
    now = site.inspect()
    assert now["Id"] == hub["Id"] and now["State"]["StartedAt"] == hub["State"]["StartedAt"]
    assert site.config_checksum() == config
    assert watch.longest_outage() == 0.0 and watch.healthy_at_end()
    assert site.api("GET", "/users/admin")["servers"][""]["ready"]
    print("drill 6 syntax error: refused after %.0f s, hub never down" % refused.seconds)


def test_a_configuration_that_crashes_the_hub_is_rolled_back_within_a_minute_showing_its_error(site):
    site.ensure_deployed()
    site.start_server()
    site.contents("drill6.txt", "kept through a rollback")
    hub = site.inspect()
    server = site.user_container()
    config = site.config_checksum()
    # Loads fine (a string option), but the hub cannot open its database and exits.
    crashing = 'c.JupyterHub.db_url = "sqlite:////nonexistent/jupyterhub.sqlite"'
    with HealthWatch(site) as watch:
        failed = site.run({"jupyterhub_extra_config": crashing})
    assert failed.rc != 0
    assert "The previous hub and its configuration are back and running" in failed.output, failed.output
    # The hub's own error, from its log.
    assert "Failed to connect to db: sqlite:////nonexistent/jupyterhub.sqlite" in failed.output
    now = site.inspect()
    assert now["Id"] == hub["Id"] and now["State"]["Running"], "the previous hub container is not back"
    assert site.inspect(site.container + "-previous") is None
    assert site.config_checksum() == config
    assert site.healthy()
    outage = watch.longest_outage()
    assert 0 < outage < 60, "the hub was unanswered for %.1f s" % outage
    after = site.user_container()
    assert after["Id"] == server["Id"] and after["State"]["StartedAt"] == server["State"]["StartedAt"]
    assert site.contents("drill6.txt") == "kept through a rollback"
    print("drill 6 crashing configuration: hub unanswered %.1f s (stop, new hub crash-looped, previous put "
          "back); play failed after %.0f s with the hub's log" % (outage, failed.seconds))
