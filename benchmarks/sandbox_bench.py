#!/usr/bin/env python3
"""Benchmark of the sandbox: rootfs build from nothing, `up` of 3 and 12 nodes with a warm cache, idle memory.

Run as root from the repository: `.venv/bin/python benchmarks/sandbox_bench.py [--skip-rootfs]`.
Prints figures; asserts nothing. Everything it starts it brings down again.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubeboot.sandbox import manager, rootfs
from kubeboot.sandbox.state import SandboxState

NAME = "bench"
SUBNET = "10.213.20.0/24"


def rootfs_build_seconds() -> float:
    """Build the node root filesystem into an empty, temporary cache."""
    with tempfile.TemporaryDirectory(prefix="kubeboot-bench-cache-") as cache:
        previous = os.environ.get("KUBEBOOT_CACHE")
        os.environ["KUBEBOOT_CACHE"] = cache
        try:
            started = time.monotonic()
            rootfs.ensure_rootfs()
            return time.monotonic() - started
        finally:
            if previous is None:
                del os.environ["KUBEBOOT_CACHE"]
            else:
                os.environ["KUBEBOOT_CACHE"] = previous


def timed_up(nodes: int) -> float:
    started = time.monotonic()
    manager.up(manager.UpOptions(name=NAME, nodes=nodes, subnet=SUBNET,
                                 inventory=Path(tempfile.gettempdir()) / "kubeboot-bench-hosts.yml"))
    return time.monotonic() - started


def _mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def _processes() -> dict[int, tuple[int, str]]:
    """PID -> (parent PID, command line) for every process."""
    table = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            table[int(proc.name)] = (ppid, cmdline)
    return table


def node_memory_kb(state: SandboxState, node: str) -> tuple[int, int]:
    """(RSS, PSS) in kB of a node: its runner, nspawn, and every process booted inside it."""
    table = _processes()
    marker = f"kubeboot-sandbox-runner:{NAME}:{node}"
    members = {pid for pid, (_, cmdline) in table.items() if marker in cmdline}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in members} - members
        members |= children
        grew = bool(children)
    rss = pss = 0
    for pid in members:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-rootfs", action="store_true", help="do not time a rootfs build from nothing")
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="settle time before measuring memory")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, kernel {platform.release()}")
    rootfs.ensure_rootfs()  # the warm cache the `up` figures are about
    if not args.skip_rootfs:
        print(f"rootfs build from nothing:     {rootfs_build_seconds():6.1f} s")
    try:
        manager.down(NAME)
        print(f"up, 3 nodes (warm cache):      {timed_up(3):6.1f} s")
        manager.down(NAME)
        time.sleep(2)
        available_before = _mem_available_kb()
        print(f"up, 12 nodes (warm cache):     {timed_up(12):6.1f} s")
        time.sleep(args.idle_seconds)
        used_per_node = (available_before - _mem_available_kb()) / 12 / 1024
        state = SandboxState.load(NAME)
        assert state is not None
        figures = [node_memory_kb(state, node) for node in state.nodes]
        rss = sum(f[0] for f in figures) / len(figures) / 1024
        pss = sum(f[1] for f in figures) / len(figures) / 1024
        print(f"memory per idle node (12 up):  {pss:6.1f} MB PSS, {rss:6.1f} MB RSS, "
              f"{used_per_node:6.1f} MB of MemAvailable")
    finally:
        manager.down(NAME)
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run the benchmark as root")
    shutil.which("systemd-nspawn") or sys.exit("systemd-nspawn missing: run scripts/setup.sh")
    subprocess.run(["true"], check=True)
    sys.exit(main())
