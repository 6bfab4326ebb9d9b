"""Who owns a user's files, and which mounts the ownership step prepares."""

import pytest

from hubfleet_spawner.naming import template_names
from hubfleet_spawner.ownership import (
    ALWAYS,
    IF_EMPTY,
    NEW_ON_NODE,
    OwnerError,
    mounts_to_prepare,
    mounts_to_prepare_on_node,
    owner_spec,
    prep_binds_and_mounts,
    prep_host_config,
    prep_service_spec,
    prepare_command,
)
from hubfleet_spawner.volumes import plan_volumes

@pytest.mark.parametrize(
    "user, expected",
    [
        ("jovyan", "jovyan"),
        ("1001", "1001"),
        ("1000:100", "1000:100"),
        ("app:staff", "app:staff"),
        (None, None),
        ("", None),
        ("root", None),
        ("0:100", None),
    ],
)
def test_owner_spec_is_the_servers_user_and_none_for_root(user, expected):
    assert owner_spec(user) == expected


def test_root_start_owner_comes_from_nb_uid_spawner_env_first():
    assert owner_spec("0", root_start=True) == "1000:100"
    assert owner_spec("0", root_start=True, image_environment=["NB_UID=1010", "NB_GID=1010"]) == "1010:1010"
    assert owner_spec("0", root_start=True, environment=["NB_UID=2000"], image_environment=["NB_GID=7"]) == "2000:7"
    assert owner_spec("0", root_start=True, environment=["NB_UID=0"]) is None
    with pytest.raises(OwnerError, match="NB_UID"):
        owner_spec("0", root_start=True, environment=["NB_UID=jovyan"])


def plan(volumes=None, read_only=None, mounts=None):
    return plan_volumes(volumes or {}, read_only or {}, mounts or [], template_names("alice", "", prefix="jupyter"))


def targets(items):
    return [(m.target, m.rule) for m in items]


def test_only_new_volumes_are_prepared_unconditionally():
    p = plan({"jupyter-user-{username}": "/home/jovyan", "jupyter-old-{username}": "/old"})
    found = mounts_to_prepare(p, ["jupyter-user-alice"], ["jupyter-old-alice"])
    assert targets(found) == [("/home/jovyan", ALWAYS)]


def test_foreign_volumes_and_host_binds_only_when_empty():
    p = plan({"someone-elses": "/data", "/srv/hubfleet/{username}": "/scratch"})
    assert targets(mounts_to_prepare(p, [], [])) == [("/data", IF_EMPTY), ("/scratch", IF_EMPTY)]


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
    assert mounts_to_prepare(p, p.named_volumes, []) == []


def test_mounts_with_driver_options_keep_them_in_the_prep_container():
    driver = {"Name": "local", "Options": {"type": "nfs", "o": "addr=nfs.example,rw", "device": ":/home/{username}"}}
    p = plan(mounts=[{"type": "volume", "source": "jupyter-nfs-{username}", "target": "/home/jovyan",
                      "volume_options": {"DriverConfig": driver}}])
    assert p.volume_drivers["jupyter-nfs-alice"]["Options"]["device"] == ":/home/alice"
    found = mounts_to_prepare(p, ["jupyter-nfs-alice"], [])
    binds, mounts = prep_binds_and_mounts(found)
    assert binds == {} and mounts[0]["VolumeOptions"]["DriverConfig"]["Name"] == "local"
    entrypoint, command = prepare_command(found)
    assert entrypoint[:2] == ["/bin/sh", "-c"] and command == ["always:/home/jovyan"]


def test_the_prep_container_has_three_capabilities_and_no_network():
    config = prep_host_config({"v": {"bind": "/x", "mode": "rw"}}, [])
    assert config["cap_drop"] == ["ALL"]
    assert sorted(config["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert config["network_mode"] == "none" and config["security_opt"] == ["no-new-privileges"]


def test_on_a_swarm_node_volumes_are_prepared_when_new_and_binds_when_empty():
    p = plan({"jupyter-user-{username}": "/home/jovyan/work", "/srv/hubfleet/{username}": "/scratch"},
             {"jupyter-ro-{username}": "/ro"})
    assert targets(mounts_to_prepare_on_node(p)) == [("/home/jovyan/work", NEW_ON_NODE), ("/scratch", IF_EMPTY)]


def test_the_prep_service_is_the_prep_containers_shape_as_a_one_shot_task():
    found = mounts_to_prepare_on_node(plan({"jupyter-user-{username}": "/home/jovyan/work"}))
    mount = {"Type": "volume", "Source": "jupyter-user-alice", "Target": "/home/jovyan/work", "ReadOnly": True,
             "VolumeOptions": {"Labels": {"hubfleet.user": "alice"}}}
    spec = prep_service_spec("img:1", found, "1000:100", [mount], {"hubfleet.kind": "volume-prep"},
                             {"Constraints": ["node.role==worker"]})
    task = spec["task_template"]
    container = task["ContainerSpec"]
    assert (container["Command"], container["Args"]) == prepare_command(found)
    assert container["Args"] == ["new:/home/jovyan/work"]
    assert container["User"] == "0:0" and container["Env"] == ["HUBFLEET_OWNER=1000:100"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert sorted(container["CapabilityAdd"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert container["Mounts"] == [dict(mount, ReadOnly=False)]
    assert task["RestartPolicy"] == {"Condition": "none"} and "Networks" not in task
    assert task["Placement"] == {"Constraints": ["node.role==worker"]}
    assert task["Resources"]["Limits"]["Pids"] == 64
    assert spec["labels"] == {"hubfleet.kind": "volume-prep"}
