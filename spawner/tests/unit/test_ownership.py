"""Who owns a user's files, and which mounts the ownership step prepares."""

import pytest

from hubfleet_spawner.naming import template_names
from hubfleet_spawner.ownership import (
    ALWAYS,
    IF_EMPTY,
    Owner,
    OwnerError,
    mounts_to_prepare,
    needs_image_files,
    prep_binds_and_mounts,
    prep_host_config,
    prepare_command,
    resolve_owner,
)
from hubfleet_spawner.volumes import plan_volumes

PASSWD = "root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:1000::/home/jovyan:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nusers:x:100:\njovyan:x:1000:\nstaff:x:50:\n"


@pytest.mark.parametrize(
    "user, expected",
    [
        ("jovyan", (1000, 1000)),
        ("app", (1001, 1001)),
        ("1001", (1001, 1001)),
        ("1000:100", (1000, 100)),
        ("app:staff", (1001, 50)),
        ("jovyan:100", (1000, 100)),
        ("4242", (4242, 0)),  # as Docker: no passwd entry, no group -> gid 0
        (None, (0, 0)),
        ("root", (0, 0)),
    ],
)
def test_resolve_owner_from_the_user_and_the_images_files(user, expected):
    assert resolve_owner(user, PASSWD, GROUP) == Owner(*expected)


@pytest.mark.parametrize("user", ["nobody-here", "jovyan:nogroup"])
def test_resolve_owner_names_what_is_missing(user):
    with pytest.raises(OwnerError, match=user.split(":")[-1]):
        resolve_owner(user, PASSWD, GROUP)


def test_root_start_owner_comes_from_nb_uid_spawner_env_first():
    assert resolve_owner("0", root_start=True) == Owner(1000, 100)
    assert resolve_owner("0", root_start=True, image_environment=["NB_UID=1010", "NB_GID=1010"]) == Owner(1010, 1010)
    assert resolve_owner(
        "0", root_start=True, environment=["NB_UID=2000"], image_environment=["NB_UID=1010", "NB_GID=7"]
    ) == Owner(2000, 7)
    with pytest.raises(OwnerError, match="NB_UID"):
        resolve_owner("0", root_start=True, environment=["NB_UID=jovyan"])


@pytest.mark.parametrize("user, needed", [("1000:100", False), ("1000", True), ("jovyan", True), (None, True)])
def test_image_files_are_read_only_when_needed(user, needed):
    assert needs_image_files(user) is needed


def plan(volumes=None, read_only=None, mounts=None):
    return plan_volumes(volumes or {}, read_only or {}, mounts or [], template_names("alice", "", prefix="jupyter"))


def targets(items):
    return [(m.target, m.rule) for m in items]


def test_only_new_volumes_are_prepared_unconditionally():
    p = plan({"jupyter-user-{username}": "/home/jovyan", "jupyter-old-{username}": "/old"})
    found = mounts_to_prepare(p, ["jupyter-user-alice"], ["jupyter-old-alice"], Owner(1000, 100))
    assert targets(found) == [("/home/jovyan", ALWAYS)]


def test_foreign_volumes_and_host_binds_only_when_empty():
    p = plan({"someone-elses": "/data", "/srv/hubfleet/{username}": "/scratch"})
    assert targets(mounts_to_prepare(p, [], [], Owner(1000, 100))) == [("/data", IF_EMPTY), ("/scratch", IF_EMPTY)]


def test_read_only_tmpfs_and_anonymous_mounts_are_never_touched():
    p = plan(
        {"/srv/course": {"bind": "/course", "mode": "ro"}},
        {"jupyter-ro-{username}": "/ro"},
        [
            {"type": "tmpfs", "target": "/tmp"},
            {"type": "volume", "target": "/anon"},
            {"type": "volume", "source": "jupyter-m-{username}", "target": "/m", "read_only": True},
        ],
    )
    assert mounts_to_prepare(p, p.named_volumes, [], Owner(1000, 100)) == []


def test_a_root_server_needs_nothing():
    p = plan({"jupyter-user-{username}": "/home/jovyan"})
    assert mounts_to_prepare(p, p.named_volumes, [], Owner(0, 0)) == []


def test_mounts_with_driver_options_keep_them_in_the_prep_container():
    driver = {"Name": "local", "Options": {"type": "nfs", "o": "addr=nfs.example,rw", "device": ":/home/{username}"}}
    p = plan(mounts=[{"type": "volume", "source": "jupyter-nfs-{username}", "target": "/home/jovyan",
                      "volume_options": {"DriverConfig": driver}}])
    assert p.volume_drivers["jupyter-nfs-alice"]["Options"]["device"] == ":/home/alice"
    found = mounts_to_prepare(p, ["jupyter-nfs-alice"], [], Owner(1000, 100))
    binds, mounts = prep_binds_and_mounts(found)
    assert binds == {} and mounts[0]["VolumeOptions"]["DriverConfig"]["Name"] == "local"
    entrypoint, command = prepare_command(found)
    assert entrypoint[:2] == ["/bin/sh", "-c"] and command == ["always:/home/jovyan"]


def test_the_prep_container_has_three_capabilities_and_no_network():
    config = prep_host_config({"v": {"bind": "/x", "mode": "rw"}}, [])
    assert config["cap_drop"] == ["ALL"]
    assert sorted(config["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert config["network_mode"] == "none" and config["security_opt"] == ["no-new-privileges"]
