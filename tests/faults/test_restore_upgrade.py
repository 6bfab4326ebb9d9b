"""Fault drills of backup, restore and upgrade (issue 12, drills 7 and 8), on this machine's real engine.

One hub, deployed once by the real playbooks/site.yml with JupyterHub 5.5.4
(``images_jupyterhub_version``), serves every drill in file order: drill 7 backs it up
(into a small tmpfs of its own, which the full-disk drill fills), restores one user, refuses
restores, restores the whole hub; drill 8 then upgrades it to the default JupyterHub by
re-running site.yml and tries a downgrade. Every playbook run holds the host lock
(/tmp/hubfleet-host.lock), as every deployment on this machine must; do not run this file
under that lock yourself. Clean-up removes every Docker object labelled
``hubfleet.hub=<name>``, /etc/hubfleet/<name> and the tmpfs.

Measured times are printed (pytest -rA shows them) for the README's "What survives what" table.
"""

import fcntl
import hashlib
import subprocess
import time
import uuid

import pytest

from test_playbook_faults import OLD_LAYOUT, HealthWatch, Site, remove_hub
from testbed.hub import free_port

HOST_LOCK = "/tmp/hubfleet-host.lock"
OLD_VERSION = "5.5.4"
# Room for the small backups of the drills, not for the 3 MB the full-disk drill adds.
BACKUP_FS_SIZE = "2m"


