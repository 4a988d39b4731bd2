#!/usr/bin/env python3
"""Benchmark of scaling out: one worker added to a 3-node and to a 12-node sandbox cluster with `site.yml --limit`.

Run as root from the repository: `.venv/bin/python benchmarks/scale_bench.py [--sizes 3,12]`.
For each size (layouts 1cp2w and 3cp9w, the stand-in) it brings up its own sandbox, forms the cluster with site.yml,
adds one worker to the sandbox and its inventory and runs `site.yml --limit NEW` twice (the join, then a no-op
re-run). For each run it prints the wall time, the controller's CPU time (user + system of ansible-playbook and its
workers: the RUSAGE_CHILDREN delta), the host-tasks (ok + failed + skipped of every host in the PLAY RECAP; ok
already counts the changed ones), the changed count and the hosts the recap lists; then the 12-node figures as
multiples of the 3-node ones (target: at most 1.2x for CPU and host-tasks). One sandbox at a time; each is brought
down again. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster_bench import recap  # the PLAY RECAP counts, read as the cluster benchmark reads them

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# size -> sandbox name, layout, layout with one worker more, the worker added, subnet
SIZES = {3: ("benchscale3", "1cp2w", "1cp3w", "worker3", "10.213.59.0/24"),
         12: ("benchscale12", "3cp9w", "3cp10w", "worker10", "10.213.60.0/24")}


@dataclass
class Run:
    seconds: float
    controller_cpu: float
    counts: dict[str, dict[str, int]]
    load: float

    @property
    def host_tasks(self) -> int:
        return sum(c.get("ok", 0) + c.get("failed", 0) + c.get("skipped", 0) for c in self.counts.values())

    @property
    def changed(self) -> int:
        return sum(c.get("changed", 0) for c in self.counts.values())


def playbook(inventory: Path, *args: str) -> Run:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        log = Path(tempfile.gettempdir()) / f"scale_bench-{inventory.parent.name}.log"
        log.write_text(done.stdout + "\n" + done.stderr)
        failed = [line for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        raise SystemExit(f"site.yml {' '.join(args)} failed on {inventory} (whole output: {log}):\n"
                         + "\n".join(failed[:20]) + f"\n{done.stdout[-3000:]}")
    return Run(seconds, cpu, recap(done.stdout), load)


def bench(size: int) -> dict[str, Run]:
    name, layout, grown, new, subnet = SIZES[size]
    kubeboot = [str(BIN / "kubeboot"), "sandbox"]
    with tempfile.TemporaryDirectory(prefix=f"kubeboot-{name}-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        up = [*kubeboot, "up", "--name", name, "--standin", "--subnet", subnet, "--inventory", str(inventory)]
        try:
            subprocess.run([*up, "--layout", layout], check=True, capture_output=True, text=True)
            runs = {"form the cluster": playbook(inventory)}
            subprocess.run([*up, "--layout", grown], check=True, capture_output=True, text=True)
            runs[f"add {new} (--limit {new})"] = playbook(inventory, "--limit", new)
            runs["no-op re-run (same limit)"] = playbook(inventory, "--limit", new)
        finally:
            subprocess.run([*kubeboot, "down", "--name", name], check=False, capture_output=True)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="3,12", help="comma-separated node counts among 3 and 12")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("scale_bench: needs root (sandbox nodes)")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print("| nodes | run | wall time | controller CPU | host-tasks | changed | hosts in the recap | load at start |")
    print("|---|---|---|---|---|---|---|---|")
    added: dict[int, Run] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        for what, run in bench(size).items():
            hosts = ", ".join(sorted(run.counts)) if len(run.counts) <= 3 else f"{len(run.counts)} hosts"
            print(f"| {size} ({SIZES[size][1]}) | {what} | {run.seconds:.0f} s | {run.controller_cpu:.1f} s | "
                  f"{run.host_tasks} | {run.changed} | {hosts} | {run.load:.1f} |", flush=True)
            if what.startswith("add "):
                added[size] = run
    if 3 in added and 12 in added:
        small, big = added[3], added[12]
        print(f"\nadding one worker, 12 nodes against 3: wall time {big.seconds / small.seconds:.2f}x, controller CPU "
              f"{big.controller_cpu / small.controller_cpu:.2f}x, host-tasks {big.host_tasks / small.host_tasks:.2f}x "
              "(target: at most 1.2x for CPU and host-tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
