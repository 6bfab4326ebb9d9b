"""The swarm hub reaches the manager's engine only through the Docker API filter: from inside
the hub's container, what a SwarmSpawner hub may not ask (services, tasks, nodes, networks,
the swarm itself) is refused with 403 naming the rule, and what it needs works.

The same probe (testbed/swarm_filter_probe.py) runs against the role's hub service in
molecule/swarm; this is the fast check of it on the test bed's swarm (SwarmHub).
"""

import json
from pathlib import Path

import pytest

from testbed import swarm_filter_probe

pytestmark = pytest.mark.swarm

PROBE = Path(swarm_filter_probe.__file__).read_text()


@pytest.fixture(scope="module")
def probe(swarm_hub, swarm):
    client = swarm_hub.docker
    made = []
    availability = {n.id: n.attrs["Spec"]["Availability"] for n in client.nodes.list()}

    def service(name, labels):
        spec = {"Name": name, "Labels": dict(swarm.labels, **labels),
                "TaskTemplate": {"ContainerSpec": {"Image": swarm_hub.singleuser, "Command": ["sleep", "60"]}},
                "Mode": {"Replicated": {"Replicas": 0}}}
        created = client.api._result(client.api._post_json(client.api._url("/services/create"), data=spec), True)
        made.append(created["ID"])
        return created["ID"]

    try:
        services = {
            "own": service("%s-probe-own" % swarm_hub.hub_label, {"hubfleet.hub": swarm_hub.hub_label}),
            "other": service("%s-probe-other" % swarm_hub.hub_label, {"hubfleet.hub": swarm_hub.hub_label + "-other"}),
            "unlabelled": service("%s-probe-unlabelled" % swarm_hub.hub_label, {}),
        }
        arguments = {"hub": swarm_hub.hub_label, "image": swarm_hub.singleuser, "network": swarm.overlay,
                     "own_service": services["own"], "other_service": services["other"],
                     "unlabelled_service": services["unlabelled"]}
        done = swarm.exec(swarm.manager, "docker", "exec", "-i", swarm_hub.container_name, "python", "-",
                          json.dumps(arguments), stdin=PROBE.encode(), check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        yield json.loads(done.stdout), services, client, availability
    finally:
        for ident in made:
            try:
                client.api.remove_service(ident)
            except Exception:  # noqa: BLE001 - removed by label at the end anyway
                pass


@pytest.mark.parametrize("case", sorted(swarm_filter_probe.EXPECTED_RULES))
def test_a_forbidden_swarm_request_from_the_hub_is_refused_naming_the_rule(probe, case):
    result = probe[0]
    status, message = result["refusals"][case]
    assert status == 403, (case, status, message)
    rule = swarm_filter_probe.EXPECTED_RULES[case]
    assert "hubfleet docker filter refused this request (rule %s)" % rule in message, message


def test_what_the_swarm_spawner_needs_works_and_lists_show_only_this_hubs(probe, swarm):
    result, services, client, availability = probe
    assert swarm_filter_probe.check(result, services) == []
    assert result["allowed"]["nodes"] == len(swarm.nodes)
    assert result["allowed"]["own_service_tasks"] == 0  # zero replicas
    assert result["allowed"]["network"] == swarm.overlay
    # Refused requests changed nothing: the other services are still there, the swarm too.
    for ident in (services["other"], services["unlabelled"]):
        assert client.services.get(ident).id == ident
    assert client.info()["Swarm"]["LocalNodeState"] == "active"
    assert {n.id: n.attrs["Spec"]["Availability"] for n in client.nodes.list()} == availability


def test_the_swarm_hub_runs_unprivileged_without_the_docker_socket(swarm_hub):
    container = swarm_hub.docker.containers.get(swarm_hub.container_name)
    assert container.attrs["Config"]["User"] == "901:901"
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    sources = [m.get("Source", "") for m in container.attrs["Mounts"]]
    assert not any(s.endswith("docker.sock") for s in sources), sources
    assert "DOCKER_HOST=unix:///run/hubfleet-filter/docker.sock" in container.attrs["Config"]["Env"]