class LockedSite(Site):
    """Site whose playbook runs each hold the host lock and pin the JupyterHub version and
    the users' volumes of the old layout (the drills read a user's files from their work volume)."""

    version = OLD_VERSION
    layout = OLD_LAYOUT

    def argv(self, playbook, *extra):
        return super().argv(playbook, dict(self.layout, images_jupyterhub_version=self.version), *extra)

    def run(self, *extra, **kwargs):
        # Taken here, not by flock(1) in the command: waiting for another deployment on this
        # machine does not count against the run's timeout.
        with open(HOST_LOCK, "a") as lock:
            waited = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            waited = time.monotonic() - waited
            if waited > 1:
                print("waited %.0f s for %s" % (waited, HOST_LOCK))
            return super().run(*extra, **kwargs)

    def create_user(self, user):
        if not self.user_exists(user):
            self.api("POST", "/users/" + user)

    def image(self):
        return self.inspect()["Config"]["Image"]

    def write(self, user, path, text):
        """Write a file in the user's running server, as the server's own user."""
        container = self.user_container(user)
        assert container, "%s's server is not running" % user
        subprocess.run(["docker", "exec", "-i", container["Id"], "sh", "-c", 'cat > "/home/jovyan/work/$0"', path],
                       input=text, text=True, check=True)

    def read(self, user, path):
        """A file of the user's volume, read from the volume itself (the server may be stopped)."""
        done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--label", "hubfleet.hub=" + self.name,
                               "--volume", self.user_volume(user) + ":/v:ro", "--entrypoint", "cat", self.image(),
                               "/v/" + path], capture_output=True, text=True, check=False)
        return done.stdout if done.returncode == 0 else None

    def backups(self):
        """sha256 of every file under the backup directory."""
        return {str(path.relative_to(self.backup_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(self.backup_dir.rglob("*")) if path.is_file()}

    def wait_healthy(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not self.healthy():
            assert time.monotonic() < deadline, "the hub did not answer /hub/health within %s s" % timeout
            time.sleep(0.5)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "drill78-%s" % uuid.uuid4().hex[:8]
    hub = LockedSite(name, free_port(), tmp_path_factory.mktemp(name))
    hub.backup_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % BACKUP_FS_SIZE, "hubfleet-" + name,
                    str(hub.backup_dir)], check=True)
    try:
        deployed = hub.deploy()
        print("deployed JupyterHub %s with site.yml in %.0f s" % (OLD_VERSION, deployed.seconds))
        yield hub
    finally:
        remove_hub(name, hub.config_dir)
        # The Docker API filter's socket volume carries no hub label.
        subprocess.run(["docker", "volume", "rm", name + "-docker-api"], capture_output=True, check=False)
        subprocess.run(["umount", str(hub.backup_dir)], check=False)


def unchanged(before, after):
    return after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"]


# -- Drill 7: restore is selective and safe --------------------------------------------------

def test_one_users_volume_is_restored_while_the_hub_keeps_its_newer_database(site):
    for user in ("alice", "bob"):
        site.create_user(user)
        site.start_server(user)
        site.write(user, "notes.txt", "%s at the backup" % user)
    with HealthWatch(site) as watch:
        backup = site.run(playbook="backup.yml")
    assert backup.rc == 0, backup.output
    files = site.backups()
    assert {"hub-data.tar.gz", "users/manifest.json", "users/%s.tar.gz" % site.user_volume("alice")} <= set(files)
    assert not (site.backup_dir / ".incoming").exists()
    backup_outage = watch.longest_outage()

    # After the backup: both change their files, a new user joins (only the hub's database
    # knows her), then alice's volume is lost.
    for user in ("alice", "bob"):
        site.write(user, "notes.txt", "%s after the backup" % user)
    site.create_user("carol")
    site.stop_server("alice")
    subprocess.run(["docker", "volume", "rm", site.user_volume("alice")], check=True, capture_output=True)
    hub, bob = site.inspect(), site.user_container("bob")

    with HealthWatch(site) as watch:
        restore = site.run({"jupyterhub_restore_users": ["alice"]}, playbook="restore.yml")
    assert restore.rc == 0, restore.output
    assert watch.longest_outage() == 0.0 and watch.healthy_at_end(), "the hub went down during the restore"
    assert unchanged(hub, site.inspect()), "the hub container was restarted"
    assert site.user_exists("carol"), "the hub's database was rolled back"
    assert site.read("alice", "notes.txt") == "alice at the backup"
    assert unchanged(bob, site.user_container("bob")), "bob's server was touched"
    assert site.read("bob", "notes.txt") == "bob after the backup"
    started = time.monotonic()
    site.start_server("alice")
    assert site.contents("notes.txt", user="alice") == "alice at the backup"
    print("drill 7 backup: %.0f s, hub unanswered %.1f s; one user's restore: %.0f s, hub never down, its "
          "database kept; alice's server up again %.1f s later with her files" % (
              backup.seconds, backup_outage, restore.seconds, time.monotonic() - started))


def test_a_refused_restore_leaves_the_hub_running_as_it_was(site):
    site.ensure_deployed()
    hub, bob = site.inspect(), site.user_container("bob")
    assert bob, "bob's server is not running"
    refusals = [
        ((), "restore.yml restores only what it is told to"),
        (({"jupyterhub_restore_users": ["bob", "nobody"]},), "names nobody, who has no volume in the backup"),
        (({"jupyterhub_restore_users": ["bob"]},), "Refusing to restore into volumes that running containers use: "
         + site.user_volume("bob")),
    ]
    with HealthWatch(site) as watch:
        for extra, message in refusals:
            refused = site.run(*extra, playbook="restore.yml")
            assert refused.rc != 0 and message in refused.output, refused.output
            assert "Nothing was changed." in refused.output
        site.stop_server("bob")
        # bob's volume holds newer files than the backup: refused without jupyterhub_restore_force.
        refused = site.run({"jupyterhub_restore_users": ["bob"]}, playbook="restore.yml")
        assert refused.rc != 0, refused.output
        assert "is not empty and differs from" in refused.output, refused.output
    assert watch.longest_outage() == 0.0 and watch.healthy_at_end()
    assert unchanged(hub, site.inspect())
    assert site.read("bob", "notes.txt") == "bob after the backup"
    assert site.read("alice", "notes.txt") == "alice at the backup"
    print("drill 7 refused restores (nothing named, unknown user, running server, differing volume): "
          "each refused before any change, hub never down; last refusal after %.0f s" % refused.seconds)


def test_a_whole_hub_restore_is_explicit_and_puts_the_database_back(site):
    site.ensure_deployed()
    site.stop_server("alice")
    with HealthWatch(site) as watch:
        # As an operator types it: booleans from the command line are strings.
        restored = site.run("jupyterhub_restore_hub=true", "jupyterhub_restore_force=true", playbook="restore.yml")
    assert restored.rc == 0, restored.output
    site.wait_healthy()
    assert not site.user_exists("carol"), "carol joined after the backup, the restored database knows her not"
    assert site.user_exists("alice") and site.user_exists("bob")
    assert site.read("bob", "notes.txt") == "bob at the backup"
    assert site.read("alice", "notes.txt") == "alice at the backup"
    site.start_server("bob")
    print("drill 7 whole-hub restore: %.0f s, hub unanswered %.1f s; database and every volume as at the backup"
          % (restored.seconds, watch.longest_outage()))


def test_a_backup_into_a_full_disk_fails_and_keeps_the_previous_backup(site):
    site.ensure_deployed()
    previous = site.backups()
    big = "big-%s.bin" % uuid.uuid4().hex[:6]
    # 3 MB that gzip cannot shrink, in a file system of 2 MB that holds the previous backup.
    subprocess.run(["docker", "exec", site.user_container("bob")["Id"], "sh", "-c",
                    "head -c 3000000 /dev/urandom > /home/jovyan/work/" + big], check=True)
    try:
        with HealthWatch(site) as watch:
            failed = site.run(playbook="backup.yml")
            assert failed.rc != 0, failed.output
            site.wait_healthy()
    finally:
        subprocess.run(["docker", "exec", site.user_container("bob")["Id"], "rm", "-f", "/home/jovyan/work/" + big],
                       check=True)
    assert "No space left on device" in failed.output, failed.output
    assert "the previous backup in %s was not changed" % site.backup_dir in failed.output
    assert site.backups() == previous, "the previous backup changed"
    assert not (site.backup_dir / ".incoming").exists(), "the unfinished backup was left behind"
    assert site.api("GET", "/users/bob")["servers"][""]["ready"]
    print("drill 7 backup into a full disk: failed after %.0f s naming the error, previous backup intact, "
          "hub unanswered %.1f s (stopped for the backup, started again)" % (failed.seconds, watch.longest_outage()))
