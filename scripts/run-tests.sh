#!/usr/bin/env bash
# Hubfleet's whole test suite, on a fresh machine or a used one:
#   ./scripts/run-tests.sh
# Installs and starts what the tests need (Docker engine, debootstrap, CHP, Chromium,
# a virtualenv with requirements.txt and the spawner), builds the images (cached by
# content hash), then runs every suite. Each suite runs even if an earlier one failed;
# the exit status is non-zero when any failed.
#
# HUBFLEET_SUITES picks suites (default: "spawner-unit spawner-integration swarm collection playbooks faults security molecule molecule-swarm").
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
suites=${HUBFLEET_SUITES:-spawner-unit spawner-integration swarm collection playbooks faults security molecule molecule-swarm}
started=$SECONDS
step() { printf '\n=== [%ss] %s\n' "$((SECONDS - started))" "$*"; }

step "bootstrap: Docker engine, debootstrap, configurable-http-proxy, Chromium"
./testbed/bootstrap.sh --browser || exit 1

step "virtualenv .venv: requirements.txt and the spawner"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || exit 1
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -e './spawner[test]' || exit 1
# shellcheck disable=SC1091
source .venv/bin/activate

step "images: Debian base and singleuser (skipped when their content hash is built)"
python -m testbed.images || exit 1

failed=()
passed=()
run_suite() {
  local name=$1
  shift
  case " $suites " in *" $name "*) ;; *) return 0 ;; esac
  step "suite $name: $*"
  if "$@"; then passed+=("$name"); else failed+=("$name"); fi
}

run_suite spawner-unit python -m pytest spawner/tests/unit -p no:cacheprovider -q
run_suite spawner-integration python -m pytest spawner/tests/integration -p no:cacheprovider -q -rA --durations=10
# A real three-node swarm of Docker-in-Docker hosts (testbed/swarm.py), SwarmSpawner on it.
run_suite swarm python -m pytest spawner/tests/swarm -p no:cacheprovider -q -rA --durations=10
run_suite collection ./scripts/test-collection.sh
# site.yml on this machine with one wrong setting at a time: refused before any change.
run_suite playbooks python -m pytest tests/playbooks -p no:cacheprovider -q -rA
# Fault drills (tests/faults/): what survives a dead server, a daemon restart, a reboot,
# an interrupted or misconfigured playbook, an upgrade, a lost worker.
if compgen -G "tests/faults/test_*.py" >/dev/null; then
  run_suite faults python -m pytest tests/faults -p no:cacheprovider -q -rA --durations=10
fi
# Security (tests/security/): network isolation of user servers, the hub's Docker API filter.
if compgen -G "tests/security/test_*.py" >/dev/null; then
  run_suite security python -m pytest tests/security -p no:cacheprovider -q -rA --durations=10
fi
if [ -x scripts/test-molecule.sh ]; then
  run_suite molecule ./scripts/test-molecule.sh
fi
# The fleet: site.yml on three Docker-in-Docker hosts forming a swarm (about 7 minutes).
run_suite molecule-swarm ./scripts/test-molecule-swarm.sh

step "summary after $((SECONDS - started))s"
echo "suites passed: ${passed[*]:-none}"
echo "suites failed: ${failed[*]:-none}"
[ "${#failed[@]}" -eq 0 ]
