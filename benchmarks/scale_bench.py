#!/usr/bin/env python3
"""Benchmark of scaling out: one worker added to a 3-node and to a 12-node sandbox cluster with `site.yml --limit`.

Run as root from the repository: `.venv/bin/python benchmarks/scale_bench.py [--rounds 3]`.
Both sandboxes (layouts 1cp2w and 3cp9w, the stand-in, each with one node more in the sandbox and its inventory) are
up side by side for the whole run, so that both sizes are measured under the same load from the nodes: each forms
its cluster with `site.yml --limit 'all:!NEW'`. Then every round, each step on both sizes before the next step, the
order of the sizes alternating from round to round: `site.yml --limit NEW` (the join; from round 2 on, of the node
reset in the round before), the same again (a no-op), `playbooks/reset.yml --limit NEW` (drained, reset and
deleted). For each run it prints the wall time, the controller's CPU time (user + system of ansible-playbook and its
workers: the RUSAGE_CHILDREN delta), the host-tasks (ok + failed + skipped of every host in the PLAY RECAP; ok
already counts the changed ones), the changed count, the hosts the recap lists and the 1-minute load at the start;
then, per step, the 12-node medians as multiples of the 3-node ones (target: at most 1.2x for CPU and host-tasks).
Both sandboxes are brought down at the end. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
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


def playbook(inventory: Path, path: str, *args: str) -> Run:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), path, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        log = Path(tempfile.gettempdir()) / f"scale_bench-{inventory.parent.name}.log"
        log.write_text(done.stdout + "\n" + done.stderr)
        failed = [line for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        raise SystemExit(f"{path} {' '.join(args)} failed on {inventory} (whole output: {log}):\n"
                         + "\n".join(failed[:20]) + f"\n{done.stdout[-3000:]}")
    return Run(seconds, cpu, recap(done.stdout), load)


def sandbox(action: str, size: int, *args: str) -> None:
    done = subprocess.run([str(BIN / "kubeboot"), "sandbox", action, "--name", SIZES[size][0], *args], check=False,
                          capture_output=True, text=True)
    if action == "up" and done.returncode != 0:
        raise SystemExit(f"kubeboot sandbox up --name {SIZES[size][0]} failed:\n{done.stdout[-3000:]}{done.stderr}")


def row(size: int, what: str, run: Run) -> None:
    hosts = ", ".join(sorted(run.counts)) if len(run.counts) <= 3 else f"{len(run.counts)} hosts"
    print(f"| {size} ({SIZES[size][1]}) | {what} | {run.seconds:.0f} s | {run.controller_cpu:.1f} s | "
          f"{run.host_tasks} | {run.changed} | {hosts} | {run.load:.1f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="add / no-op / remove rounds (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("scale_bench: needs root (sandbox nodes)")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print("| nodes | run | wall time | controller CPU | host-tasks | changed | hosts in the recap | load at start |")
    print("|---|---|---|---|---|---|---|---|")
    figures: dict[tuple[int, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="kubeboot-scale-") as tmp:
        inventories = {size: Path(tmp) / str(size) / "hosts.yml" for size in SIZES}
        try:
            for size, (_, _, grown, new, subnet) in SIZES.items():
                inventories[size].parent.mkdir()
                sandbox("up", size, "--layout", grown, "--standin", "--subnet", subnet,
                        "--inventory", str(inventories[size]))
                row(size, "form the cluster", playbook(inventories[size], "site.yml", "--limit", f"all:!{new}"))
            for number in range(1, args.rounds + 1):
                # The order alternates from round to round so that neither size always runs first.
                order = list(SIZES) if number % 2 else list(reversed(SIZES))
                steps = [("add" if number == 1 else "add again", "site.yml", ()),
                         ("no-op re-run", "site.yml", ()),
                         ("remove", "playbooks/reset.yml", ("-e", "reset_confirm=true"))]
                for what, path, extra in steps:
                    for size in order:
                        new = SIZES[size][3]
                        run = playbook(inventories[size], path, "--limit", new, *extra)
                        row(size, f"round {number}: {what} {new}", run)
                        figures.setdefault((size, what), []).append(run)
        finally:
            for size in SIZES:
                sandbox("down", size)
    print("\n12 nodes against 3 (medians over the rounds; target: at most 1.2x for CPU and host-tasks):")
    for what in ("add", "add again", "no-op re-run", "remove"):
        small, big = figures.get((3, what)), figures.get((12, what))
        if not small or not big:
            continue
        ratios = {name: statistics.median(getattr(r, name) for r in big)
                  / statistics.median(getattr(r, name) for r in small)
                  for name in ("seconds", "controller_cpu", "host_tasks")}
        print(f"  {what:<13} ({len(small)} run(s) each): wall time {ratios['seconds']:.2f}x, "
              f"controller CPU {ratios['controller_cpu']:.2f}x, host-tasks {ratios['host_tasks']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
