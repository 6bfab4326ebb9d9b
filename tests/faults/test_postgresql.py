"""The hub on PostgreSQL (jupyterhub_db postgresql, issue 17): restart, backup and restore drills.

One hub, deployed once by the real playbooks/site.yml with the role's own PostgreSQL
container (Debian's postgresql, built by the images role), serves the drills in file order:
its state is in that PostgreSQL (read back with psql), it survives a restart of the hub and
of the database container, backup.yml dumps the database (pg_dump) and restore.yml puts it
back (pg_restore) with the users' volumes, and site.yml refuses to switch the running hub
to SQLite. Every playbook run holds the host lock; clean-up removes every Docker object
labelled ``hubfleet.hub=<name>`` and /etc/hubfleet/<name>.
"""

import json
import stat
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from test_playbook_faults import OLD_LAYOUT, HealthWatch, remove_hub
from test_restore_upgrade import LockedSite, unchanged
from testbed.hub import free_port
from testbed.site import ROOT

DEFAULT_VERSION = yaml.safe_load((ROOT / "roles/images/defaults/main.yml").read_text())["images_jupyterhub_version"]


class PostgresSite(LockedSite):
    version = DEFAULT_VERSION
    layout = dict(OLD_LAYOUT, jupyterhub_db="postgresql")

    @property
    def db_container(self):
        return self.name + "-db"

    def psql(self, query):
        """Rows of ``query`` as the hub's database user, through the database container's psql."""
        password = (self.config_dir / "db-password").read_text().strip()
        done = subprocess.run(["docker", "exec", "-e", "PGPASSWORD=" + password, self.db_container,
                               "psql", "--host", "127.0.0.1", "--username", "hub", "--dbname", "jupyterhub",
                               "--tuples-only", "--no-align", "--command", query],
                              capture_output=True, text=True, check=True)
        return done.stdout.split()

    def api_after(self, path, timeout=30):
        """GET ``path`` of the hub API until it answers 200 (after a restart of the hub or database)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                last = requests.get(self.url + "/hub/api" + path, timeout=5,
                                    headers={"Authorization": "token " + self.token()})
                if last.status_code == 200:
                    return last.json()
            except requests.RequestException as error:
                last = error
            time.sleep(0.25)
        raise AssertionError("GET %s did not answer 200 within %s s: %s" % (path, timeout, last))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "pg-%s" % uuid.uuid4().hex[:8]
    hub = PostgresSite(name, free_port(), tmp_path_factory.mktemp(name))
    try:
        deployed = hub.deploy()
        print("deployed the hub on PostgreSQL with site.yml in %.0f s" % deployed.seconds)
        yield hub
    finally:
        remove_hub(name, hub.config_dir)


def test_the_hub_keeps_its_state_in_postgresql_across_restarts(site):
    config = (site.config_dir / "jupyterhub_config.py").read_text()
    assert 'c.JupyterHub.db_url = "postgresql://hub:' in config and "sqlite" not in config.split("db_url")[1][:80]
    database = site.inspect(site.db_container)
    host_config = database["HostConfig"]
    assert database["Config"]["User"] == "999:999" and host_config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host_config["SecurityOpt"] and not host_config["PortBindings"]
    db_network = site.name + "-db"
    assert list(database["NetworkSettings"]["Networks"]) == [db_network], "the database is on its own network only"
    assert set(site.inspect()["NetworkSettings"]["Networks"]) == {site.name, db_network}
    assert json.loads(subprocess.run(["docker", "network", "inspect", db_network], capture_output=True, text=True,
                                     check=True).stdout)[0]["Internal"], "the database network is not internal"
    password_file = (site.config_dir / "db-password").stat()
    assert stat.S_IMODE(password_file.st_mode) == 0o600 and password_file.st_uid == 999
    data = subprocess.run(["docker", "run", "--rm", "--network", "none", "--label", "hubfleet.hub=" + site.name,
                           "--volume", site.name + "-data:/v:ro", "--entrypoint", "ls", site.image(), "/v"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert "jupyterhub.sqlite" not in data, data
    admin_password = (site.config_dir / "admin-password").read_text().strip()
    assert site.login("admin", admin_password), "the first admin cannot log in with the password of its file"
    assert "admin" in site.psql("SELECT username FROM users_info"), "NativeAuthenticator's accounts are not in PostgreSQL"

    for user in ("alice", "bob"):
        site.create_user(user)
    site.start_server("alice")
    site.write("alice", "notes.txt", "alice before the restarts")
    assert {"admin", "alice", "bob"} <= set(site.psql("SELECT name FROM users")), "the users are not in PostgreSQL"
    alice = site.user_container("alice")
    db_address = database["NetworkSettings"]["Networks"][db_network]["IPAddress"]
    for target in (site.db_container, db_address):
        reach = subprocess.run(["docker", "exec", alice["Id"], "python3", "-c",
                                "import socket, sys; socket.create_connection((sys.argv[1], 5432), 3)", target],
                               capture_output=True, text=True, check=False)
        assert reach.returncode != 0, "alice's server reaches the database at %s" % target

    started = time.monotonic()
    subprocess.run(["docker", "restart", site.container], check=True, capture_output=True)
    site.wait_healthy()
    users = {user["name"]: user for user in site.api_after("/users")}
    hub_back = time.monotonic() - started
    assert {"alice", "bob"} <= set(users) and users["alice"]["servers"][""]["ready"]
    assert unchanged(alice, site.user_container("alice")), "alice's server did not survive the hub's restart"

    started = time.monotonic()
    subprocess.run(["docker", "restart", site.db_container], check=True, capture_output=True)
    users = {user["name"] for user in site.api_after("/users")}
    db_back = time.monotonic() - started
    assert {"alice", "bob"} <= users
    site.create_user("dora")
    assert "dora" in site.psql("SELECT name FROM users")
    assert site.contents("notes.txt", user="alice") == "alice before the restarts"
    site.stop_server("alice")
    print("PostgreSQL hub: hub restart -> API with its users %.1f s, alice's server adopted; database restart "
          "-> API answering again %.1f s; users in PostgreSQL" % (hub_back, db_back))


def test_backup_and_restore_put_the_postgresql_database_back(site):
    site.ensure_deployed()
    for user in ("erin", "frank"):
        site.create_user(user)
    site.start_server("erin")
    site.write("erin", "notes.txt", "erin at the backup")
    with HealthWatch(site) as watch:
        backup = site.run(playbook="backup.yml")
    assert backup.rc == 0, backup.output
    dump = site.backup_dir / "hub-db.dump"
    assert dump.read_bytes()[:5] == b"PGDMP", "hub-db.dump is not a pg_dump archive"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert {"hub-data.tar.gz", "users/manifest.json"} <= set(site.backups())
    backup_outage = watch.longest_outage()

    # After the backup: carol joins and frank is deleted; only the database knows.
    site.create_user("carol")
    site.api("DELETE", "/users/frank")
    site.stop_server("erin")
    assert "carol" in site.psql("SELECT name FROM users") and "frank" not in site.psql("SELECT name FROM users")

    with HealthWatch(site) as watch:
        restored = site.run("jupyterhub_restore_hub=true", "jupyterhub_restore_force=true", playbook="restore.yml")
    assert restored.rc == 0, restored.output
    site.wait_healthy()
    names = site.psql("SELECT name FROM users")
    assert "carol" not in names and {"admin", "erin", "frank"} <= set(names), names
    assert not site.user_exists("carol") and site.user_exists("frank")
    site.start_server("erin")
    assert site.contents("notes.txt", user="erin") == "erin at the backup"
    print("PostgreSQL hub: backup %.0f s (hub unanswered %.1f s, dump %d bytes); whole-hub restore %.0f s "
          "(hub unanswered %.1f s): the database as at the backup" % (
              backup.seconds, backup_outage, dump.stat().st_size, restored.seconds, watch.longest_outage()))


def test_switching_the_running_hub_to_sqlite_is_refused(site):
    site.ensure_deployed()
    hub, database = site.inspect(), site.inspect(site.db_container)
    refused = site.run({"jupyterhub_db": "sqlite"})
    assert refused.rc != 0, refused.output
    assert "jupyterhub_db is sqlite, but the hub %s runs on postgresql" % site.container in refused.output
    assert unchanged(hub, site.inspect()) and unchanged(database, site.inspect(site.db_container))
    assert site.healthy()
