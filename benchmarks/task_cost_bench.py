#!/usr/bin/env python3
"""What one host-task costs the controller: the same 30 tasks of one kind on every node of a sandbox, per kind.

Run as root from the repository: `.venv/bin/python benchmarks/task_cost_bench.py [--rounds 3] [--layout 1cp2w]`.
Brings up its own sandbox (no stand-in needed), then in every round runs, in turn, a play of no task and a play of 30
tasks of each kind on all nodes, with kubeboot's ansible.cfg (its vars plugins and the contract's defaults
included): a skipped task (`when` false), a task that runs on the controller only (`set_fact`), and two that run a
module on the node (`stat`, `command`). Prints per kind the medians of wall time and controller CPU (user + system of
ansible-playbook and its workers), and per host-task the CPU and wall time above the empty play's. Asserts nothing;
brings the sandbox down again.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME, SUBNET = "benchtask", "10.213.67.0/24"
TASKS = 30
KINDS = {
    "empty": "",
    "skipped": "      ansible.builtin.debug:\n        msg: x\n      when: kubeboot_bench_never is defined\n",
    "set_fact": "      ansible.builtin.set_fact:\n        kubeboot_bench_{i}: 1\n",
    "stat": "      ansible.builtin.stat:\n        path: /etc/hostname\n",
    "command": "      ansible.builtin.command: 'true'\n      changed_when: false\n",
}


def write_plays(directory: Path) -> dict[str, Path]:
    plays = {}
    for kind, body in KINDS.items():
        tasks = "".join(f"    - name: Task {i}\n" + body.format(i=i) for i in range(TASKS)) if body else ""
        path = directory / f"{kind}.yml"
        path.write_text("---\n- name: Bench\n  hosts: k8s_cluster\n  gather_facts: false\n  tasks:"
                        + ("\n" + tasks if tasks else " []\n"))
        plays[kind] = path
    return plays


def run(play: Path, inventory: Path) -> tuple[float, float]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(play)], cwd=REPO, env=env,
                   capture_output=True, check=True)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layout", default="1cp2w")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("task_cost_bench: needs root (sandbox nodes)")
    kubeboot = [str(BIN / "kubeboot"), "sandbox"]
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="kubeboot-taskbench-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        plays = write_plays(Path(tmp))
        try:
            subprocess.run([*kubeboot, "up", "--name", NAME, "--layout", args.layout, "--subnet", SUBNET,
                            "--inventory", str(inventory)], check=True, capture_output=True, text=True)
            hosts = len([line for line in inventory.read_text().splitlines() if "ansible_host:" in line])
            for _ in range(args.rounds):
                for kind, play in plays.items():
                    results[kind].append(run(play, inventory))
        finally:
            subprocess.run([*kubeboot, "down", "--name", NAME], check=False, capture_output=True)
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; {hosts} nodes ({args.layout}), {TASKS} tasks per "
          f"play, {args.rounds} rounds (medians)")
    print("| play | wall | controller CPU | per host-task: CPU | per host-task: wall |")
    print("|---|---|---|---|---|")
    base_wall = statistics.median(r[0] for r in results["empty"])
    base_cpu = statistics.median(r[1] for r in results["empty"])
    for kind, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        per = "" if kind == "empty" else (f"{(cpu - base_cpu) / (TASKS * hosts) * 1000:.0f} ms | "
                                          f"{(wall - base_wall) / (TASKS * hosts) * 1000:.0f} ms")
        print(f"| {kind} | {wall:.1f} s | {cpu:.1f} s | {per or ' | '} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
