"""Network isolation of user servers on one host (issue #13), through a real hub.

Real components: a JupyterHub process with configurable-http-proxy (testbed/hub.py) whose
user servers are containers of the singleuser image on a bridge network this test creates;
the rules are applied by running the collection's module ``hubfleet.jupyterhub.hub_firewall``
with ``ansible``, as the role does. A "LAN" host is a container of the test's own, reached
from the host through a veth pair with a private /30 address the test picks (Docker's own
isolation between bridge networks would hide what our rules do). Every probe is a TCP
connect from inside a user server to an address the test created; nothing else is
contacted (the metadata address's rule is asserted, never probed).

Every probe is made once before the rules exist (it must connect) and again with them:
a "blocked" result can only come from the rules. The test holds /tmp/hubfleet-host.lock
(itself, unless it runs under ``flock`` of that file already) while host chains are touched, and removes its rules, containers and networks at the end.
"""

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))

from firewall import chain_names  # noqa: E402
from testbed.host_lock import host_lock  # noqa: E402
from testbed.hub import Hub  # noqa: E402
from testbed.images import singleuser_image  # noqa: E402
from testbed.network_probe import LAN_SERVER, LISTENER, PROBE, RESOLVE  # noqa: E402

SERVER_PORT = 8888
DNS_PORT = 53
LAN_PORT = 8080


def wait_listening(address, port, timeout=30):
    """Until a TCP connect from the host to ``address:port`` succeeds (no rules exist yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def iptables_rules():
    return subprocess.run(["iptables", "-w", "-S"], check=True, capture_output=True, text=True).stdout


def our_rules(network):
    """The host's rule lines that mention this network's chains (other sessions change the rest)."""
    chains = chain_names(network.name)
    return [line for line in iptables_rules().splitlines() if any(chain in line for chain in chains)]


class Collection:
    """``ansible localhost -m hubfleet.jupyterhub.hub_firewall`` on this checkout."""

    def __init__(self, tmp):
        link = tmp / "ansible_collections" / "hubfleet" / "jupyterhub"
        link.parent.mkdir(parents=True)
        link.symlink_to(ROOT)
        self.env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(tmp),
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="json",
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_DEPRECATION_WARNINGS="false",
        )
        self.ansible = os.path.join(os.path.dirname(sys.executable), "ansible")

    def firewall(self, *flags, **args):
        command = [self.ansible, "localhost", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                   "-m", "hubfleet.jupyterhub.hub_firewall", "-a", json.dumps(args)] + list(flags)
        out = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False).stdout
        return json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def free_subnet():
    """A private /30 no route of this host covers, for the test's "LAN" veth pair."""
    routes = subprocess.run(["ip", "-4", "route"], check=True, capture_output=True, text=True).stdout
    taken = [ipaddress.ip_network(line.split()[0]) for line in routes.splitlines() if line.split()[0][0].isdigit()]
    for _attempt in range(100):
        subnet = ipaddress.ip_network("10.%d.%d.0/30" % (secrets.randbelow(200) + 50, secrets.randbelow(256)))
        if not any(subnet.overlaps(route) for route in taken):
            return subnet
    raise RuntimeError("no free private /30 for the test LAN")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    client = docker.from_env()
    token = secrets.token_hex(3)
    label = {"hubfleet.test": "netiso-%s" % token}
    image = singleuser_image()
    with host_lock():
        network = client.networks.create("hfsec-%s-users" % token, driver="bridge", labels=label)
        collection = Collection(tmp_path_factory.mktemp("collection"))
        veth = "hfl%s" % token
        lan = listener = None
        try:
            network.reload()
            gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
            # The "LAN": a container with no Docker network, wired to the host by a veth pair.
            subnet = free_subnet()
            host_side, lan_side = [str(address) for address in subnet.hosts()]
            lan = client.containers.run(image, ["python3", "-c", LAN_SERVER, str(LAN_PORT)], detach=True,
                                        network_mode="none", user="1000", labels=label, name="hfsec-%s-lan" % token)
            lan.reload()
            pid = str(lan.attrs["State"]["Pid"])

            def ip(*args):
                subprocess.run(["ip"] + list(args), check=True)

            def in_lan(*args):
                subprocess.run(["nsenter", "-t", pid, "-n", "ip"] + list(args), check=True)

            ip("link", "add", veth, "type", "veth", "peer", "name", veth + "p")
            ip("link", "set", veth + "p", "netns", pid)
            ip("addr", "add", "%s/30" % host_side, "dev", veth)
            ip("link", "set", veth, "up")
            in_lan("addr", "add", "%s/30" % lan_side, "dev", veth + "p")
            in_lan("link", "set", veth + "p", "up")
            in_lan("route", "add", "default", "via", host_side)
            wait_listening(lan_side, LAN_PORT)
            # Something else listening on the host's address on the user bridge.
            listener = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", gateway],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            listener_port = int(listener.stdout.readline().split(" port ")[1].split()[0])
            config = (
                "c.JupyterHub.ip = '0.0.0.0'\n"  # the proxy's public port on every host address, as a deployment publishes it
                "c.JupyterHub.hub_ip = %r\n"
                "c.DockerSpawner.network_name = %r\n"
                "c.DockerSpawner.use_internal_ip = True\n" % (gateway, network.name)
            )
            with Hub(tmp_path_factory.mktemp("netiso-hub"), image=image, extra_config=config,
                     filter_policy={"networks": [network.name]}) as hub:
                for user in ("alice", "bob"):
                    assert hub.spawn(user).status_code in (201, 202)
                for user in ("alice", "bob"):
                    hub.wait_ready(user)
                servers = {user: hub.containers(**{"hubfleet.user": user})[0] for user in ("alice", "bob")}
                for container in servers.values():
                    container.reload()
                # A user's process may bind port 53 in its container (Docker lets any user
                # bind low ports there): DNS's allowance must not open bob's server to alice.
                servers["bob"].exec_run(["python3", "-c", LISTENER, str(DNS_PORT)], detach=True, user="1000")
                wait_listening(address_of(servers["bob"], network), DNS_PORT)
                yield dict(hub=hub, network=network, gateway=gateway, servers=servers, lan_address=lan_side,
                           listener_port=listener_port, collection=collection)
        finally:
            try:
                collection.firewall(network=network.name, state="absent")
            finally:
                if listener is not None:
                    listener.terminate()
                    listener.wait(10)
                subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
                if lan is not None:
                    lan.remove(force=True)
                network.remove()


