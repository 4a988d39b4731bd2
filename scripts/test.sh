#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: linters, unit, stand-in and sandbox tests (and, when
# KUBEBOOT_VAGRANT asks for it, the Vagrant tier on real VMs).
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
trap 'rm -rf "$basetemp"' EXIT  # and, below, stop_vagrant
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
# KUBEBOOT_VAGRANT=scenario runs the Vagrant scenario on real VMs (QEMU emulation here) alongside the rest, in a pytest
# process of its own: `molecule test -s vagrant` and the VM host's own checks; KUBEBOOT_VAGRANT=1 the whole Vagrant tier
# (also the nfs_server scenario, the NFS and NIC rename modules). Unset or 0: none of it. On 2 cores the VMs and the
# sandbox modules slow each other down: see README.md, "Tests", for the figures.
default=0
vagrant_tests=()
case "${KUBEBOOT_VAGRANT:-$default}" in
  0) echo "test: the Vagrant tier is not run (KUBEBOOT_VAGRANT=scenario or 1 runs it)" ;;
  scenario) vagrant_tests=(tests/vagrant/test_vm_host.py
                           "tests/vagrant/test_molecule_vagrant.py::test_scenario_passes_every_action") ;;
  1) vagrant_tests=(tests/vagrant) ;;
  *) echo "test: KUBEBOOT_VAGRANT=${KUBEBOOT_VAGRANT} is not one of 0, scenario, 1" >&2; exit 2 ;;
esac
vagrant_pid=""
stop_vagrant() {  # on an early exit: SIGINT, so that pytest's teardown destroys the VMs and the host services
  if [ -n "$vagrant_pid" ] && kill -0 "$vagrant_pid" 2>/dev/null; then
    kill -INT "$vagrant_pid" || true
    wait "$vagrant_pid" || true
  fi
  rm -rf "$basetemp"
}
trap stop_vagrant EXIT
if [ ${#vagrant_tests[@]} -gt 0 ]; then
  echo "test: the Vagrant tests run alongside (${vagrant_tests[*]}); their output follows the rest"
  pytest -q --durations=30 --basetemp="$basetemp/vagrant" -p no:xdist -m vagrant "$@" "${vagrant_tests[@]}" \
    > "$basetemp/vagrant.log" 2>&1 < /dev/null &
  vagrant_pid=$!
fi
# Two pytest workers (KUBEBOOT_TEST_WORKERS), each taking whole modules: the sandbox modules spend much of their time
# waiting on nodes, so two of them share the cores well. Each module's sandboxes have names and subnets of their own.
workers=${KUBEBOOT_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadfile)
status=0
pytest -q --durations=30 --basetemp="$basetemp/main" "${parallel[@]}" -m "not vagrant" "$@" || status=$?
main_status=0
check "$status" || main_status=$?
[ -n "$vagrant_pid" ] || exit "$main_status"
status=0
wait "$vagrant_pid" || status=$?
vagrant_pid=""
echo "== Vagrant tests (${vagrant_tests[*]})"
cat "$basetemp/vagrant.log"
vagrant_status=0
check "$status" || vagrant_status=$?
[ "$main_status" -eq 0 ] && exit "$vagrant_status"
exit "$main_status"
