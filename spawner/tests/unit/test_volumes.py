"""Volume templating into Docker's binds and mounts."""

import pytest

from hubfleet_spawner.naming import template_names
from hubfleet_spawner.volumes import UnsafeVolumeError, plan_volumes


def names(user="alice", server=""):
    return template_names(user, server, prefix="jupyter")


def test_named_volume_and_host_path_become_binds():
    plan = plan_volumes(
        {"jupyter-user-{username}": "/home/jovyan/work", "/srv/shared/{username}": {"bind": "/shared", "mode": "ro"}},
        {"/srv/datasets": "/data"},
        [],
        names(),
    )
    assert plan.binds == {
        "jupyter-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"},
        "/srv/shared/alice": {"bind": "/shared", "mode": "ro"},
        "/srv/datasets": {"bind": "/data", "mode": "ro"},
    }
    assert plan.named_volumes == ["jupyter-user-alice"]


def test_server_scoped_volumes_differ_per_named_server():
    template = {"jupyter-{username}--{servername}": "/home/jovyan/work"}
    first = plan_volumes(template, {}, [], names(server="one")).named_volumes
    second = plan_volumes(template, {}, [], names(server="two")).named_volumes
    assert first != second


def test_mounts_are_rendered_into_the_engine_api_shape():
    plan = plan_volumes(
        {},
        {},
        [{"type": "volume", "source": "scratch-{username}", "target": "/scratch", "read_only": False}],
        names(),
    )
    assert plan.mounts == [{"Type": "volume", "Source": "scratch-alice", "Target": "/scratch", "ReadOnly": False}]
    assert plan.named_volumes == ["scratch-alice"]


@pytest.mark.parametrize(
    "source", ["/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/var", "/"]
)
def test_the_docker_socket_is_never_mounted(source):
    with pytest.raises(UnsafeVolumeError) as info:
        plan_volumes({source: "/mnt/x"}, {}, [], names())
    assert "Docker socket" in str(info.value)


def test_the_docker_socket_is_refused_as_a_bind_mount_too():
    with pytest.raises(UnsafeVolumeError):
        plan_volumes({}, {}, [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}], names())


def test_targets_must_be_absolute():
    with pytest.raises(UnsafeVolumeError):
        plan_volumes({"v-{username}": "relative/path"}, {}, [], names())


def test_custom_volume_name_formatter_is_still_validated():
    plan = plan_volumes({"ignored": "/w"}, {}, [], names(), format_volume_name=lambda t, n: "custom-" + n["username"])
    assert plan.named_volumes == ["custom-alice"]
    with pytest.raises(ValueError):
        plan_volumes({"ignored": "/w"}, {}, [], names(), format_volume_name=lambda t, n: "bad/name")