def probe(container, address, port):
    output = container.exec_run(["python3", "-c", PROBE, address, str(port)]).output.decode()
    return output.split()[0] if output else output


def resolve(container, name):
    output = container.exec_run(["python3", "-c", RESOLVE, name]).output.decode()
    return output.split()[0] if output else output


def address_of(container, network):
    return container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]


def probes(setup):
    """What alice's server reaches: bob's server, the hub API, the host, the LAN."""
    alice, bob = setup["servers"]["alice"], setup["servers"]["bob"]
    hub, gateway = setup["hub"], setup["gateway"]
    return {
        "bob's server": probe(alice, address_of(bob, setup["network"]), SERVER_PORT),
        "bob's port 53": probe(alice, address_of(bob, setup["network"]), DNS_PORT),
        "hub API": probe(alice, gateway, hub.hub_port),
        "gateway, hub's public port": probe(alice, gateway, hub.proxy_port),
        "gateway, another listening port": probe(alice, gateway, setup["listener_port"]),
        "LAN host": probe(alice, setup["lan_address"], LAN_PORT),
    }


def program_check(tmp_path, **settings):
    """``hubfleet-firewall check`` (what re-applies the rules at engine starts) for one hub's settings."""
    state_dir = tmp_path / "firewall"
    state_dir.mkdir(exist_ok=True)
    (state_dir / ("%s.json" % settings["network"])).write_text(json.dumps(settings))
    return subprocess.run([sys.executable, str(ROOT / "roles" / "jupyterhub" / "files" / "hubfleet-firewall.py"), "check",
                           "--state-dir", str(state_dir), "--library", str(ROOT / "plugins" / "module_utils")],
                          capture_output=True, text=True, check=False)


