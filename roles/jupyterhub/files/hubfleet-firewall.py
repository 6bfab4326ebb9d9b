"""Re-apply the network isolation of each hub on this host whenever its Docker engine starts.

The hub_firewall module applies the rules when a playbook runs; they live in the kernel, so
a host reboot loses them, and a container that restarts may get a new address (measured on
Docker 20.10: after a reboot the hub and another container swapped addresses), so replaying
saved rules would hand the hub's exemption to whichever container now has its old address.
This program computes the rules again, exactly as the module does (the same rule builder,
firewall.py from the collection's module_utils, installed next to it), from each hub's
settings the role saved in /etc/hubfleet/firewall/<network>.json and from what the engine
says now: the network's bridge and the hub container's current address.

    hubfleet-firewall apply [--wait SECONDS]   # make the rules so; waits for the engine and hubs
    hubfleet-firewall check                    # exit 1 and print the commands when they differ
    hubfleet-firewall watch [--interval SECONDS]   # keeps them so while the host runs (see below)

Started after every start of the engine: by systemd (hubfleet-firewall.service, After= and
WantedBy=docker.service) or, on hosts without systemd, by the docker_engine role's
supervisor (a hook in /etc/hubfleet/dockerd-started.d/). A hub whose container has no
address yet when the wait ends gets the rules without its exemption: its user servers
are cut off from everything private until the hub is back (fail closed), never left open.
dockerd itself keeps our chains across its restarts (measured on 20.10.24): only their
contents may be out of date then.

``watch`` runs for as long as the host does. On one host it makes the chains so again
whenever a hub's container starts and every ``--interval`` seconds: a hub container that
restarts outside the role (its restart policy, an operator's ``docker restart``) may come
back with another address, and its exemption must follow it at once, not at the next run.

On a swarm fleet node (settings files ``swarm-<network>.json`` with ``"kind": "swarm"``, written
by the role's fleet_firewall.yml on every node) the user servers are on an overlay network,
whose traffic between nodes never crosses a bridge of the node that iptables could filter.
``watch`` runs for as long as the node does: whenever a user server's container starts on
this node (``docker events``), and for all of them whenever the rules they need change (it
looks again every ``--interval`` seconds: the hub may have moved to another address), it
replaces the filter table in that container's own network namespace with the rules of ``task_rules``/``task_rules6`` (IPv4 and IPv6, one
``iptables-restore`` each). The servers have no NET_ADMIN capability, so they cannot change them.
"""

import argparse
import glob
import ipaddress
import json
import os
import select
import signal
import subprocess
import sys
import time

