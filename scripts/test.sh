#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: linters, unit, stand-in and sandbox tests, then the Vagrant
# scenario on real VMs (KUBEBOOT_VAGRANT below).
# Extra arguments go to pytest (for example: scripts/test.sh -k sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== lint"
ruff check .
mypy
yamllint --strict .
ansible-lint --offline -q

echo "== tests"
# A short temporary base: the stand-in's simulated nodes bind UNIX sockets below their test's directory, and a
# socket path has at most 107 bytes (xdist's per-worker directories make pytest's default too long).
basetemp=$(mktemp -d /tmp/kbt.XXXX)
trap 'rm -rf "$basetemp"' EXIT
check() {  # pytest's exit status, where "no tests collected" (5) is a failure too
  if [ "$1" -eq 5 ]; then
    echo "test: pytest collected no tests: that is a failure" >&2
    return 1
  fi
  return "$1"
}
# Your own -m (for example -m vagrant) runs just that, in one pytest run.
if [[ " $* " == *" -m "* ]]; then
  status=0
  pytest -q --durations=30 --basetemp="$basetemp" -p no:xdist "$@" || status=$?
  check "$status"
  exit $?
fi
# The Vagrant scenario on real VMs (QEMU emulation here) runs after the rest, in a pytest process of its own:
# `molecule test -s vagrant` and the VM host's own checks. KUBEBOOT_VAGRANT=scenario (the default when no pytest
# arguments are given, as in CI), 1 for the whole Vagrant tier (also the nfs_server scenario, the NFS and NIC rename
# modules), 0 for none of it. Not alongside the rest: on 2 cores the emulated VMs and the sandbox modules slow each
# other down until SSH times out (README.md, "Tests").
vagrant_default=scenario
[ $# -gt 0 ] && vagrant_default=0
vagrant_tests=()
case "${KUBEBOOT_VAGRANT:-$vagrant_default}" in
  0) ;;
  scenario) vagrant_tests=(tests/vagrant/test_vm_host.py
                           "tests/vagrant/test_molecule_vagrant.py::test_scenario_passes_every_action") ;;
  1) vagrant_tests=(tests/vagrant) ;;
  *) echo "test: KUBEBOOT_VAGRANT=${KUBEBOOT_VAGRANT} is not one of 0, scenario, 1" >&2; exit 2 ;;
esac
# Two pytest workers (KUBEBOOT_TEST_WORKERS), each taking whole modules: the sandbox modules spend much of their time
# waiting on nodes, so two of them share the cores well. Each module's sandboxes have names and subnets of their own.
workers=${KUBEBOOT_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadfile)
status=0
pytest -q --durations=30 --basetemp="$basetemp/main" "${parallel[@]}" -m "not vagrant" "$@" || status=$?
check "$status" || exit $?
if [ ${#vagrant_tests[@]} -eq 0 ]; then
  echo "test: the Vagrant tier is not run (KUBEBOOT_VAGRANT=scenario or 1 runs it)"
  exit 0
fi
status=0
pytest -q --durations=30 --basetemp="$basetemp/vagrant" -p no:xdist -m vagrant "$@" "${vagrant_tests[@]}" || status=$?
check "$status"
