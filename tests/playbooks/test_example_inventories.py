"""The example inventories the README points operators to pass the role's checks as written."""

import subprocess

import pytest

from testbed.site import ROOT, ansible_env, free_port

# Values the examples keep in a vault.
VAULTED = ["vault_github_client_secret=example-secret"]


@pytest.mark.parametrize("inventory", ["example", "course"])
def test_an_example_inventory_passes_the_checks(inventory):
    group_vars = ROOT / "inventory" / inventory / "group_vars" / "hubfleet.yml"
    argv = ["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.include_role",
            "-a", "name=hubfleet.jupyterhub.jupyterhub tasks_from=validate",
            "-e", "@%s" % group_vars, "-e", "jupyterhub_port=%d" % free_port()]
    for value in VAULTED:
        argv += ["-e", value]
    done = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