LIBRARY = "/usr/local/lib/hubfleet"
STATE_DIR = "/etc/hubfleet/firewall"
BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def say(message):
    print("%s hubfleet-firewall: %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message), flush=True)


def docker_inspect(kind, name):
    """``docker <kind> inspect`` of one object as a dict, or None (no such object, engine down)."""
    result = subprocess.run(["docker", kind, "inspect", name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


def engine_answers():
    return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                          check=False).returncode == 0


def iptables(*args, check=True):
    result = subprocess.run(["iptables", "-w"] + list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError("iptables %s failed: %s" % (" ".join(args), (result.stderr or result.stdout).strip()))
    return result


def until(condition, deadline):
    """``condition()`` until it returns something truthy or the deadline passes (then its last value)."""
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(1)


class Host:
    """This host's iptables and engine, seen through the rule builder ``rules`` (firewall.py)."""

    def __init__(self, rules):
        self.rules = rules
        self.hubs_missing = set()
        self.networks_missing = set()

    def listing(self, chain):
        result = iptables("-S", chain, check=False)
        return self.rules.chain_body(result.stdout) if result.returncode == 0 else None

    def wanted(self, settings, deadline):
        """The wanted ``{chain: rules}`` of one hub, or None when its network does not exist."""
        network = until(lambda: docker_inspect("network", settings["network"]), deadline)
        if network is None:
            if settings["network"] not in self.networks_missing:  # said once until it exists
                self.networks_missing.add(settings["network"])
                say("network %s does not exist: no rules for it" % settings["network"])
            return None
        self.networks_missing.discard(settings["network"])
        hub = settings.get("hub_container")
        addresses = []
        if hub:
            def hub_address():
                container = docker_inspect("container", hub)
                if not container or not (container.get("State") or {}).get("Running"):
                    return None
                return self.rules.container_address(container, settings["network"])

            address = until(hub_address, deadline)
            if address:
                addresses = [address]
                self.hubs_missing.discard(hub)
            elif hub not in self.hubs_missing:  # said once until it has one again
                self.hubs_missing.add(hub)
                say("hub %s has no address on %s: its user servers get the rules without the hub's exemption "
                    "(run again once the hub runs)" % (hub, settings["network"]))
        return self.rules.wanted_state(
            settings["network"], self.rules.bridge_interface(network), addresses, settings.get("hub_api_port", 8081),
            settings.get("host_ports", []), self.rules.parse_allowlist(settings.get("allowlist", [])))

    def commands(self, settings, deadline):
        after = self.wanted(settings, deadline)
        if after is None:
            return []
        before = self.rules.existing_state(self.listing, settings["network"])
        return self.rules.apply_commands(before, after, settings["network"])


def node_addresses():
    """This node's own global IPv4 addresses (``ip -o addr``): user servers may not reach them."""
    result = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True,
                            check=False)
    addresses = []
    for line in result.stdout.splitlines():
        words = line.split()
        if "inet" in words:
            addresses.append(str(ipaddress.ip_interface(words[words.index("inet") + 1]).ip))
    return sorted(set(addresses))


def in_namespace(pid, program, script):
    """Run ``program`` (iptables-restore, ip6tables-restore) in the network namespace of ``pid``."""
    result = subprocess.run(["nsenter", "--target", str(pid), "--net", program], input=script, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("%s in the namespace of pid %s failed: %s" % (program, pid, result.stderr.strip()))


class Fleet:
    """One fleet node's user servers, each kept with the rules of its hub's settings."""

    def __init__(self, rules):
        self.rules = rules
        self.applied = {}  # (container id, pid) -> the restore scripts last applied to its namespace
        self.hubs_missing = set()  # hubs said to have no address (said once, not every round)

    def wanted(self, settings):
        """``(ipv4 script, ipv6 script)`` for the user servers of one hub, as the node sees it now."""
        network = docker_inspect_verbose(settings["network"]) or {}
        hub_addresses = self.rules.swarm_hub_addresses(network, settings["hub"])
        if not hub_addresses and settings["hub"] not in self.hubs_missing:
            say("hub %s has no address on %s as this node sees it: its servers here get the rules without "
                "the hub's exemption until it has" % (settings["hub"], settings["network"]))
        if hub_addresses:
            self.hubs_missing.discard(settings["hub"])
        else:
            self.hubs_missing.add(settings["hub"])
        try:
            allowlist = self.rules.parse_allowlist(settings.get("allowlist", []))
        except self.rules.AllowlistError as error:  # fail closed: nothing allowlisted, never no rules
            say("allowlist of %s ignored: %s" % (settings["network"], error))
            allowlist = []
        chains = self.rules.task_rules(hub_addresses, settings.get("hub_api_port", 8081),
                                       self.rules.network_subnets(network), node_addresses(), allowlist)
        return self.rules.restore_script(chains), self.rules.restore_script(self.rules.task_rules6())

    def servers(self, settings):
        """``{container id: pid}`` of the running user servers of one hub on this node."""
        listing = subprocess.run(
            ["docker", "ps", "--quiet", "--no-trunc", "--filter", "label=hubfleet.hub=%s" % settings["hub_label"],
             "--filter", "label=hubfleet.kind=user-server"], capture_output=True, text=True, check=False)
        ids = listing.stdout.split()
        if not ids:
            return {}
        pids = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.State.Pid}}"] + ids, capture_output=True,
                              text=True, check=False)
        found = {}
        for line in pids.stdout.splitlines():
            container, pid = line.split()
            if pid != "0":
                found[container] = pid
        return found

    def reconcile(self, all_settings):
        """Apply the rules to every user server whose rules are missing or out of date."""
        seen = set()
        for settings in all_settings:
            servers = self.servers(settings)
            if not servers:
                continue
            scripts = self.wanted(settings)
            for container, pid in servers.items():
                seen.add((container, pid))
                if self.applied.get((container, pid)) == scripts:
                    continue
                try:
                    in_namespace(pid, "iptables-restore", scripts[0])
                    in_namespace(pid, "ip6tables-restore", scripts[1])
                except RuntimeError as error:  # gone meanwhile, or no IPv6 in this kernel: said, tried again
                    say("%s: %s" % (container[:12], error))
                    continue
                self.applied[(container, pid)] = scripts
                say("%s (%s): rules applied" % (container[:12], settings["network"]))
        for gone in set(self.applied) - seen:
            del self.applied[gone]


