#!/usr/bin/env python3
"""Side by side with a peer: the peer's playbook and kubeboot's site.yml on two sandboxes of the same layout.

Run as root from the repository:

    .venv/bin/python benchmarks/peer_bench.py PEER_DIR [--rounds 6] [--layout 1cp2w] [--profile DIR]

PEER_DIR holds the peer's playbook `peer.yml`, its `ansible.cfg` and the variables that point it at the stand-in
(../shared/peers/geerlingguy: geerlingguy.containerd + geerlingguy.kubernetes). Each round brings up two fresh
sandboxes with the stand-in, runs the peer on one and site.yml on the other from fresh nodes (cold), then each again
(no-op), the order alternating from round to round so that neither always runs first; then brings both down.
For every run it prints the wall time, the controller's CPU time (user + system of ansible-playbook and its workers:
the RUSAGE_CHILDREN delta), the host-tasks (ok + failed + skipped of every host in the PLAY RECAP), the ok and
changed counts and the host's 1-minute load when the run started; then the medians and the per-round ratios
(kubeboot / peer). With --profile DIR each run's whole output, with ansible.posix's profile_tasks callback, is
written to DIR. --strategy S runs site.yml with Ansible's strategy S (mitogen_linear: mitogen's, from
requirements.txt). Asserts nothing.
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

from kubeboot.sandbox.services import APT_SOURCES

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SANDBOXES = {"peer": ("benchpeer", "10.213.65.0/24"), "kubeboot": ("benchours", "10.213.66.0/24")}


@dataclass
class Run:
    seconds: float
    controller_cpu: float
    host_tasks: int
    ok: int
    changed: int
    load: float


def run(tool: str, inventory: Path, label: str, profile: Path | None) -> Run:
    if tool == "peer":
        peer = ARGS.peer_dir.resolve()
        cwd, config = peer, peer / "ansible.cfg"
        command = [str(BIN / "ansible-playbook"), "-i", str(inventory), "peer.yml",
                   "-e", f"peer_debian_mirror={APT_SOURCES[0][0]}"]
    else:
        cwd, config = REPO, REPO / "ansible.cfg"
        command = [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "PATH": f"{BIN}:{os.environ['PATH']}"}
    if ARGS.strategy and tool == "kubeboot":
        env["ANSIBLE_STRATEGY"] = ARGS.strategy
        if ARGS.strategy.startswith("mitogen"):
            import ansible_mitogen  # noqa: PLC0415 (only with --strategy mitogen_*)

            env["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
    if profile is not None:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "40"
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = (profile or Path(tempfile.gettempdir())) / f"peer_bench-{label}.log"
    if profile is not None or done.returncode != 0:
        log.write_text(done.stdout + "\n" + done.stderr)
    if done.returncode != 0:
        failed = [line for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        raise SystemExit(f"{tool} failed on {inventory} (whole output: {log}):\n" + "\n".join(failed[:20]))
    counts = recap(done.stdout).values()
    return Run(seconds, cpu, sum(c.get("ok", 0) + c.get("failed", 0) + c.get("skipped", 0) for c in counts),
               sum(c.get("ok", 0) for c in counts), sum(c.get("changed", 0) for c in counts), load)


def sandbox(action: str, tool: str, inventory: Path | None = None) -> None:
    name, subnet = SANDBOXES[tool]
    command = [str(BIN / "kubeboot"), "sandbox", action, "--name", name]
    if action == "up":
        command += ["--layout", ARGS.layout, "--standin", "--subnet", subnet, "--inventory", str(inventory)]
    subprocess.run(command, check=action == "up", capture_output=True, text=True)


def one_round(index: int) -> dict[tuple[str, str], Run]:
    order = ("peer", "kubeboot") if index % 2 == 0 else ("kubeboot", "peer")
    runs: dict[tuple[str, str], Run] = {}
    with tempfile.TemporaryDirectory(prefix="kubeboot-peer-bench-") as tmp:
        inventories = {tool: Path(tmp) / tool / "hosts.yml" for tool in order}
        try:
            for tool in order:
                inventories[tool].parent.mkdir()
                sandbox("up", tool, inventories[tool])
            for what in ("cold", "no-op"):
                for tool in order:
                    runs[tool, what] = run(tool, inventories[tool], f"{index + 1}-{tool}-{what}", ARGS.profile)
                    row(index + 1, tool, what, runs[tool, what])
        finally:
            for tool in order:
                sandbox("down", tool)
    return runs


def row(label: int | str, tool: str, what: str, item: Run) -> None:
    print(f"| {label} | {tool} | {what} | {item.seconds:.0f} s | {item.controller_cpu:.1f} s | {item.host_tasks} | "
          f"{item.ok} | {item.changed} | {item.load:.1f} |", flush=True)


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("peer_bench: needs root (sandbox nodes)")
    if not (ARGS.peer_dir / "peer.yml").is_file():
        raise SystemExit(f"peer_bench: {ARGS.peer_dir}/peer.yml not found: pass the peer's directory "
                         "(e.g. ../shared/peers/geerlingguy)")
    if ARGS.profile is not None:
        ARGS.profile.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}; layout {ARGS.layout}, "
          f"{ARGS.rounds} rounds")
    print("| round | tool | run | wall | controller CPU | host-tasks | ok | changed | load at start |")
    print("|---|---|---|---|---|---|---|---|---|")
    rounds = [one_round(index) for index in range(ARGS.rounds)]
    print("\nMedians (min-max), and the ratio kubeboot / peer per round (min-max):\n")
    print("| run | tool | wall | controller CPU | host-tasks | ok | changed |")
    print("|---|---|---|---|---|---|---|")
    for what in ("cold", "no-op"):
        for tool in ("peer", "kubeboot"):
            items = [r[tool, what] for r in rounds]
            cells = []
            for attribute in ("seconds", "controller_cpu", "host_tasks", "ok", "changed"):
                values = [getattr(i, attribute) for i in items]
                cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
            print(f"| {what} | {tool} | " + " | ".join(cells) + " |")
        for attribute, name in (("seconds", "wall"), ("controller_cpu", "controller CPU")):
            ratios = [getattr(r["kubeboot", what], attribute) / getattr(r["peer", what], attribute) for r in rounds]
            print(f"| {what} | ratio ({name}) | median {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}-{max(ratios):.2f}x) | | | | |")
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer_dir", type=Path, help="the peer's directory (peer.yml, ansible.cfg, group_vars)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--layout", default="1cp2w", help="sandbox layout of both sides (default 1cp2w)")
    parser.add_argument("--strategy", help="kubeboot's runs only: Ansible's strategy (e.g. mitogen_linear)")
    parser.add_argument("--profile", type=Path, help="write each run's output with a per-task profile here")
    return parser.parse_args()


ARGS = arguments() if __name__ == "__main__" else argparse.Namespace()

if __name__ == "__main__":
    sys.exit(main())
