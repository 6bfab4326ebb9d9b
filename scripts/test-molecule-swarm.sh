#!/usr/bin/env bash
# Run the molecule `swarm` scenario: the fleet (site.yml with hubfleet_managers and
# hubfleet_workers) on three Docker-in-Docker hosts of this machine, then verify, then
# destroy them by label. Expects the project's venv (requirements.txt) to be active, as
# scripts/run-tests.sh does; makes sure this machine's engine runs (testbed/bootstrap.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/testbed/bootstrap.sh"
# The roles find the collection hubfleet.jupyterhub in this checkout.
mkdir -p .cache/collections/ansible_collections/hubfleet
ln -sfn ../../../.. .cache/collections/ansible_collections/hubfleet/jupyterhub
# molecule runs ansible-config and ansible-playbook from the active venv.
python_bin=$(command -v python3)
export PATH="$(dirname "$python_bin"):$PATH"
exec molecule test --scenario-name swarm "$@"