def test_user_servers_are_isolated_by_the_module_and_released_by_absent(setup, tmp_path):
    hub, network, collection = setup["hub"], setup["network"], setup["collection"]
    forward_chain = chain_names(network.name)[0]
    everything_open = {name: "open" for name in probes(setup)}
    assert probes(setup) == everything_open, "without rules every probe must connect (else the test proves nothing)"

    check = program_check(tmp_path, network=network.name, host_ports=[hub.hub_port])
    assert check.returncode == 1 and "iptables -N %s" % forward_chain in check.stdout, check
    result = collection.firewall(network=network.name, host_ports=[hub.hub_port])
    assert result.get("changed") is True, result
    # The program that re-applies the rules at engine starts makes exactly the module's rules.
    check = program_check(tmp_path, network=network.name, host_ports=[hub.hub_port])
    assert (check.returncode, check.stdout) == (0, ""), check
    assert probes(setup) == {
        "bob's server": "blocked",
        "bob's port 53": "blocked",
        "hub API": "open",
        "gateway, hub's public port": "blocked",
        "gateway, another listening port": "blocked",
        "LAN host": "blocked",
    }
    # The metadata address is in the rejected link-local range (asserted, never contacted).
    assert "-A %s -d 169.254.0.0/16 -j REJECT --reject-with icmp-port-unreachable" % forward_chain in iptables_rules()
    for user in ("alice", "bob"):
        assert hub.user_server_get(user, "api/status").status_code == 200, "the proxy must still route to %s" % user
    # Names still resolve (Docker's embedded DNS) with the rules in: bob's name gives his
    # address, though connections to it are rejected.
    bob = setup["servers"]["bob"]
    assert resolve(setup["servers"]["alice"], bob.name) == address_of(bob, network)

    allowed = "%s/32:%d" % (setup["lan_address"], LAN_PORT)
    result = collection.firewall(network=network.name, host_ports=[hub.hub_port], allowlist=[allowed])
    assert result.get("changed") is True, result
    assert probes(setup)["LAN host"] == "open"
    assert probes(setup)["bob's server"] == "blocked"

    result = collection.firewall(network=network.name, state="absent")
    assert result.get("changed") is True, result
    assert our_rules(network) == []
    assert probes(setup) == everything_open


def test_module_is_idempotent_with_check_and_diff(setup):
    network, collection = setup["network"], setup["collection"]
    forward_chain = chain_names(network.name)[0]
    args = dict(network=network.name, allowlist=["192.0.2.0/24"])

    checked = collection.firewall("--check", "--diff", **args)
    assert checked.get("changed") is True, checked
    assert our_rules(network) == [], "check mode changed the host"
    assert "-A %s -d 192.0.2.0/24 -j RETURN" % forward_chain in checked["diff"]["after"]

    assert collection.firewall(**args).get("changed") is True
    before = our_rules(network)
    assert len(before) == 2 + 2 + 11 + 4, before  # -N twice, two jumps, the chains' rules
    again = collection.firewall("--check", "--diff", **args)
    assert again.get("changed") is False, again
    assert collection.firewall(**args).get("changed") is False
    assert our_rules(network) == before

    refused = collection.firewall(network=network.name, allowlist=["10.0.0.5/24:80"])
    assert refused.get("failed") is True and "allowlist" in refused["msg"], refused
    assert our_rules(network) == before, "a refused run changed the rules"

    assert collection.firewall(network=network.name, state="absent").get("changed") is True
    assert collection.firewall(network=network.name, state="absent").get("changed") is False
    assert our_rules(network) == []
