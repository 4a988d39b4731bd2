#!/usr/bin/env python3
"""Benchmark of cluster formation: site.yml on 3 and 12 sandbox nodes with the stand-in.

Run as root from the repository: `.venv/bin/python benchmarks/cluster_bench.py [--sizes 3,12]`.
For each size (layouts 1cp2w and 3cp9w) it brings up its own sandbox, runs site.yml cold (from fresh nodes) and
again (no-op), and prints wall time, task and changed counts; and, after the cold run (pods running), the memory of
each node as its own cgroup on the host counts it (memory.usage_in_bytes; rss and cache of memory.stat) and the sum.
Asserts nothing; brings every sandbox down again.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubeboot.sandbox import cgroups
from kubeboot.sandbox.state import SandboxState

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZES = {3: ("benchflan3", "1cp2w", "10.213.40.0/24"), 12: ("benchflan12", "3cp9w", "10.213.41.0/24")}


def recap(output: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for line in output.rsplit("PLAY RECAP", maxsplit=1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            counts[match[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[2])}
    return counts


@dataclass
class Run:
    seconds: float
    counts: dict[str, dict[str, int]]
    controller_cpu: float  # user + system seconds of ansible-playbook and its workers
    load: float  # the host's 1-minute load average when the run started


def playbook(inventory: Path) -> Run:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        log = Path(tempfile.gettempdir()) / f"cluster_bench-{inventory.parent.name}.log"
        log.write_text(done.stdout + "\n" + done.stderr)
        failed = [line for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        raise SystemExit(f"site.yml failed on {inventory} (whole output: {log}):\n" + "\n".join(failed[:20])
                         + f"\n{done.stdout[-3000:]}")
    return Run(seconds, recap(done.stdout), cpu, load)


def totals(counts: dict[str, dict[str, int]]) -> tuple[int, int]:
    """Tasks run (ok counts changed ones too) and changed, summed over the hosts."""
    return sum(c.get("ok", 0) for c in counts.values()), sum(c.get("changed", 0) for c in counts.values())


MIB = 2**20


def memory_rows(size: int, name: str) -> list[str]:
    """Memory of each node of a running sandbox, from the node's memory cgroup on the host, and the sum (MiB)."""
    state = SandboxState.load(name)
    if state is None:
        return [f"| {size} nodes | (sandbox {name} not found) | | | |"]
    rows, total = [], cgroups.MemoryUse(0, 0, 0)
    for item in sorted(state.nodes.values(), key=lambda n: n.index):
        use = cgroups.memory_use(item.cgroups)
        if use is None:
            rows.append(f"| {size} nodes | {item.name} | (no memory cgroup) | | |")
            continue
        total = cgroups.MemoryUse(total.usage + use.usage, total.rss + use.rss, total.cache + use.cache)
        rows.append(f"| {size} nodes | {item.name} | {use.usage / MIB:.0f} | {use.rss / MIB:.0f} | "
                    f"{use.cache / MIB:.0f} |")
    rows.append(f"| {size} nodes | all | {total.usage / MIB:.0f} | {total.rss / MIB:.0f} | {total.cache / MIB:.0f} |")
    return rows


def bench(size: int) -> tuple[list[str], list[str]]:
    name, layout, subnet = SIZES[size]
    with tempfile.TemporaryDirectory(prefix=f"kubeboot-{name}-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        kubeboot = [str(BIN / "kubeboot"), "sandbox"]
        try:
            subprocess.run([*kubeboot, "up", "--name", name, "--layout", layout, "--standin", "--subnet", subnet,
                            "--inventory", str(inventory)], check=True, capture_output=True, text=True)
            cold = playbook(inventory)
            memory = memory_rows(size, name)
            warm = playbook(inventory)
        finally:
            subprocess.run([*kubeboot, "down", "--name", name], check=False, capture_output=True)
    rows = []
    for what, run in (("cold converge", cold), ("no-op re-run", warm)):
        tasks, changed = totals(run.counts)
        rows.append(f"| {size} nodes ({layout}) | {what} | {run.seconds:.0f} s | {tasks} | {changed} | "
                    f"{run.controller_cpu:.0f} s | {run.controller_cpu / size:.2f} s | {run.load:.1f} |")
    return rows, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="3,12", help="comma-separated node counts among 3 and 12")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("cluster_bench: needs root (sandbox nodes)")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print("| nodes | run | wall time | tasks (ok, all hosts) | changed | controller CPU | per node | load at start |")
    print("|---|---|---|---|---|---|---|---|")
    memory: list[str] = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows, node_memory = bench(size)
        memory += node_memory
        for row in rows:
            print(row, flush=True)
    print("\nMemory per node after the cold run (the node's cgroup on the host), MiB:\n")
    print("| nodes | node | usage | rss | cache |")
    print("|---|---|---|---|---|")
    for row in memory:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
