#!/usr/bin/env python3
"""Benchmark of `kubeboot discover`: 1 node against 12 nodes of a sandbox, over real SSH.

Run as root from the repository: `.venv/bin/python benchmarks/discover_bench.py [--rounds N]`.
Brings up a 12-node sandbox ("benchdisc"), times discover in-process (median of N rounds) and through the CLI
(one run each, Python start-up included), prints the figures and the ratio, and brings the sandbox down again.
The goal is 12 nodes in at most 2x the time of 1 node.

The sandbox's nodes share this machine's cores with discover itself, so each figure also shows discover's own CPU
time per host and how busy the machine's cores were: with 12 nodes, their sshd, PAM sessions and the gather
commands are served by the same cores as the client, which real hosts would each do on their own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubeboot.discover.run import DiscoverOptions, discover
from kubeboot.discover.ssh import SshOptions
from kubeboot.discover.targets import parse_target
from kubeboot.sandbox import manager
from kubeboot.sandbox.state import state_root

NAME = "benchdisc"
SUBNET = "10.213.31.0/24"
NODES = 12


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all the machine's cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Figure:
    median: float
    times: list[float]
    client_cpu: float  # discover's own CPU seconds (median over the rounds)
    busy: float  # share of the machine's cores in use during the rounds (0..1)


def timed_discover(addresses: list[str], ssh: SshOptions, rounds: int) -> Figure:
    """Timings of in-process discovers of ``addresses`` (print only, nothing written)."""
    times, cpus = [], []
    busy_before, total_before = cpu_ticks()
    for _ in range(rounds):
        options = DiscoverOptions(targets=[parse_target(a) for a in addresses], ssh=ssh, parallel=16)
        started, cpu = time.monotonic(), time.process_time()
        result = discover(options, confirm=lambda report: False)
        times.append(time.monotonic() - started)
        cpus.append(time.process_time() - cpu)
        if result.exit_code != 0:
            errors = [f"{h.target.spec}: {h.error}" for h in result.hosts if h.error]
            raise SystemExit(f"discover failed: {errors}")
    busy_after, total_after = cpu_ticks()
    busy = (busy_after - busy_before) / max(1, total_after - total_before)
    return Figure(statistics.median(times), times, statistics.median(cpus), busy)


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
        timed_discover(addresses, ssh, 1)  # warm-up: imports, and every node's first login (its user manager)
        one = timed_discover(addresses[:1], ssh, args.rounds)
        many = timed_discover(addresses, ssh, args.rounds)
        cli_one = timed_cli(addresses[:1], state)
        cli_many = timed_cli(addresses, state)
        print("")
        print("| figure | value |")
        print("|---|---|")
        print(f"| discover 1 node, in-process (median of {args.rounds}) | {one.median:.2f} s |")
        print(f"| discover {NODES} nodes, in-process (median of {args.rounds}) | {many.median:.2f} s |")
        print(f"| ratio {NODES} / 1 (goal: at most 2.0) | {many.median / one.median:.2f} |")
        print(f"| `kubeboot discover` CLI, 1 node | {cli_one:.2f} s |")
        print(f"| `kubeboot discover` CLI, {NODES} nodes | {cli_many:.2f} s |")
        print(f"| ratio {NODES} / 1, CLI | {cli_many / cli_one:.2f} |")
        print(f"| discover's own CPU per host, 1 node / {NODES} nodes | {one.client_cpu * 1000:.0f} ms / "
              f"{many.client_cpu / NODES * 1000:.0f} ms |")
        print(f"| the machine's cores busy, 1 node / {NODES} nodes | {one.busy:.0%} / {many.busy:.0%} |")
        print(f"\nall rounds: 1 node {[round(t, 3) for t in one.times]}, "
              f"{NODES} nodes {[round(t, 3) for t in many.times]}")
        return 0
    finally:
        removed = manager.down(NAME)
        print(f"sandbox down: removed {len(removed)} items")


if __name__ == "__main__":
    sys.exit(main())
