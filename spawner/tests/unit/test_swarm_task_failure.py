"""What a spawn says when its swarm task fails: a missing image names node, image and registry."""

import pytest

from hubfleet_spawner.swarmspawner import image_registry, task_failure_message


@pytest.mark.parametrize(
    "reference, registry",
    [
        ("10.0.0.5:5000/hubfleet/singleuser:abc", "10.0.0.5:5000"),
        ("registry.example.org/team/image", "registry.example.org"),
        ("localhost/image:1", "localhost"),
        ("localhost:5000/image", "localhost:5000"),
        ("jupyter/minimal-notebook:latest", "docker.io"),
        ("hubfleet/singleuser", "docker.io"),
        ("ubuntu", "docker.io"),
        ("ubuntu:22.04", "docker.io"),
        ("10.0.0.5:5000/hubfleet/singleuser@sha256:" + "0" * 64, "10.0.0.5:5000"),
    ],
)
def test_image_registry_reads_the_reference_as_docker_does(reference, registry):
    assert image_registry(reference) == registry


def test_a_task_rejected_for_a_missing_image_names_node_image_and_registry():
    image = "10.0.0.5:5000/hubfleet/singleuser:gone"
    message = task_failure_message("rejected", "No such image: " + image, image, "worker2")
    assert message.startswith("The swarm task for this server rejected: No such image: " + image)
    assert "Node worker2 does not have the image %s and could not pull it from the registry 10.0.0.5:5000" % image in message


def test_other_task_failures_are_said_as_the_swarm_says_them():
    assert task_failure_message("failed", "task: non-zero exit (1)", "img", "worker1") == (
        "The swarm task for this server failed: task: non-zero exit (1)")
    assert task_failure_message("rejected", None, "img", "worker1") == (
        "The swarm task for this server rejected: no reason given")


def test_the_preparation_tasks_failure_names_what_it_was_for():
    image = "10.0.0.5:5000/hubfleet/singleuser:gone"
    message = task_failure_message("rejected", "No such image: " + image, image, "worker1", "preparing your files")
    assert message.startswith("The swarm task for preparing your files rejected: No such image: " + image)
    assert "could not pull it from the registry 10.0.0.5:5000" in message
