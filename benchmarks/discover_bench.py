#!/usr/bin/env python3
"""Benchmark of `kubeboot discover`: 1 node against 12 nodes of a sandbox, over real SSH.

Run as root from the repository: `.venv/bin/python benchmarks/discover_bench.py [--rounds N]`.
Brings up a 12-node sandbox ("benchdisc"), times discover in-process (median of N rounds) and through the CLI
(one run each, Python start-up included), prints the figures and the ratio, and brings the sandbox down again.
The goal is 12 nodes in at most 2x the time of 1 node.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubeboot.discover.run import DiscoverOptions, discover
from kubeboot.discover.ssh import SshOptions
from kubeboot.discover.targets import parse_target
from kubeboot.sandbox import manager
from kubeboot.sandbox.state import state_root

NAME = "benchdisc"
SUBNET = "10.213.31.0/24"
NODES = 12


def timed_discover(addresses: list[str], ssh: SshOptions, rounds: int) -> tuple[float, list[float]]:
    """Median and all timings of in-process discovers of ``addresses`` (print only, nothing written)."""
    times = []
    for _ in range(rounds):
        options = DiscoverOptions(targets=[parse_target(a) for a in addresses], ssh=ssh, parallel=16)
        started = time.monotonic()
        result = discover(options, confirm=lambda report: False)
        times.append(time.monotonic() - started)
        if result.exit_code != 0:
            errors = [f"{h.target.spec}: {h.error}" for h in result.hosts if h.error]
            raise SystemExit(f"discover failed: {errors}")
    return statistics.median(times), times


def timed_cli(addresses: list[str], state: Path) -> float:
    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "kubeboot"), "discover", "--user", "root",
                    "--key", str(state / "id_ed25519"), "--known-hosts", str(state / "known_hosts"), "--json",
                    *addresses], check=True, capture_output=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="in-process rounds per figure (default: %(default)s)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (the sandbox)", file=sys.stderr)
        return 2
    print(f"host: {os.cpu_count()} CPUs; sandbox {NAME}: {NODES} nodes on {SUBNET}")
    try:
        started = time.monotonic()
        result = manager.up(manager.UpOptions(name=NAME, nodes=NODES, subnet=SUBNET, extra_nics=1,
                                              inventory=Path(tempfile.gettempdir()) / "kubeboot-benchdisc-hosts.yml"))
        print(f"sandbox up: {time.monotonic() - started:.1f}s")
        state = state_root() / NAME
        addresses = [node.address for node in sorted(result.state.nodes.values(), key=lambda n: n.index)]
        ssh = SshOptions(user="root", key_file=state / "id_ed25519", known_hosts=state / "known_hosts")
        timed_discover(addresses[:1], ssh, 1)  # warm-up: imports, first sshd fork on the node
        one, one_all = timed_discover(addresses[:1], ssh, args.rounds)
        many, many_all = timed_discover(addresses, ssh, args.rounds)
        cli_one = timed_cli(addresses[:1], state)
        cli_many = timed_cli(addresses, state)
        print("")
        print("| figure | value |")
        print("|---|---|")
        print(f"| discover 1 node, in-process (median of {args.rounds}) | {one:.2f} s |")
        print(f"| discover {NODES} nodes, in-process (median of {args.rounds}) | {many:.2f} s |")
        print(f"| ratio {NODES} / 1 (goal: at most 2.0) | {many / one:.2f} |")
        print(f"| `kubeboot discover` CLI, 1 node | {cli_one:.2f} s |")
        print(f"| `kubeboot discover` CLI, {NODES} nodes | {cli_many:.2f} s |")
        print(f"\nall rounds: 1 node {[round(t, 3) for t in one_all]}, {NODES} nodes {[round(t, 3) for t in many_all]}")
        return 0 if many <= 2 * one else 1
    finally:
        removed = manager.down(NAME)
        print(f"sandbox down: removed {len(removed)} items")


if __name__ == "__main__":
    sys.exit(main())
