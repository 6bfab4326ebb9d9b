"""SystemUserSpawner with real host accounts, a real hub and real containers."""

import os
import pwd
import secrets
import subprocess

import pytest

from testbed.hub import Hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host_users(tmp_path_factory):
    """Two host accounts with homes, removed at the end (homes go with tmp_path)."""
    base = tmp_path_factory.mktemp("homes")
    names = ["hfsu%s" % secrets.token_hex(3) for _ in range(2)]
    for name in names:
        subprocess.run(["useradd", "--create-home", "--home-dir", str(base / name), "--gid", "100", name], check=True)
    try:
        yield [pwd.getpwnam(name) for name in names]
    finally:
        for name in names:
            subprocess.run(["userdel", name], check=False)


@pytest.fixture(scope="module")
def system_hub(image, tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("systemuser-hub"), image=image,
              extra_config='c.JupyterHub.spawner_class = "hubfleet-systemuser"\n')
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        hub.cleanup()


def test_each_container_runs_as_its_account_and_sees_only_its_home(system_hub, host_users):
    containers = {}
    for account in host_users:
        response = system_hub.spawn(account.pw_name)
        assert response.status_code in (201, 202), response.text
        system_hub.wait_ready(account.pw_name)
        [containers[account.pw_name]] = system_hub.containers(**{"hubfleet.user": account.pw_name})
    first, second = host_users
    for me, other in ((first, second), (second, first)):
        container = containers[me.pw_name]
        assert container.exec_run(["id", "-u"]).output.strip() == str(me.pw_uid).encode()
        assert container.exec_run(["id", "-g"]).output.strip() == str(me.pw_gid).encode()
        home = "/home/%s" % me.pw_name
        assert container.exec_run(["test", "-d", home]).exit_code == 0
        assert container.exec_run(["test", "-e", "/home/%s" % other.pw_name]).exit_code != 0
        assert container.exec_run(["test", "-e", other.pw_dir]).exit_code != 0
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["NB_USER"] == me.pw_name and env["NB_UID"] == str(me.pw_uid) and env["HOME"] == home


def test_a_file_written_in_the_notebook_belongs_to_the_user_on_the_host(system_hub, host_users):
    account = host_users[0]
    response = system_hub.user_server(
        "PUT", account.pw_name, "api/contents/from-notebook.txt",
        json={"type": "file", "format": "text", "content": "mine"},
    )
    assert response.status_code in (200, 201), response.text
    path = os.path.join(account.pw_dir, "from-notebook.txt")
    with open(path) as f:
        assert f.read() == "mine"
    assert os.stat(path).st_uid == account.pw_uid


def test_a_user_without_a_host_account_fails_clearly(system_hub):
    response = system_hub.spawn("hfsu-nobody-here")
    assert response.status_code >= 400
    events = system_hub.progress("hfsu-nobody-here")
    assert "no account 'hfsu-nobody-here' on this host" in events[-1]["message"]


def test_a_name_that_is_not_a_host_account_name_is_refused(system_hub):
    response = system_hub.spawn("Not.A.Host.Name")
    assert response.status_code == 400
    assert "not a valid account name" in response.json()["message"]
