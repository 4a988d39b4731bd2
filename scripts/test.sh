#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: linters, unit tests and the sandbox tests.
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
# The Vagrant tier (two VMs under QEMU emulation, about 10 min more) runs when asked: KUBEBOOT_VAGRANT=1, or pass
# your own -m (for example -m vagrant).
if [ "${KUBEBOOT_VAGRANT:-0}" != 1 ] && [[ " $* " != *" -m "* ]]; then
  set -- -m "not vagrant" "$@"
  echo "test: the Vagrant tier is not run (KUBEBOOT_VAGRANT=1 runs it too)"
fi
# Two pytest workers (KUBEBOOT_TEST_WORKERS), each taking whole modules: the sandbox modules spend much of their time
# waiting on nodes, so two of them share the cores well. Each module's sandboxes have names and subnets of their own.
workers=${KUBEBOOT_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadfile)
# A short temporary base: the stand-in's simulated nodes bind UNIX sockets below their test's directory, and a
# socket path has at most 107 bytes (xdist's per-worker directories make pytest's default too long).
basetemp=$(mktemp -d /tmp/kbt.XXXX)
trap 'rm -rf "$basetemp"' EXIT
status=0
pytest -q --durations=30 --basetemp="$basetemp" "${parallel[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
