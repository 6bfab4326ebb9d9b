"""Run INSIDE a swarm hub's container: what the hub may not ask the manager's engine is refused.

    docker exec -i HUB python - '{"hub": ..., "image": ..., "network": ..., "other_service": ...,
                                  "unlabelled_service": ..., "own_service": ...}' < swarm_filter_probe.py

The requests go through the DOCKER_HOST the hub itself uses (the Docker API filter). Prints
JSON: ``refusals`` {case: [status, message]} for the requests the filter must refuse, and
``allowed`` {what: value} for what the SwarmSpawner needs (node list, this hub's services,
its network). Used by spawner/tests/swarm/test_swarm_filter.py (testbed.swarm.SwarmHub) and
molecule/swarm/verify_fleet.py (the role's hub service), so both check the same requests.
The expected rule of each case is ``EXPECTED_RULES``.
"""

import json
import sys

EXPECTED_RULES = {
    "service without this hub's labels": "labels",
    "service adding capabilities": "cap-add",
    "service running as root": "user",
    "service mounting the Docker socket": "docker-socket",
    "service binding /": "binds",
    "service publishing a port": "ports",
    "global service": "service-mode",
    "service on another network": "networks",
    "service without limits": "limits",
    "service mounting a swarm secret": "swarm-objects",
    "inspect of another hub's service": "not-this-hub",
    "remove of another hub's service": "not-this-hub",
    "remove of an unlabelled service": "not-this-hub",
    "update of this hub's service": "not-allowed",
    "tasks of every service": "list-own",
    "tasks of another hub's service": "not-this-hub",
    "swarm inspect (join tokens)": "not-allowed",
    "swarm leave": "not-allowed",
    "node update (drain a node)": "not-allowed",
    "network create": "not-allowed",
    "inspect of the ingress network": "not-this-hub",
    "secret list": "not-allowed",
    "privileged container on the manager": "privileged",
}


def main(arguments):
    import docker

    a = json.loads(arguments)
    api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    mine = {"hubfleet.hub": a["hub"], "hubfleet.kind": "user-server", "hubfleet.user": "eve", "hubfleet.server": ""}

    def post(path, body, **params):
        return api._result(api._post_json(api._url(path), data=body, params=params), True)

    def service(name="probe-eve", labels=mine, container=None, task=None, **spec):
        container_spec = {"Image": a["image"], "User": "1000:100", "Labels": labels, "Command": ["sleep", "60"]}
        container_spec.update(container or {})
        task_template = {"ContainerSpec": container_spec,
                         "Resources": {"Limits": {"MemoryBytes": 1 << 28, "NanoCPUs": 10**9, "Pids": 64}},
                         "Networks": [{"Target": a["network"]}]}
        task_template.update(task or {})
        body = {"Name": "%s-%s" % (a["hub"], name), "Labels": labels, "TaskTemplate": task_template,
                "Mode": {"Replicated": {"Replicas": 0}}, "EndpointSpec": {"Mode": "dnsrr"}}
        body.update(spec)
        return post("/services/create", body)

    node_id = api.nodes()[0]["ID"]
    cases = {
        "service without this hub's labels": lambda: service(labels={"hubfleet.hub": a["hub"] + "-other"}),
        "service adding capabilities": lambda: service(container={"CapabilityAdd": ["CAP_SYS_ADMIN"]}),
        "service running as root": lambda: service(container={"User": "0"}),
        "service mounting the Docker socket": lambda: service(container={"Mounts": [
            {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}]}),
        "service binding /": lambda: service(container={"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}),
        "service publishing a port": lambda: service(EndpointSpec={"Mode": "vip", "Ports": [
            {"Protocol": "tcp", "TargetPort": 22, "PublishedPort": 2222, "PublishMode": "host"}]}),
        "global service": lambda: service(Mode={"Global": {}}),
        "service on another network": lambda: service(task={"Networks": [{"Target": "ingress"}]}),
        "service without limits": lambda: service(task={"Resources": {}}),
        "service mounting a swarm secret": lambda: service(container={"Secrets": [
            {"SecretName": "anything", "SecretID": "anything", "File": {"Name": "s", "UID": "0", "GID": "0", "Mode": 292}}]}),
        "inspect of another hub's service": lambda: api.inspect_service(a["other_service"]),
        "remove of another hub's service": lambda: api.remove_service(a["other_service"]),
        "remove of an unlabelled service": lambda: api.remove_service(a["unlabelled_service"]),
        "update of this hub's service": lambda: post("/services/%s/update" % a["own_service"], {}, version=1),
        "tasks of every service": lambda: api.tasks(),
        "tasks of another hub's service": lambda: api.tasks(filters={"service": a["other_service"]}),
        "swarm inspect (join tokens)": lambda: api.inspect_swarm(),
        "swarm leave": lambda: api.leave_swarm(force=True),
        "node update (drain a node)": lambda: post("/nodes/%s/update" % node_id, {"Availability": "drain"}, version=1),
        "network create": lambda: api.create_network("probe-net", driver="overlay", attachable=True),
        "inspect of the ingress network": lambda: api.inspect_network("ingress"),
        "secret list": lambda: api.secrets(),
        "privileged container on the manager": lambda: api.create_container(
            a["image"], user="1000:100", labels=mine, host_config=api.create_host_config(
                privileged=True, security_opt=["no-new-privileges"], mem_limit="256m", nano_cpus=10**9,
                pids_limit=64, network_mode=a["network"])),
    }
    refusals = {}
    for name, call in cases.items():
        try:
            call()
            refusals[name] = [200, "allowed"]
        except docker.errors.APIError as e:
            refusals[name] = [e.status_code, e.explanation]
    allowed = {
        "nodes": len(api.nodes()),
        "services": sorted(s["ID"] for s in api.services()),
        "own_service_tasks": len(api.tasks(filters={"service": a["own_service"]})),
        "own_service_name": api.inspect_service(a["own_service"])["Spec"]["Name"],
        "network": api.inspect_network(a["network"])["Name"],
        "info_swarm": api.info()["Swarm"]["LocalNodeState"],
    }
    print(json.dumps({"refusals": refusals, "allowed": allowed}))


def check(result, services):
    """Failures (a list of messages) of a probe's ``result``; ``services``: the ids of the
    own, other hub's and unlabelled services."""
    failures = []
    for case, rule in EXPECTED_RULES.items():
        status, message = result["refusals"].get(case, [None, "not run"])
        if status != 403 or "hubfleet docker filter refused this request (rule %s)" % rule not in message:
            failures.append("%s: expected 403 rule %s, got %s %s" % (case, rule, status, message))
    listed = set(result["allowed"]["services"])
    if services["own"] not in listed or services["other"] in listed or services["unlabelled"] in listed:
        failures.append("the service list is not exactly this hub's: %s" % sorted(listed))
    if result["allowed"]["nodes"] < 1 or result["allowed"]["info_swarm"] != "active":
        failures.append("the hub cannot read the swarm's nodes and info: %s" % result["allowed"])
    return failures


if __name__ == "__main__":
    main(sys.argv[1])
