#!/usr/bin/env bash
# Hubfleet's whole test suite, on a fresh machine or a used one:
#   ./scripts/run-tests.sh
# Installs and starts what the tests need (Docker engine, debootstrap, CHP, Chromium,
# a virtualenv with requirements.txt and the spawner), builds the images (cached by
# content hash), then runs every suite in two lanes at once: the DinD lane (suites that
# work inside Docker-in-Docker hosts of their own, and the collection's static checks)
# beside the host lane (suites that deploy on this machine's engine). Each suite runs even
# if an earlier one failed; the exit status is non-zero when any failed.
#
# HUBFLEET_SUITES picks suites (default: "spawner-unit spawner-integration collection collection-integration swarm faults-dind playbooks playbooks-services faults security molecule molecule-swarm").
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
suites=${HUBFLEET_SUITES:-spawner-unit spawner-integration collection collection-integration swarm faults-dind playbooks playbooks-services faults security molecule molecule-swarm}
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

step "images: Debian base, singleuser, hub, swarm node, other users' images, the test directory (skipped when their content hash is built)"
# Built once here, before the lanes, so two lanes never build the same image at once.
python -m testbed.images singleuser hub node user-images ldap || exit 1

# Two lanes run at the same time. The DinD lane works only inside Docker-in-Docker hosts of
# its own (the testbed swarm, the engine drills' host, molecule's fleet) and on files (the
# collection's static checks), so it shares nothing with the host lane but the machine's
# CPU; the host lane deploys on this machine's engine, one suite after the other. Each
# lane's suites run even if an earlier one failed; results go to one file.
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
# Drills on Docker-in-Docker hosts (tests/faults/test_fleet_*.py: the fleet;
# tests/faults/test_engine_*.py: a daemon restart, a reboot) belong to the DinD lane, the
# other drills to the host lane.
dind_drills=()
host_drills=()
for f in tests/faults/test_*.py; do
  [ -e "$f" ] || continue
  case "$f" in
    tests/faults/test_fleet_* | tests/faults/test_engine_*) dind_drills+=("$f") ;;
    *) host_drills+=("$f") ;;
  esac
done

# One pytest per file, all at once, each file's output after the others'; fails if any
# failed. For drill files that each bring their own Docker-in-Docker hosts and mostly wait
# on them (daemons starting, swarm heartbeats, the hub's poll): the suite takes about as long
# as its longest file.
pytest_files_at_once() {
  local logs status=0 pids=() f pid
  logs=$(mktemp -d /tmp/hubfleet-pytest-files.XXXXXX)
  for f in "$@"; do
    python -m pytest "$f" -p no:cacheprovider -q -rA --durations=10 >"$logs/$(basename "$f").log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || status=1
  done
  for f in "$@"; do
    echo "--- $f"
    cat "$logs/$(basename "$f").log"
  done
  rm -rf "$logs"
  return "$status"
}

# site.yml tests of the logins against their servers, ACME, Prometheus and culling
# (playbooks-services) run at the end of the DinD lane, which is otherwise done long before
# the host lane: on this machine's engine like the host lane's, each playbook run holding
# the host lock, every object named and labelled for its own hub. The other files of
# tests/playbooks are the host lane's playbooks suite.
playbook_services=()
playbook_others=()
for f in tests/playbooks/test_*.py; do
  [ -e "$f" ] || continue
  case "$f" in
    tests/playbooks/test_ldap_* | tests/playbooks/test_oidc_* | tests/playbooks/test_lti_login* | \
      tests/playbooks/test_acme_* | tests/playbooks/test_prometheus* | tests/playbooks/test_named_server_cull*)
      playbook_services+=("$f") ;;
    *) playbook_others+=("$f") ;;
  esac
done

dind_lane() {
  # The collection's ansible-lint, sanity, units and build: files only, no engine.
  run_suite collection env HUBFLEET_COLLECTION_STAGES="lint sanity units build" ./scripts/test-collection.sh
  # A real three-node swarm of Docker-in-Docker hosts (testbed/swarm.py), SwarmSpawner on it.
  run_suite swarm python -m pytest spawner/tests/swarm -p no:cacheprovider -q -rA --durations=10
  # A daemon restart and a reboot of a Docker-in-Docker host; a lost worker, a restarted
  # manager, a registry down on the testbed swarm.
  if [ "${#dind_drills[@]}" -gt 0 ]; then
    run_suite faults-dind pytest_files_at_once "${dind_drills[@]}"
  fi
  # The fleet: site.yml on three Docker-in-Docker hosts forming a swarm (about 7 minutes).
  run_suite molecule-swarm ./scripts/test-molecule-swarm.sh
  if [ "${#playbook_services[@]}" -gt 0 ]; then
    run_suite playbooks-services python -m pytest "${playbook_services[@]}" -p no:cacheprovider -q -rA --durations=10
  fi
}

host_lane() {
  run_suite spawner-unit python -m pytest spawner/tests/unit -p no:cacheprovider -q
  run_suite spawner-integration python -m pytest spawner/tests/integration -p no:cacheprovider -q -rA --durations=10
  # The collection's modules against this machine's engine (ansible-test integration).
  run_suite collection-integration env HUBFLEET_COLLECTION_STAGES=integration ./scripts/test-collection.sh
  # site.yml on this machine: one wrong setting at a time, refused before any change; LDAP login.
  run_suite playbooks python -m pytest "${playbook_others[@]}" -p no:cacheprovider -q -rA --durations=10
  # Fault drills (tests/faults/): what survives a dead server, a killed hub, an interrupted
  # or misconfigured playbook, a restore, an upgrade.
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
  *" collection "* | *" swarm "* | *" faults-dind "* | *" molecule-swarm "* | *" playbooks-services "*)
    step "DinD lane starts in the background (its lines are prefixed [dind lane])"
    # Line-buffered prefixing keeps the two lanes' output readable in one log.
    dind_lane > >(sed -u 's/^/[dind lane] /') 2>&1 &
    dind_lane_pid=$!
    ;;
esac
host_lane
if [ -n "${dind_lane_pid:-}" ]; then
  step "host lane done; waiting for the DinD lane"
  wait "$dind_lane_pid"
fi
sleep 1   # let the prefixing process flush the DinD lane's last lines

step "summary after $((SECONDS - started))s"
sort -k2 "$results"
passed=$(awk '$1 == "passed" {print $2}' "$results" | xargs)
failed=$(awk '$1 == "failed" {print $2}' "$results" | xargs)
rm -f "$results"
echo "suites passed: ${passed:-none}"
echo "suites failed: ${failed:-none}"
[ -z "$failed" ]
