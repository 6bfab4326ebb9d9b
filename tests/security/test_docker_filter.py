"""A deployed hub cannot take the Docker host: from inside its container, what it may not
do is refused (HTTP 403 naming the rule), and it runs as a non-root user without capabilities.

The module deploys playbooks/site.yml on this machine (inventory/local) with a hub name and
port of its own, holding /tmp/hubfleet-host.lock while it runs (site.yml runs the docker_engine
role on this engine). The requests are made with the Docker SDK inside the hub container, through the
DOCKER_HOST the hub itself uses. Everything is removed by label at the end.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed.host_lock import host_lock as hold_host_lock  # noqa: E402
from testbed.hub_rules import remove_hub_rules  # noqa: E402
from testbed.network_probe import PROBE as PROBE_CONNECT, RESOLVE  # noqa: E402

# Run inside the hub container: each forbidden request, and what the engine (through the
# filter) answered. Arguments: JSON {image, network, other_container, unlabelled_container,
# user_server, hub}.
PROBE = r'''
import json, sys
import docker
a = json.loads(sys.argv[1])
api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())  # DOCKER_HOST, as the hub's spawner
mine = {"hubfleet.hub": a["hub"], "hubfleet.kind": "user-server", "hubfleet.user": "eve", "hubfleet.server": ""}
def create(**host):
    base = dict(security_opt=["no-new-privileges"], mem_limit="256m", nano_cpus=10**9, pids_limit=64,
                network_mode=a["network"])
    base.update(host)
    return api.create_container(a["image"], user="1000:100", labels=mine,
                                host_config=api.create_host_config(**base))
cases = {
    "privileged container": lambda: create(privileged=True),
    "bind of /": lambda: create(binds=["/:/host"]),
    "mount of the Docker socket": lambda: create(mounts=[docker.types.Mount("/d.sock", "/var/run/docker.sock", type="bind")]),
    "host network": lambda: create(network_mode="host"),
    "CapAdd": lambda: create(cap_add=["SYS_ADMIN"]),
    "container without this hub's labels": lambda: api.create_container(
        a["image"], user="1000:100", labels={"hubfleet.hub": "someone-else"},
        host_config=api.create_host_config(security_opt=["no-new-privileges"], mem_limit="256m",
                                           nano_cpus=10**9, pids_limit=64, network_mode=a["network"])),
    "stop of another hub's container": lambda: api.stop(a["other_container"]),
    "inspect of another hub's container": lambda: api.inspect_container(a["other_container"]),
    "stop of an unlabelled container": lambda: api.stop(a["unlabelled_container"]),
    "inspect of an unlabelled container": lambda: api.inspect_container(a["unlabelled_container"]),
    "exec into a user's server": lambda: api.exec_create(a["user_server"], ["id"]),
    "image pull": lambda: api.pull("debian", tag="bookworm"),
    "swarm init": lambda: api.init_swarm(),
}
results = {}
for name, call in cases.items():
    try:
        call()
        results[name] = [200, "allowed"]
    except docker.errors.APIError as e:
        results[name] = [e.status_code, e.explanation]
listed = [c["Id"] for c in api.containers(all=True)]
print(json.dumps({"refusals": results, "listed": listed, "ping": api.ping(),
                  "user_server_state": api.inspect_container(a["user_server"])["State"]["Status"]}))
'''

EXPECTED_RULES = {
    "privileged container": "privileged",
    "bind of /": "binds",
    "mount of the Docker socket": "docker-socket",
    "host network": "host-namespace",
    "CapAdd": "cap-add",
    "container without this hub's labels": "labels",
    "stop of another hub's container": "not-this-hub",
    "inspect of another hub's container": "not-this-hub",
    "stop of an unlabelled container": "not-this-hub",
    "inspect of an unlabelled container": "not-this-hub",
    "exec into a user's server": "exec",
    "image pull": "pull",
    "swarm init": "not-allowed",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_site(name, port, label, *extra_vars):
    """site.yml on this machine for hub ``name``, holding the host lock; returns (rc, output)."""
    collections = ROOT / ".cache" / "collections" / "ansible_collections" / "hubfleet"
    collections.mkdir(parents=True, exist_ok=True)
    link = collections / "jupyterhub"
    if not link.is_symlink():
        link.symlink_to("../../../..")
    argv = ["ansible-playbook", "-i", str(ROOT / "inventory/local/hosts.yml"),
            str(ROOT / "playbooks/site.yml"), "-e", "jupyterhub_name=%s" % name, "-e", "jupyterhub_port=%d" % port,
            "-e", json.dumps({"jupyterhub_labels": {"hubfleet.test": label}, "jupyterhub_mem_limit": "512M",
                              "images_ca_bundle": "/etc/ssl/certs/ca-certificates.crt"})]
    for extra in extra_vars:
        argv += ["-e", extra]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


def remove_by_label(client, label):
    selector = {"label": "hubfleet.test=%s" % label}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()


@pytest.fixture(scope="module")
def host_lock():
    """Hold the machine's host lock (other suites that run site.yml here take it too), unless
    the caller (``flock FILE pytest``) holds it already."""
    with hold_host_lock():
        yield


@pytest.fixture(scope="module")
def deployment(host_lock):
    run = uuid.uuid4().hex[:8]
    name, label, port = "sec-%s" % run, "security-%s" % run, free_port()
    client = docker.from_env()
    try:
        rc, output = run_site(name, port, label)
        assert rc == 0, output[-6000:]
        yield {"name": name, "label": label, "port": port, "client": client,
               "hub": client.containers.get("%s-hub" % name)}
    finally:
        try:
            remove_by_label(client, label)
            shutil.rmtree("/etc/hubfleet/%s" % name, ignore_errors=True)
        finally:
            remove_hub_rules(name)


@pytest.fixture(scope="module")
def probe(deployment):
    """The forbidden requests, made from inside the hub container."""
    client, name, label = deployment["client"], deployment["name"], deployment["label"]
    image = deployment["hub"].image.id
    test_labels = {"hubfleet.test": label}
    common = dict(command=["sleep", "300"], detach=True, user="1000:100")
    other = client.containers.run(image, labels=dict(test_labels, **{"hubfleet.hub": name + "-other"}), **common)
    unlabelled = client.containers.run(image, labels=test_labels, **common)
    user_server = client.containers.run(image, labels=dict(
        test_labels, **{"hubfleet.hub": name, "hubfleet.kind": "user-server", "hubfleet.user": "eve",
                        "hubfleet.server": ""}), **common)
    arguments = {"image": image, "network": name, "hub": name, "other_container": other.id,
                 "unlabelled_container": unlabelled.id, "user_server": user_server.id}
    done = subprocess.run(["docker", "exec", deployment["hub"].name, "python", "-c", PROBE, json.dumps(arguments)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    result.update(other=other, unlabelled=unlabelled, user_server=user_server)
    return result


@pytest.mark.parametrize("case", sorted(EXPECTED_RULES))
def test_a_forbidden_request_from_the_hub_is_refused_naming_the_rule(probe, case):
    status, message = probe["refusals"][case]
    assert status == 403, (case, status, message)
    assert "hubfleet docker filter refused this request (rule %s)" % EXPECTED_RULES[case] in message, message


def test_listing_all_containers_shows_only_this_hubs(probe):
    listed = set(probe["listed"])
    assert probe["user_server"].id in listed
    assert probe["other"].id not in listed
    assert probe["unlabelled"].id not in listed
    # Refused requests changed nothing: the containers they named still run.
    for container in (probe["other"], probe["unlabelled"]):
        container.reload()
        assert container.status == "running"
    assert probe["user_server_state"] == "running"


def test_the_hub_runs_unprivileged_without_the_docker_socket(deployment):
    hub = deployment["hub"]
    hub.reload()
    assert hub.attrs["Config"]["User"] == "901:901"
    assert hub.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert not hub.attrs["HostConfig"].get("Privileged")
    sources = [m.get("Source", "") for m in hub.attrs["Mounts"]]
    assert not any(s.endswith("docker.sock") for s in sources), sources
    status = hub.exec_run(["sh", "-c", "id -u; grep CapEff /proc/1/status; ls -l /var/run/docker.sock"]).output.decode()
    lines = status.splitlines()
    assert lines[0] == "901"
    assert lines[1].split()[1] == "0000000000000000", status
    assert "No such file" in status, status
    # Only the filter container mounts the socket, and it too runs without capabilities.
    docker_filter = deployment["client"].containers.get("%s-docker-filter" % deployment["name"])
    assert docker_filter.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert docker_filter.attrs["HostConfig"]["NetworkMode"] == "none"
    assert not docker_filter.attrs["Config"]["User"].startswith("0")


def test_a_setting_the_filter_would_refuse_fails_the_play_naming_it_and_the_hub_keeps_running(deployment):
    hub = deployment["hub"]
    hub.reload()
    before = hub.id
    rc, output = run_site(deployment["name"], deployment["port"], deployment["label"], json.dumps(
        {"jupyterhub_extra_config": "c.DockerSpawner.extra_host_config = {'privileged': True}"}))
    assert rc != 0, output[-4000:]
    assert "c.DockerSpawner.extra_host_config" in output and "rule privileged" in output, output[-4000:]
    hub = deployment["client"].containers.get(hub.name)
    assert hub.id == before and hub.status == "running"


def test_the_deployed_hubs_user_servers_are_isolated_and_still_served(deployment):
    """Issue 13 through the hub site.yml deployed (the same deployment): from alice's server,
    bob's server and the host's published hub port are rejected, the hub's API answers and
    its name resolves; the hub's proxy still serves both."""
    name, hub = deployment["name"], deployment["hub"]
    url = "http://127.0.0.1:%d" % deployment["port"]
    token = hub.exec_run(["jupyterhub", "token", "admin", "-f", "/etc/jupyterhub/jupyterhub_config.py"]).output
    headers = {"Authorization": "token " + token.decode().strip().splitlines()[-1]}
    servers = {}
    for user in ("alice", "bob"):
        requests.post(url + "/hub/api/users/%s" % user, headers=headers, timeout=30)
        requests.post(url + "/hub/api/users/%s/server" % user, headers=headers, timeout=60).raise_for_status()
    deadline = time.monotonic() + 180
    for user in ("alice", "bob"):
        while not requests.get(url + "/hub/api/users/" + user, headers=headers, timeout=30).json().get(
                "servers", {}).get("", {}).get("ready"):
            assert time.monotonic() < deadline, "%s's server did not become ready" % user
            time.sleep(1)
        (servers[user],) = deployment["client"].containers.list(filters={"label": [
            "hubfleet.hub=" + name, "hubfleet.kind=user-server", "hubfleet.user=" + user]})
    network = deployment["client"].networks.get(name)
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]

    def probe(address, port):
        output = servers["alice"].exec_run(["python3", "-c", PROBE_CONNECT, address, str(port)]).output.decode()
        return output.split()[0] if output else output

    bob_address = servers["bob"].attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
    hub_name = "%s-hub" % name
    resolved = servers["alice"].exec_run(["python3", "-c", RESOLVE, hub_name]).output.decode().strip()
    assert {
        "bob's server": probe(bob_address, 8888),
        "hub API": probe(hub_name, 8081),
        "host, the hub's published port": probe(gateway, deployment["port"]),
    } == {"bob's server": "blocked", "hub API": "open", "host, the hub's published port": "blocked"}
    hub.reload()
    assert resolved == hub.attrs["NetworkSettings"]["Networks"][name]["IPAddress"], resolved
    for user in ("alice", "bob"):
        status = requests.get(url + "/user/%s/api/status" % user, headers=headers, timeout=30)
        assert status.status_code == 200, (user, status.status_code)
    for user in ("alice", "bob"):
        requests.delete(url + "/hub/api/users/%s/server" % user, headers=headers, timeout=60)