def docker_inspect_verbose(network):
    """``docker network inspect --verbose`` (every node's view of the services on it), or None."""
    result = subprocess.run(["docker", "network", "inspect", "--verbose", network], capture_output=True, text=True,
                            check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def all_settings(state_dir):
    settings = []
    for path in sorted(glob.glob(os.path.join(state_dir, "*.json"))):
        with open(path) as state:
            settings.append(json.load(state))
    return settings


def follow_hosts(host, settings, state_dir):
    """One host's hubs (settings without ``"kind": "swarm"``): make their chains so again
    when what they depend on changed, above all a hub container that restarted outside the
    role with another address (its exemption follows it, and leaves the old address)."""
    for each in settings:
        if each.get("kind") == "swarm":
            continue
        with host.rules.rules_lock():
            if not os.path.exists(os.path.join(state_dir, "%s.json" % each["network"])):
                continue  # removed meanwhile (isolation turned off): the module removes the chains
            commands = host.commands(each, time.monotonic())
            for command in commands:
                iptables(*command)
        if commands:
            say("%s: %d rule changes applied (the hub's address or the bridge changed)" % (each["network"], len(commands)))


def watch(rules, state_dir, interval):
    """Keep every user server on this host or fleet node isolated; never returns."""
    fleet = Fleet(rules)
    host = Host(rules)
    events = None

    def end(_signal, _frame):  # ended by its hook (stop-if-idle, restart) or systemd
        if events is not None:
            events.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, end)
    while True:
        if events is None or events.poll() is not None:
            # Ends with the engine (a restart): started again on the next round. One label
            # filter given twice is either of them: a user server's or a hub's start.
            events = subprocess.Popen(
                ["docker", "events", "--format", "{{.ID}}", "--filter", "type=container", "--filter", "event=start",
                 "--filter", "label=hubfleet.kind=user-server", "--filter", "label=hubfleet.kind=hub"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            settings = all_settings(state_dir)
            fleet.reconcile([each for each in settings if each.get("kind") == "swarm"])
            follow_hosts(host, settings, state_dir)
        except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as error:
            say("round failed, trying again: %s" % error)
        ready = select.select([events.stdout], [], [], interval)[0]
        if ready and not os.read(events.stdout.fileno(), 65536):
            events.wait()
            time.sleep(1)  # the engine is down or restarting: no busy loop meanwhile


def load_rules(library):
    sys.path.insert(0, library)
    import firewall  # pylint: disable=import-outside-toplevel,import-error

    return firewall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hubfleet-firewall", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["apply", "check", "watch"])
    parser.add_argument("--wait", type=float, default=0,
                        help="seconds to wait for the engine, each network and each hub's address (default 0)")
    parser.add_argument("--state-dir", default=STATE_DIR, help="where the role saves each hub's settings")
    parser.add_argument("--library", default=LIBRARY, help="where firewall.py (the rule builder) is")
    parser.add_argument("--interval", type=float, default=5,
                        help="watch: seconds between two checks of every user server's rules (default 5)")
    args = parser.parse_args(argv)
    if args.command == "watch":
        watch(load_rules(args.library), args.state_dir, args.interval)
    host = Host(load_rules(args.library))
    deadline = time.monotonic() + args.wait
    files = sorted(glob.glob(os.path.join(args.state_dir, "*.json")))
    if not files:
        return 0
    if not until(engine_answers, deadline):
        say("the Docker engine does not answer: nothing applied")
        return 1
    try:
        with open(BRIDGE_NF_CALL_IPTABLES) as setting:
            bridged_filtered = setting.read().strip() == "1"
    except OSError:
        bridged_filtered = False
    if not bridged_filtered:
        say("warning: %s is not 1: user servers on one bridge reach each other past the rules" % BRIDGE_NF_CALL_IPTABLES)
    status = 0
    for path in files:
        with open(path) as state:
            settings = json.load(state)
        if settings.get("kind") == "swarm":
            continue  # a fleet node's user servers: ``watch`` keeps them
        if args.command == "check":
            commands = host.commands(settings, deadline)
            for command in commands:
                print("iptables " + " ".join(command))
            status = status or (1 if commands else 0)
            continue
        host.commands(settings, deadline)  # waits (up to --wait) for the network and the hub's address
        with host.rules.rules_lock():
            commands = host.commands(settings, time.monotonic())
            for command in commands:
                iptables(*command)
        say("%s: %s" % (settings["network"], "%d rule changes applied" % len(commands) if commands else "rules in place"))
    return status


if __name__ == "__main__":
    sys.exit(main())
