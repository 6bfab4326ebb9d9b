"""The whole home (issue 11): a hub of the old layout, which kept only /home/jovyan/work,
upgrades by re-running playbooks/site.yml with the role's current defaults and loses nothing.

One hub, deployed by the real site.yml on this machine's engine with the old layout's
variables (``OLD_LAYOUT``, the role's defaults before), then re-deployed with the defaults.
The module holds the host lock (/tmp/hubfleet-host.lock) for its whole run, unless its caller
holds it already. Clean-up removes every Docker object labelled ``hubfleet.hub=<name>``.
"""

import subprocess
import uuid

import pytest

from test_playbook_faults import OLD_LAYOUT, Site, deployed
from testbed.host_lock import host_lock
from testbed.hub import free_port


class LayoutSite(Site):
    """Site deployed with ``layout`` on top of its settings."""

    layout = OLD_LAYOUT

    def argv(self, playbook, *extra):
        return super().argv(playbook, self.layout, *extra)

    def create_user(self, user):
        if not self.user_exists(user):
            self.api("POST", "/users/" + user)

    def in_server(self, user, *argv):
        """(exit status, output) of ``argv`` run in the user's server, as its user."""
        container = self.user_container(user)
        assert container, "%s's server is not running" % user
        done = subprocess.run(["docker", "exec", container["Id"], *argv], capture_output=True, text=True, check=False)
        return done.returncode, done.stdout

    def volume_mounts(self, user):
        return {m["Destination"]: m["Name"] for m in self.user_container(user)["Mounts"] if m["Type"] == "volume"}

    def user_volumes(self):
        """{volume name: user} of every user volume of the hub."""
        done = subprocess.run(["docker", "volume", "ls", "--format", '{{.Name}} {{.Label "hubfleet.user"}}',
                               "--filter", "label=hubfleet.hub=" + self.name,
                               "--filter", "label=hubfleet.kind=user-volume"],
                              capture_output=True, text=True, check=True)
        return dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.strip())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name = "home11-%s" % uuid.uuid4().hex[:8]
    with host_lock(), deployed(LayoutSite(name, free_port(), tmp_path_factory.mktemp(name)), "the old layout") as hub:
        yield hub


def test_the_old_work_only_layout_upgrades_to_the_whole_home_and_loses_nothing(site):
    """Every old volume stays and is mounted where it was ({home}/work) with its files; the
    home around it is a new volume with the image's skeleton files, kept across a restart;
    a new user gets only a home."""
    site.create_user("alice")
    site.start_server("alice")
    assert site.volume_mounts("alice") == {"/home/jovyan/work": "%s-user-alice" % site.name}
    assert site.in_server("alice", "sh", "-c", "echo 'written before the upgrade' > /home/jovyan/work/thesis.txt")[0] == 0
    before = site.user_volumes()
    site.stop_server("alice")

    site.layout = {}
    upgraded = site.deploy()
    site.create_user("dave")
    for user in ("alice", "dave"):
        site.start_server(user)
    assert site.in_server("alice", "cat", "/home/jovyan/work/thesis.txt") == (0, "written before the upgrade\n")
    rc, listing = site.in_server("alice", "ls", "-a", "/home/jovyan")
    assert rc == 0 and ".bashrc" in listing.split(), listing  # the image's skeleton, copied into the new home
    assert site.volume_mounts("alice") == {"/home/jovyan": "%s-home-alice" % site.name,
                                           "/home/jovyan/work": "%s-user-alice" % site.name}
    assert site.volume_mounts("dave") == {"/home/jovyan": "%s-home-dave" % site.name}
    after = site.user_volumes()
    assert set(before) <= set(after), "volumes were removed: %s" % sorted(set(before) - set(after))
    assert set(after) - set(before) == {"%s-home-alice" % site.name, "%s-home-dave" % site.name}
    assert site.in_server("alice", "sh", "-c", "echo kept > /home/jovyan/.hubfleet-dotfile") == (0, "")
    site.stop_server("alice")
    site.start_server("alice")
    assert site.in_server("alice", "cat", "/home/jovyan/.hubfleet-dotfile") == (0, "kept\n")
    assert site.in_server("alice", "cat", "/home/jovyan/work/thesis.txt") == (0, "written before the upgrade\n")
    print("whole-home upgrade: site.yml re-run %.0f s; %d old volume(s) kept and mounted where they were, "
          "new homes for alice and dave" % (upgraded.seconds, len(before)))
