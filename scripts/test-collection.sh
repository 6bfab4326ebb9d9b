#!/usr/bin/env bash
# Test the hubfleet.jupyterhub Ansible collection end to end:
#   1. copy the collection (git-tracked + untracked-not-ignored files, symlinks kept) to
#      $tmp/ansible_collections/hubfleet/jupyterhub, leaving out what galaxy.yml does not ship;
#   2. ansible-lint, production profile, offline (.ansible-lint), then
#      ansible-test sanity --venv   (no ignore file);
#   3. ansible-test units --venv;
#   4. ansible-test integration --local on the real Docker engine (every target);
#   5. ansible-galaxy collection build + install --offline into a fresh path, check the
#      symlinked module_utils survived, ansible-doc every module (with the shared attributes),
#      run one from the install.
#
# Runs inside the virtualenv scripts/run-tests.sh activates (requirements.txt installed).
# Environment: HUBFLEET_COLLECTION_STAGES (default "lint sanity units integration build"),
# HUBFLEET_INTEGRATION_TARGETS (default: all), HUBFLEET_SANITY_TESTS (default: all),
# HUBFLEET_TEST_PYTHON (default 3.11),
# HUBFLEET_KEEP_TMP=1 keeps the temporary tree.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python_version=${HUBFLEET_TEST_PYTHON:-3.11}
stages=${HUBFLEET_COLLECTION_STAGES:-lint sanity units integration build}
read -r -a targets <<<"${HUBFLEET_INTEGRATION_TARGETS:-}"
sanity_tests=()
for test in ${HUBFLEET_SANITY_TESTS:-}; do sanity_tests+=(--test "$test"); done
tmp=$(mktemp -d /tmp/hubfleet-collection.XXXXXX)
collection=$tmp/ansible_collections/hubfleet/jupyterhub
started=$SECONDS

