"""Prometheus next to the hub: site.yml with jupyterhub_prometheus true.

The role builds the Prometheus image from Debian's prometheus package and runs it on the hub
network; it scrapes the hub's /hub/metrics with the read:metrics token, read from a file
only Prometheus' user may read. Checked against the running deployment: Prometheus' target
list shows the hub up, a query returns the hub's user count as the hub itself reports it
(the native authenticator's admin is its one user), the token is in no configuration file,
its file is 0400 for the image's uid, the port is published on the loopback only and the
container runs unprivileged; on the hub network it is a neighbour like a user server, which
the isolation rules keep from reaching it. A second run of site.yml changes nothing.
"""

import os
import re
import stat
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

from testbed.host_lock import host_lock
from testbed.site import free_port, remove_deployment, run_site


@pytest.fixture(scope="module")
def deployment():
    run = uuid.uuid4().hex[:8]
    name, label, port, prometheus_port = "prom-%s" % run, "prometheus-%s" % run, free_port(), free_port()
    settings = {"jupyterhub_prometheus": True, "jupyterhub_prometheus_port": prometheus_port,
                "jupyterhub_prometheus_scrape_interval": "2s"}
    with host_lock():
        try:
            rc, output = run_site(name, port, label, settings)
            assert rc == 0, output[-6000:]
            yield {"name": name, "label": label, "port": port, "settings": settings,
                   "prometheus": "http://127.0.0.1:%d" % prometheus_port, "client": docker.from_env()}
        finally:
            remove_deployment(name, label)


def prometheus_query(url, query):
    answer = requests.get(url + "/api/v1/query", params={"query": query}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_the_hub_with_the_metrics_token(deployment):
    url = deployment["prometheus"]
    deadline = time.monotonic() + 60
    while True:
        targets = requests.get(url + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        hub = [t for t in targets if t["labels"].get("job") == "jupyterhub"]
        if hub and hub[0]["health"] == "up":
            break
        assert time.monotonic() < deadline, "the hub target is not up within 60 s: %s" % targets
        time.sleep(1)
    assert hub[0]["scrapeUrl"] == "http://%s-hub:8081/hub/metrics" % deployment["name"]

    # What the hub itself says, read with the token the role wrote for scrapers.
    token = Path("/etc/hubfleet/%s/metrics-token" % deployment["name"]).read_text().strip()
    metrics = requests.get("http://127.0.0.1:%d/hub/metrics" % deployment["port"],
                           headers={"Authorization": "Bearer " + token}, timeout=10).text
    hub_users = float(re.search(r"^jupyterhub_total_users (\S+)$", metrics, re.M).group(1))
    assert hub_users == 1  # the native authenticator's admin, made by the role
    (sample,) = prometheus_query(url, 'jupyterhub_total_users{job="jupyterhub"}')
    assert float(sample["value"][1]) == hub_users
    assert sample["metric"]["hub"] == deployment["name"]
    # Without the token the hub refuses the scrape: Prometheus' success is the token's.
    assert requests.get("http://127.0.0.1:%d/hub/metrics" % deployment["port"], timeout=10).status_code == 403


def test_the_token_is_readable_by_prometheus_alone_and_in_no_configuration(deployment):
    client = deployment["client"]
    container = client.containers.get("%s-prometheus" % deployment["name"])
    uid, gid = (int(part) for part in container.attrs["Config"]["User"].split(":"))
    assert uid != 0 and gid != 0
    config_dir = Path("/etc/hubfleet/%s/prometheus" % deployment["name"])
    token_file = os.stat(config_dir / "hub-token")
    assert (token_file.st_uid, token_file.st_gid, stat.S_IMODE(token_file.st_mode)) == (uid, gid, 0o400)
    token = Path("/etc/hubfleet/%s/metrics-token" % deployment["name"]).read_text().strip()
    assert (config_dir / "hub-token").read_text().strip() == token
    assert token not in (config_dir / "prometheus.yml").read_text()
    assert token not in str(container.attrs["Config"]) and token not in str(container.attrs["HostConfig"])
    # Another uid inside the container cannot read it.
    denied = container.exec_run(["cat", "/etc/prometheus/hub-token"], user="65534:65534")
    assert denied.exit_code != 0 and token.encode() not in denied.output


def test_prometheus_runs_unprivileged_on_the_loopback_with_its_data_in_a_volume(deployment):
    container = deployment["client"].containers.get("%s-prometheus" % deployment["name"])
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"] and host["ReadonlyRootfs"]
    assert host["PortBindings"] == {"9090/tcp": [{"HostIp": "127.0.0.1",
                                                  "HostPort": str(deployment["settings"]["jupyterhub_prometheus_port"])}]}
    (data,) = [m for m in container.attrs["Mounts"] if m["Destination"] == "/prometheus"]
    assert data["Type"] == "volume" and data["Name"] == "%s-prometheus-data" % deployment["name"]
    assert deployment["client"].volumes.get(data["Name"]).attrs["Labels"]["hubfleet.test"] == deployment["label"]


def reaches(deployment, host, port):
    """Whether a container on the hub network (where user servers are: the isolation rules
    treat every container there but the hub alike) opens a TCP connection to host:port."""
    client, name = deployment["client"], deployment["name"]
    probe = client.containers.run(
        client.containers.get(name + "-hub").image, network=name, entrypoint="python3", detach=True,
        command=["-c", "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)", host,
                 str(port)],
        labels={"hubfleet.test": deployment["label"]}, cap_drop=["ALL"], user="65534:65534")
    try:
        return probe.wait(timeout=30)["StatusCode"] == 0
    finally:
        probe.remove(force=True)


def test_a_user_server_reaches_the_hub_but_not_prometheus(deployment):
    name = deployment["name"]
    assert reaches(deployment, name + "-hub", 8081), "a container on the hub network does not reach the hub's API"
    assert not reaches(deployment, name + "-prometheus", 9090), "a user server reaches Prometheus"


def test_a_second_run_changes_nothing(deployment):
    with host_lock():
        rc, output = run_site(deployment["name"], deployment["port"], deployment["label"], deployment["settings"])
    assert rc == 0, output[-6000:]
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", output), output[-3000:]


def test_turned_off_its_container_goes_and_its_data_stays(deployment):
    settings = dict(deployment["settings"], jupyterhub_prometheus=False)
    with host_lock():
        rc, output = run_site(deployment["name"], deployment["port"], deployment["label"], settings)
    assert rc == 0, output[-6000:]
    client, name = deployment["client"], deployment["name"]
    assert not client.containers.list(all=True, filters={"name": "^/%s-prometheus$" % name})
    assert client.volumes.get("%s-prometheus-data" % name)
    assert requests.get("http://127.0.0.1:%d/hub/health" % deployment["port"], timeout=10).status_code == 200
