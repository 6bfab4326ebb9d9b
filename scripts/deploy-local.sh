#!/usr/bin/env bash
# Deploy a working Hubfleet JupyterHub on this machine from a fresh clone, in one command:
#
#   ./scripts/deploy-local.sh [extra ansible-playbook arguments, e.g. -e jupyterhub_port=8001]
#
# Makes a Python venv with Ansible (.cache/deploy-venv), then runs playbooks/site.yml
# against localhost (inventory/local): the docker_engine role installs and starts the
# Docker engine when needed, the images role builds the images (cached by content hash),
# the jupyterhub role starts the hub. Prints the URL and how to log in as admin.
# Environment: HUBFLEET_PORT (default 8000), HUBFLEET_NAME (default hubfleet).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[deploy-local] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "run as root (it installs packages and runs Docker)"; exit 1; }
port=${HUBFLEET_PORT:-8000}
name=${HUBFLEET_NAME:-hubfleet}

venv="$root/.cache/deploy-venv"
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  log "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  log "creating $venv with Ansible and the Docker SDK"
  python3 -m venv "$venv"
  # The same pins as requirements.txt, only the controller's share of it.
  grep -E '^(ansible-core|docker|cryptography|requests)\b' requirements.txt \
    | "$venv/bin/pip" install --quiet --disable-pip-version-check -r /dev/stdin
fi

# The roles use the collection hubfleet.jupyterhub from this checkout.
mkdir -p .cache/collections/ansible_collections/hubfleet
ln -sfn ../../../.. .cache/collections/ansible_collections/hubfleet/jupyterhub

log "running playbooks/site.yml against this machine"
PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg" \
  "$venv/bin/ansible-playbook" -i inventory/local/hosts.yml playbooks/site.yml \
  -e "jupyterhub_port=$port" -e "jupyterhub_name=$name" "$@"

cat <<MSG

Hubfleet JupyterHub is running:  http://localhost:$port/
Log in as admin: user "admin", password in /etc/hubfleet/$name/admin-password
  (read it with: sudo cat /etc/hubfleet/$name/admin-password)
Other users sign up at http://localhost:$port/hub/signup; the admin authorises them
at http://localhost:$port/hub/authorize.
MSG
