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

Started after every start of the engine: by systemd (hubfleet-firewall.service, After= and
WantedBy=docker.service) or, on hosts without systemd, by the docker_engine role's
supervisor (a hook in /etc/hubfleet/dockerd-started.d/). A hub whose container has no
address yet when the wait ends gets the rules without its exemption: its user servers
are cut off from everything private until the hub is back (fail closed), never left open.
dockerd itself keeps our chains across its restarts (measured on 20.10.24): only their
contents may be out of date then.
"""

import argparse
import glob
import json
import os
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

    def listing(self, chain):
        result = iptables("-S", chain, check=False)
        return self.rules.chain_body(result.stdout) if result.returncode == 0 else None

    def wanted(self, settings, deadline):
        """The wanted ``{chain: rules}`` of one hub, or None when its network does not exist."""
        network = until(lambda: docker_inspect("network", settings["network"]), deadline)
        if network is None:
            say("network %s does not exist: no rules for it" % settings["network"])
            return None
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
            else:
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


def load_rules(library):
    sys.path.insert(0, library)
    import firewall  # pylint: disable=import-outside-toplevel,import-error

    return firewall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hubfleet-firewall", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["apply", "check"])
    parser.add_argument("--wait", type=float, default=0,
                        help="seconds to wait for the engine, each network and each hub's address (default 0)")
    parser.add_argument("--state-dir", default=STATE_DIR, help="where the role saves each hub's settings")
    parser.add_argument("--library", default=LIBRARY, help="where firewall.py (the rule builder) is")
    args = parser.parse_args(argv)
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
        commands = host.commands(settings, deadline)
        if args.command == "check":
            for command in commands:
                print("iptables " + " ".join(command))
            status = status or (1 if commands else 0)
            continue
        for command in commands:
            iptables(*command)
        say("%s: %s" % (settings["network"], "%d rule changes applied" % len(commands) if commands else "rules in place"))
    return status


if __name__ == "__main__":
    sys.exit(main())
