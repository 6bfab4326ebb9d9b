#!/usr/bin/env bash
# Run the molecule `default` scenario against this machine's Docker engine.
# Expects the project's venv (requirements.txt) to be active, as scripts/run-tests.sh does;
# installs Chromium and makes sure the engine runs (testbed/bootstrap.sh --browser).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/testbed/bootstrap.sh" --browser
# The roles find the collection hubfleet.jupyterhub in this checkout.
mkdir -p .cache/collections/ansible_collections/hubfleet
ln -sfn ../../../.. .cache/collections/ansible_collections/hubfleet/jupyterhub
# molecule runs ansible-config and ansible-playbook from the active venv.
python_bin=$(command -v python3)
export PATH="$(dirname "$python_bin"):$PATH"
exec molecule test --scenario-name default "$@"
