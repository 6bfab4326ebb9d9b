"""Remove a test hub's network isolation rules from this machine (issue 13's test hygiene).

A deployment by site.yml leaves the hub_firewall chains of its network in the host's
iptables (two chains, two jumps, about twenty lines per hub) and the settings that
hubfleet-firewall re-applies at engine starts in /etc/hubfleet/firewall/. Removing the
hub's containers and network does not remove them, so every test that deploys on this
machine calls ``remove_hub_rules(network)`` in its clean-up: the module with
``state: absent`` for that network only, as an operator would run it.

    remove_hub_rules("faults-1a2b3c4d")     # RuntimeError when the module fails or rules stay;
                                            # ends the watcher when no hub's settings are left
    hub_rule_lines("faults-1a2b3c4d")       # the iptables-save lines of that network's chains
    hub_firewall({"network": ..., ...})     # the module with any arguments; its result

    flock /tmp/hubfleet-host.lock python -m testbed.hub_rules prune
        # removes the HUBFLEET chains whose bridge is gone (left by runs before this clean-up)
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))

from firewall import chain_names  # noqa: E402  pylint: disable=wrong-import-position

STATE_DIR = "/etc/hubfleet/firewall"
WATCH_HOOK = "/etc/hubfleet/dockerd-started.d/60-hubfleet-firewall-watch"


def hub_rule_lines(network):
    """The lines of ``iptables-save`` (filter table) that name this network's chains."""
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True).stdout
    chains = chain_names(network)
    return [line for line in saved.splitlines() if any(chain in line for chain in chains)]


def hub_firewall(arguments):
    """``hubfleet.jupyterhub.hub_firewall`` with ``arguments`` on this machine, run by ansible
    from this checkout; returns the module's result (``failed`` and ``msg`` when it failed)."""
    with tempfile.TemporaryDirectory() as workdir:
        link = Path(workdir) / "ansible_collections" / "hubfleet" / "jupyterhub"
        link.parent.mkdir(parents=True)
        link.symlink_to(ROOT)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=workdir, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_DEPRECATION_WARNINGS="false")
        command = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
                   "-e", "ansible_python_interpreter=" + sys.executable, "-m", "hubfleet.jupyterhub.hub_firewall",
                   "-a", json.dumps(arguments)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError("hub_firewall %s: %s%s" % (arguments, done.stdout[-2000:], done.stderr[-2000:]))


def remove_hub_rules(network):
    """``hubfleet.jupyterhub.hub_firewall`` with ``state: absent`` for ``network`` on this
    machine, and its saved settings; returns the module's result."""
    # The settings first: a running watcher would otherwise make the chains again.
    try:
        os.unlink(os.path.join(STATE_DIR, "%s.json" % network))
    except FileNotFoundError:
        pass
    result = hub_firewall({"network": network, "state": "absent"})
    if result.get("failed"):
        raise RuntimeError("hub_firewall state=absent for %s failed: %s" % (network, result.get("msg")))
    stop_idle_watcher()
    left = hub_rule_lines(network)
    if left:
        raise RuntimeError("rules of %s left after hub_firewall state=absent: %s" % (network, left))
    return result


def stop_idle_watcher():
    """End the hubfleet-firewall watcher a deployment started, once no hub's settings are left
    (its own hook does it, by the PID it recorded); nothing when it is not installed."""
    if os.path.exists(WATCH_HOOK):
        subprocess.run([WATCH_HOOK, "stop-if-idle"], capture_output=True, check=False)


def orphan_chains():
    """``{chain: [jump rules]}`` of HUBFLEET chains none of whose jumps names an existing interface."""
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True).stdout
    chains = {line[1:].split()[0]: [] for line in saved.splitlines() if line.startswith(":HUBFLEET-")}
    for line in saved.splitlines():
        match = re.match(r"^-A (\S+) -i (\S+) -j (HUBFLEET-\S+)$", line)
        if match and match.group(3) in chains:
            chains[match.group(3)].append((line, match.group(2)))
    return {chain: [rule for rule, _interface in jumps] for chain, jumps in chains.items()
            if not any(os.path.exists("/sys/class/net/%s" % interface) for _rule, interface in jumps)}


def prune():
    """Remove the orphan chains (jumps first); returns how many chains went."""
    orphans = orphan_chains()
    for jumps in orphans.values():
        for rule in jumps:
            subprocess.run(["iptables", "-w", "-D"] + rule.split()[1:], check=True)
    for chain in orphans:
        subprocess.run(["iptables", "-w", "-F", chain], check=True)
        subprocess.run(["iptables", "-w", "-X", chain], check=True)
    return len(orphans)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testbed.hub_rules", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["prune"])
    parser.parse_args(argv)
    print("removed %d HUBFLEET chains whose bridge is gone" % prune())


if __name__ == "__main__":
    main()
