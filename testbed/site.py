"""Deploy playbooks/site.yml on this machine for a test, and remove what it made.

``run_site`` runs the real playbook against inventory/local with a hub name, port and test
label of the test's own (the collection is this checkout, linked under .cache/collections);
``remove_deployment`` removes the hub's iptables rules and their saved settings
(testbed/hub_rules.py), every Docker object carrying the test label and the hub's
configuration directory.
"""

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import docker

from testbed.hub_rules import remove_hub_rules

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ansible_env():
    collections = ROOT / ".cache" / "collections" / "ansible_collections" / "hubfleet"
    collections.mkdir(parents=True, exist_ok=True)
    link = collections / "jupyterhub"
    if not link.is_symlink():
        link.symlink_to("../../../..")
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def run_site(name, port, label, settings=None, timeout=900):
    """site.yml for hub ``name`` on ``port``, its objects labelled hubfleet.test=``label``,
    with ``settings`` (role variables) on top; returns (rc, output)."""
    variables = {
        "jupyterhub_name": name,
        "jupyterhub_port": port,
        "jupyterhub_labels": {"hubfleet.test": label},
        "jupyterhub_mem_limit": "512M",
        "images_ca_bundle": "/etc/ssl/certs/ca-certificates.crt",
    }
    variables.update(settings or {})
    argv = ["ansible-playbook", "-i", str(ROOT / "inventory/local/hosts.yml"), str(ROOT / "playbooks/site.yml"),
            "-e", json.dumps(variables)]
    done = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return done.returncode, done.stdout + done.stderr


def remove_deployment(name, label):
    """Remove hub ``name``'s firewall rules, every object labelled for the test or the hub,
    and the hub's configuration directory."""
    try:
        remove_hub_rules(name)  # the hub network is named after the hub
    finally:
        client = docker.from_env()
        selectors = ({"label": "hubfleet.test=%s" % label}, {"label": "hubfleet.hub=%s" % name})
        # Containers first (the user servers carry only the hub's label), then what they used.
        for selector in selectors:
            for container in client.containers.list(all=True, filters=selector):
                container.remove(force=True)
        for selector in selectors:
            for volume in client.volumes.list(filters=selector):
                volume.remove(force=True)
            for network in client.networks.list(filters=selector):
                network.remove()
        shutil.rmtree("/etc/hubfleet/%s" % name, ignore_errors=True)