step() { printf '\n==> [%ss] %s\n' "$((SECONDS - started))" "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

has_stage() { case " $stages " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

cleanup() {
  status=$?
  # The integration targets' shared helper image (tiny, labelled); everything else is
  # removed by each target itself. Only a run that ran them removes it: a run of the other
  # stages may go on beside one that still uses it (scripts/run-tests.sh does that).
  if has_stage integration; then
    docker image ls -q --filter label=hubfleet.test=collection-helper-image 2>/dev/null | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
  if [ "${HUBFLEET_KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
  printf '\n==> test-collection.sh finished in %ss with status %s\n' "$((SECONDS - started))" "$status"
  exit "$status"
}
trap cleanup EXIT


step "copy the collection to $collection"
mkdir -p "$collection"
# Files galaxy.yml's build_ignore does not ship are left out (the spawner's own tests, the
# test bed, tool state); everything else is what `ansible-galaxy collection build` packs.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$repo" && while IFS= read -r -d '' path; do
      # .gitignore stays: ansible-test lists files through git and must not scan tests/output.
      case "$path" in testbed/* | spawner/tests/* | spawner/benchmarks/* | tests/playbooks/*) continue ;; esac
      [ -e "$path" ] || [ -L "$path" ] || continue   # deleted but still in the index
      printf '%s\0' "$path"
    done) \
  | (cd "$repo" && tar --null --no-recursion -T - -cf -) \
  | tar -C "$collection" -xf -
(cd "$collection" && git init -q && git add -A && git -c user.name=test -c user.email=test@localhost commit -qm snapshot)
echo "copied $(cd "$collection" && git ls-files | wc -l) files"
for link in plugins/module_utils/naming.py plugins/module_utils/labels.py; do
  [ -L "$collection/$link" ] && [ -f "$collection/$link" ] || { echo "symlink $link missing or dangling in the copy" >&2; exit 1; }
done

# ansible-test --venv bootstraps pip with get-pip.py from ci-files.testing.ansible.com, which
# CI machines behind a proxy (like ours) cannot reach, and caches it under $HOME, which
# concurrent runs share. So ansible-test gets its own HOME, seeded with the machine's pip
# config and a stand-in bootstrap script that uses the standard library's ensurepip and
# then pip with that config (PyPI through the configured CA bundle).
ansible_test_home=$tmp/home
pip_version=$(python - <<'PY'
import re, ansible_test._internal.python_requirements as r, inspect
print(re.search(r"pip='([0-9.]+)'", inspect.getsource(r)).group(1))
PY
)
mkdir -p "$ansible_test_home/.ansible/test/cache"
[ -d "$HOME/.config/pip" ] && mkdir -p "$ansible_test_home/.config" && cp -r "$HOME/.config/pip" "$ansible_test_home/.config/"
ca_bundle=${PIP_CERT:-${SSL_CERT_FILE:-${REQUESTS_CA_BUNDLE:-}}}
cat >"$ansible_test_home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<PY
"""Stand-in for get-pip.py: ensurepip, then \`pip install\` of what ansible-test asks for.

ansible-test runs pip without the caller's environment, so the CA bundle (PIP_CERT /
SSL_CERT_FILE, for a TLS-inspecting proxy) goes into this venv's own pip.conf.
"""
import ensurepip
import os
import subprocess
import sys

CA_BUNDLE = "$ca_bundle"
if CA_BUNDLE:
    with open(os.path.join(sys.prefix, "pip.conf"), "w") as config:
        config.write("[global]\\ncert = %s\\n" % CA_BUNDLE)
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)  # sets PIP_CONFIG_FILE=/dev/null in os.environ: use the saved one
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args, env=environment))
PY
echo "ansible-test HOME: $ansible_test_home (pip $pip_version bootstrapped by ensurepip)"
ansible_test() { HOME=$ansible_test_home run ansible-test "$@"; }

cd "$collection"

if has_stage lint; then
  # The playbooks name this collection's roles (hubfleet.jupyterhub.*): found in the copy's tree.
  step "ansible-lint $(ansible-lint --nocolor --version 2>/dev/null | head -n 1 | cut -d' ' -f2) (profile and exclusions: .ansible-lint)"
  ANSIBLE_COLLECTIONS_PATH=$tmp run ansible-lint --nocolor --strict
fi

if has_stage sanity; then
  step "ansible-test sanity --venv --python $python_version"
  ansible_test sanity --venv --python "$python_version" --color no "${sanity_tests[@]}"
fi

if has_stage units; then
  step "ansible-test units --venv --python $python_version"
  ansible_test units --venv --python "$python_version" --color no
fi

if has_stage integration; then
  step "ansible-test integration --local --python $python_version ${targets[*]:-(all targets)}"
  docker info --format 'engine {{.ServerVersion}}, swarm {{.Swarm.LocalNodeState}}'
  ansible_test integration --local --python "$python_version" --color no "${targets[@]}"
fi

if has_stage build; then
  step "ansible-galaxy collection build and install --offline into a fresh path"
  run ansible-galaxy collection build "$collection" --output-path "$tmp/dist"
  tarball=$(ls "$tmp"/dist/hubfleet-jupyterhub-*.tar.gz)
  echo "module_utils in the tarball:"
  tar -tvzf "$tarball" | grep 'plugins/module_utils/' || true
  run ansible-galaxy collection install --offline "$tarball" -p "$tmp/installed" | tee "$tmp/install.log"
  # galaxy.yml's dependency (community.docker) is met by the copy inside the `ansible` package.
  grep -q "community.docker:.* is already installed" "$tmp/install.log" \
    || { echo "the install did not find community.docker already installed (galaxy.yml dependencies)" >&2; exit 1; }
  installed=$tmp/installed/ansible_collections/hubfleet/jupyterhub
  for util in naming labels; do
    # The build turns the symlinks into regular files (or keeps them): either way the
    # content must be the spawner's file.
    ls -l "$installed/plugins/module_utils/$util.py"
    cmp "$installed/plugins/module_utils/$util.py" "$repo/spawner/hubfleet_spawner/$util.py" \
      || { echo "installed module_utils/$util.py differs from spawner/hubfleet_spawner/$util.py" >&2; exit 1; }
  done
  export ANSIBLE_COLLECTIONS_PATH=$tmp/installed
  for module in "$collection"/plugins/modules/*.py; do
    name=$(basename "$module" .py)
    step "ansible-doc hubfleet.jupyterhub.$name (installed copy)"
    ansible-doc "hubfleet.jupyterhub.$name" >"$tmp/doc-$name.txt"
    head -n 1 "$tmp/doc-$name.txt"
    grep -q 'EXAMPLES' "$tmp/doc-$name.txt" && grep -q 'RETURN VALUES' "$tmp/doc-$name.txt" \
      || { echo "ansible-doc output of $name lacks EXAMPLES or RETURN VALUES" >&2; exit 1; }
    # The shared attributes fragment (plugins/doc_fragments/attributes.py) reaches every module.
    ansible-doc --json "hubfleet.jupyterhub.$name" | python -c '
import json, sys
name, doc = sys.argv[1], json.load(sys.stdin)[sys.argv[1]]["doc"]
attributes = doc.get("attributes", {})
for key in ("check_mode", "diff_mode", "idempotent"):
    if not attributes.get(key, {}).get("description") or not attributes[key].get("support"):
        sys.exit("ansible-doc of %s: attribute %s lacks a description or support: %r" % (name, key, attributes.get(key)))
print("attributes: " + ", ".join("%s=%s" % (key, attributes[key]["support"]) for key in sorted(attributes)))
' "hubfleet.jupyterhub.$name"
  done
  step "run a module from the installed collection (imports the symlinked module_utils)"
  run ansible localhost -c local -e "ansible_python_interpreter=$(command -v python)" \
    -m hubfleet.jupyterhub.user_volumes -a "state=query hub=hubfleet-test-installed-collection"
fi

step "all requested stages passed: $stages"
