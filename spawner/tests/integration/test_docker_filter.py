"""The test hub reaches the engine through the Docker API filter, as a deployed hub does."""

import pytest

from test_docker_spawner import failed_spawn, spawn_ready, user_containers

pytestmark = pytest.mark.integration


def test_a_spawn_the_filter_refuses_fails_fast_naming_the_rule(hub):
    elapsed, message = failed_spawn(hub, "fifi", extra_host_config={"cap_add": ["NET_ADMIN"]})
    assert elapsed < 10
    assert "rule cap-add" in message and "NET_ADMIN" in message
    assert user_containers(hub, "fifi") == []


def test_the_filter_lists_only_this_hubs_containers(hub, docker_client, image):
    other = docker_client.containers.create(image, labels={"hubfleet.hub": hub.hub_label + "-other"})
    try:
        spawn_ready(hub, "filo")
        import docker

        through_filter = docker.APIClient(base_url="unix://%s" % hub.filter_socket, version="auto")
        listed = {c["Id"] for c in through_filter.containers(all=True)}
        assert other.id not in listed
        assert {c.id for c in user_containers(hub, "filo")} <= listed
        with pytest.raises(docker.errors.APIError, match="rule not-this-hub"):
            through_filter.inspect_container(other.id)
        hub.stop_server("filo")
    finally:
        other.remove(force=True)


POST_START = "touch /tmp/post-start-ran"


@pytest.fixture(scope="module")
def exec_hub(image, tmp_path_factory):
    """A hub whose filter lets it exec its post_start_cmd, as jupyterhub_post_start_cmd configures it."""
    from testbed.hub import Hub
    from hubfleet_spawner.docker_filter.rules import exec_argv

    with Hub(tmp_path_factory.mktemp("hub-exec"), image=image, filter_policy={"exec_commands": [exec_argv(POST_START)]},
             extra_config="c.DockerSpawner.post_start_cmd = %r" % POST_START) as hub:
        yield hub


def test_the_post_start_cmd_runs_through_the_filter_and_no_other_exec_does(exec_hub):
    import docker

    container = spawn_ready(exec_hub, "poppy")
    assert container.exec_run(["test", "-e", "/tmp/post-start-ran"]).exit_code == 0
    through_filter = docker.APIClient(base_url="unix://%s" % exec_hub.filter_socket, version="auto")
    for command in (["id"], ["/bin/sh", "-c", POST_START + "; id"], ["/bin/sh", "-c", "rm -rf /home/jovyan"]):
        with pytest.raises(docker.errors.APIError, match="rule exec") as info:
            through_filter.exec_create(container.id, command)
        assert info.value.status_code == 403
    with pytest.raises(docker.errors.APIError, match="rule privileged"):
        through_filter.exec_create(container.id, ["/bin/sh", "-c", POST_START], privileged=True)
    exec_hub.stop_server("poppy")
