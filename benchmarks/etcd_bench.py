#!/usr/bin/env python3
"""Benchmark of etcd backup and restore on a sandbox cluster holding a few thousand objects.

Run as root from the repository: `.venv/bin/python benchmarks/etcd_bench.py [--objects 3000] [--rounds 3]
[--layout 1cp1w]`. It brings up its own sandbox (stand-in control plane with its real etcd), runs site.yml,
creates --objects ConfigMaps (1 KiB of data each) in one namespace, then for each round: playbooks/etcd_backup.yml
(snapshot, checksum, copy to the controller), deletes a tenth of the ConfigMaps, and playbooks/etcd_restore.yml with
that snapshot; it checks that every ConfigMap is back. Prints per round and as medians: wall time, the controller's
CPU, host-tasks, the snapshot's size and keys; and the bare `etcdctl snapshot save` time on the node beside the
playbook's. Asserts nothing beyond the restored count; brings the sandbox down again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME, SUBNET = "benchetcd", "10.213.52.0/24"
NAMESPACE = "bench"
PKI = "/etc/kubernetes/pki/etcd"
ETCDCTL = (f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/ca.crt "
           f"--cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key")
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of ansible-playbook and its workers
    tasks: int  # host-tasks run (ok, summed over the hosts)


def playbook(inventory: Path, name: str, *extra: str) -> Run:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), name, *extra], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        log = Path(tempfile.gettempdir()) / f"etcd_bench-{Path(name).stem}.log"
        log.write_text(done.stdout + "\n" + done.stderr)
        raise SystemExit(f"{name} failed (whole output: {log}):\n{done.stdout[-3000:]}")
    tasks = 0
    for line in done.stdout.rsplit("PLAY RECAP", maxsplit=1)[-1].splitlines():
        match = re.search(r"\bok=(\d+)", line)
        if match:
            tasks += int(match[1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(seconds, cpu, tasks)


def node(host: str, script: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(BIN / "kubeboot"), "sandbox", "ssh", "--name", NAME, host, "--", script],
                          input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"on {host}: {script[:80]}...: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def configmaps(count: int, start: int = 0) -> str:
    payload = "x" * 1024
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}", "namespace": NAMESPACE},
              "data": {"payload": payload}} for i in range(start, start + count)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def count_configmaps() -> int:
    return len(node("cp1", f"{KUBECTL} get configmaps -n {NAMESPACE} -o name").split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layout", default="1cp1w")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("etcd_bench: needs root (sandbox nodes)")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}; layout {args.layout}, "
          f"{args.objects} ConfigMaps of 1 KiB")
    kubeboot = [str(BIN / "kubeboot"), "sandbox"]
    rows: list[tuple[Run, Run, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="kubeboot-etcd-bench-") as tmp:
        inventory, backups = Path(tmp) / "hosts.yml", Path(tmp) / "backups"
        try:
            subprocess.run([*kubeboot, "up", "--name", NAME, "--layout", args.layout, "--standin", "--subnet", SUBNET,
                            "--inventory", str(inventory)], check=True, capture_output=True, text=True)
            playbook(inventory, "site.yml")
            node("cp1", f"{KUBECTL} create namespace {NAMESPACE} >/dev/null")
            started = time.monotonic()
            for first in range(0, args.objects, 500):
                node("cp1", f"{KUBECTL} create -f - >/dev/null", configmaps(min(500, args.objects - first), first))
            print(f"created {count_configmaps()} ConfigMaps in {time.monotonic() - started:.0f} s")
            for _ in range(args.rounds):
                backup = playbook(inventory, "playbooks/etcd_backup.yml", "-e", f"etcd_backup_dir={backups}")
                bare = int(node("cp1", f"t=$(date +%s%N); {ETCDCTL} snapshot save /root/bench.db >/dev/null; "
                                       "echo $(( $(date +%s%N) - t )); rm -f /root/bench.db")) / 1e9
                snapshot = max(backups.rglob("*.db"), key=lambda p: p.stat().st_mtime)
                keys = int(json.loads(node("cp1", f"{ETCDCTL} get /registry --prefix --keys-only -w json"))["count"])
                victims = " ".join(f"cm-{i:05d}" for i in range(0, args.objects, 10))
                node("cp1", f"{KUBECTL} delete configmaps -n {NAMESPACE} {victims} >/dev/null")
                restore = playbook(inventory, "playbooks/etcd_restore.yml", "-e", f"etcd_restore_snapshot={snapshot}",
                                   "-e", "etcd_restore_confirm=true")
                back = count_configmaps()
                if back != args.objects:
                    raise SystemExit(f"after the restore {back} ConfigMaps, expected {args.objects}")
                rows.append((backup, restore, bare, snapshot.stat().st_size, keys))
        finally:
            subprocess.run([*kubeboot, "down", "--name", NAME], check=False, capture_output=True)
    print("| round | backup wall | backup controller CPU | backup host-tasks | bare snapshot save | snapshot size | "
          "keys | restore wall | restore controller CPU | restore host-tasks |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, (b, r, bare, size, keys) in enumerate(rows, 1):
        print(f"| {i} | {b.seconds:.1f} s | {b.cpu:.1f} s | {b.tasks} | {bare:.2f} s | {size / 2**20:.1f} MiB | "
              f"{keys} | {r.seconds:.1f} s | {r.cpu:.1f} s | {r.tasks} |")

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"| median | {med([b.seconds for b, *_ in rows]):.1f} s | {med([b.cpu for b, *_ in rows]):.1f} s | "
          f"{med([b.tasks for b, *_ in rows]):.0f} | {med([x[2] for x in rows]):.2f} s | "
          f"{med([x[3] for x in rows]) / 2**20:.1f} MiB | {med([x[4] for x in rows]):.0f} | "
          f"{med([r.seconds for _, r, *_ in rows]):.1f} s | {med([r.cpu for _, r, *_ in rows]):.1f} s | "
          f"{med([r.tasks for _, r, *_ in rows]):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
