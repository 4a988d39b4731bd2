#!/usr/bin/env python3
"""Benchmark of cluster formation: site.yml on 3 and 12 sandbox nodes with the stand-in.

Run as root from the repository: `.venv/bin/python benchmarks/cluster_bench.py [--sizes 3,12]`.
For each size (layouts 1cp2w and 3cp9w) it brings up its own sandbox, runs site.yml cold (from fresh nodes) and
again (no-op), and prints wall time, task and changed counts. Asserts nothing; brings every sandbox down again.
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


def bench(size: int) -> list[str]:
    name, layout, subnet = SIZES[size]
    with tempfile.TemporaryDirectory(prefix=f"kubeboot-{name}-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        kubeboot = [str(BIN / "kubeboot"), "sandbox"]
        try:
            subprocess.run([*kubeboot, "up", "--name", name, "--layout", layout, "--standin", "--subnet", subnet,
                            "--inventory", str(inventory)], check=True, capture_output=True, text=True)
            cold = playbook(inventory)
            warm = playbook(inventory)
        finally:
            subprocess.run([*kubeboot, "down", "--name", name], check=False, capture_output=True)
    rows = []
    for what, run in (("cold converge", cold), ("no-op re-run", warm)):
        tasks, changed = totals(run.counts)
        rows.append(f"| {size} nodes ({layout}) | {what} | {run.seconds:.0f} s | {tasks} | {changed} | "
                    f"{run.controller_cpu:.0f} s | {run.load:.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="3,12", help="comma-separated node counts among 3 and 12")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("cluster_bench: needs root (sandbox nodes)")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print("| nodes | run | wall time | tasks (ok, all hosts) | changed | controller CPU | load at start |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for row in bench(size):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
