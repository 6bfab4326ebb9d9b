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
