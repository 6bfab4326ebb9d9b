#!/usr/bin/env bash
# Hubfleet's whole test suite, on a fresh machine or a used one:
#   ./scripts/run-tests.sh
# Installs and starts what the tests need (Docker engine, debootstrap, CHP, Chromium,
# a virtualenv with requirements.txt and the spawner), builds the images (cached by
# content hash), then runs every suite in two lanes at once: the swarm lane (suites that
# work inside Docker-in-Docker hosts of their own) beside the host lane (suites that deploy
# on this machine's engine). Each suite runs even if an earlier one failed; the exit status
# is non-zero when any failed.
#
# HUBFLEET_SUITES picks suites (default: "spawner-unit spawner-integration swarm faults-fleet collection playbooks faults security molecule molecule-swarm").
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
suites=${HUBFLEET_SUITES:-spawner-unit spawner-integration swarm faults-fleet collection playbooks faults security molecule molecule-swarm}
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

# Two lanes run at the same time. The swarm lane works only inside Docker-in-Docker hosts
# of its own (the testbed swarm, molecule's fleet), so it shares nothing with the host lane
# but the machine's CPU; the host lane deploys on this machine's engine, one suite after the
# other. Each lane's suites run even if an earlier one failed; results go to one file.
results=$(mktemp /tmp/hubfleet-suites.XXXXXX)
run_suite() {
  local name=$1
  shift
  case " $suites " in *" $name "*) ;; *) return 0 ;; esac
  step "suite $name: $*"
  local began=$SECONDS
  if "$@"; then
    echo "passed $name $((SECONDS - began))s" >>"$results"
  else
    echo "failed $name $((SECONDS - began))s" >>"$results"
  fi
}
# Fleet drills (tests/faults/test_fleet_*.py) belong to the swarm lane, the other drills to the host lane.
fleet_drills=()
for f in tests/faults/test_fleet_*.py; do [ -e "$f" ] && fleet_drills+=("$f"); done
host_drills=()
for f in tests/faults/test_*.py; do
  [ -e "$f" ] || continue
  case "$f" in tests/faults/test_fleet_*) ;; *) host_drills+=("$f") ;; esac
done

swarm_lane() {
  # A real three-node swarm of Docker-in-Docker hosts (testbed/swarm.py), SwarmSpawner on it.
  run_suite swarm python -m pytest spawner/tests/swarm -p no:cacheprovider -q -rA --durations=10
  # A lost worker, a restarted manager, a registry down (testbed swarm).
  if [ "${#fleet_drills[@]}" -gt 0 ]; then
    run_suite faults-fleet python -m pytest "${fleet_drills[@]}" -p no:cacheprovider -q -rA --durations=10
  fi
  # The fleet: site.yml on three Docker-in-Docker hosts forming a swarm (about 7 minutes).
  run_suite molecule-swarm ./scripts/test-molecule-swarm.sh
}

host_lane() {
  run_suite spawner-unit python -m pytest spawner/tests/unit -p no:cacheprovider -q
  run_suite spawner-integration python -m pytest spawner/tests/integration -p no:cacheprovider -q -rA --durations=10
  run_suite collection ./scripts/test-collection.sh
  # site.yml on this machine with one wrong setting at a time: refused before any change.
  run_suite playbooks python -m pytest tests/playbooks -p no:cacheprovider -q -rA
  # Fault drills (tests/faults/): what survives a dead server, a daemon restart, a reboot,
  # an interrupted or misconfigured playbook, a restore, an upgrade.
  if [ "${#host_drills[@]}" -gt 0 ]; then
    run_suite faults python -m pytest "${host_drills[@]}" -p no:cacheprovider -q -rA --durations=10
  fi
  # Security (tests/security/): network isolation of user servers, the hub's Docker API filter.
  if compgen -G "tests/security/test_*.py" >/dev/null; then
    run_suite security python -m pytest tests/security -p no:cacheprovider -q -rA --durations=10
  fi
  if [ -x scripts/test-molecule.sh ]; then
    run_suite molecule ./scripts/test-molecule.sh
  fi
}

case " $suites " in
  *" swarm "* | *" faults-fleet "* | *" molecule-swarm "*)
    step "swarm lane starts in the background (its lines are prefixed [swarm lane])"
    # Line-buffered prefixing keeps the two lanes' output readable in one log.
    swarm_lane > >(sed -u 's/^/[swarm lane] /') 2>&1 &
    swarm_lane_pid=$!
    ;;
esac
host_lane
if [ -n "${swarm_lane_pid:-}" ]; then
  step "host lane done; waiting for the swarm lane"
  wait "$swarm_lane_pid"
fi
sleep 1   # let the prefixing process flush the swarm lane's last lines

step "summary after $((SECONDS - started))s"
sort -k2 "$results"
passed=$(awk '$1 == "passed" {print $2}' "$results" | xargs)
failed=$(awk '$1 == "failed" {print $2}' "$results" | xargs)
rm -f "$results"
echo "suites passed: ${passed:-none}"
echo "suites failed: ${failed:-none}"
[ -z "$failed" ]
