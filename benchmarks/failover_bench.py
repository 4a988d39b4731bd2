#!/usr/bin/env python3
"""Benchmark of the HA API endpoint's failover: how long the API cannot be reached through the VIP when the node
holding it goes away.

Run as root from the repository:
`.venv/bin/python benchmarks/failover_bench.py [--tries 3] [--layout 3cp1w] [--advert-interval 0.5] [--load 240]`.
It brings up its own sandbox (stand-in control planes, each with its real etcd), runs site.yml with
kube_control_plane_lb keepalived, and then, for each try, takes the VIP holder away in two ways, alternating which
comes first: its API server fails for 10 s (the stand-in's apiserver-down marker: keepalived's check fails and the
node gives the VIP up) and the node is powered off at once (`systemctl poweroff --force --force`: nothing is stopped,
keepalived sends no goodbye, the others notice the missing adverts). A client on the host calls GET /readyz through
the VIP every 0.2 s with a 1 s timeout meanwhile. Prints per try and as medians: the longest time without an answer,
the calls and failed calls, the holder before and after, and the load at the start. After a power-off the node is
started again and waited for (it comes back as a backup: the VIP stays where it went).

With --load SECONDS, after the tries: every node runs as many busy loops as the machine has CPUs for that long
(the nodes share the host's CPUs: with 4 nodes on 2 cores, 8 loops), while the client keeps calling through the VIP
and the VIP holder is looked up every second; prints the holder changes seen, keepalived's state transitions in the
control planes' journals (`Entering MASTER/BACKUP/FAULT STATE`) and the failed calls. With sub-second VRRP adverts a
node starved of CPU for a moment would miss adverts and the others would take the VIP: a spurious failover.
--advert-interval sets kube_control_plane_vip_advert_interval (default: the contract's). Brings the sandbox down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.sandbox.ha_probe import Outage, Prober  # noqa: E402

BIN = Path(sys.executable).parent
NAME, SUBNET, VIP, PORT = "benchha", "10.213.56.0/24", "10.213.56.100", 8443
CASES = ("api-server-fails", "power-off")


def kubeboot(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "kubeboot"), *args], input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"kubeboot {' '.join(args)[:120]}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def node(host: str, script: str, check: bool = True) -> str:
    return kubeboot("sandbox", "ssh", "--name", NAME, host, "--", script, check=check).stdout


def holders(control_planes: list[str]) -> list[str]:
    return [cp for cp in control_planes if node(cp, f"ip -o -4 addr show to {VIP}/32", check=False).strip()]


def one_holder(control_planes: list[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = holders(control_planes)
        if len(found) == 1:
            return found[0]
        if time.monotonic() > deadline:
            raise SystemExit(f"the VIP is held by {found or 'nobody'} after {timeout} s")
        time.sleep(1)


def ready_again(host: str, address: str, timeout: float = 600) -> None:
    """The node's API server answers on its own address and its keepalived and haproxy run."""
    deadline = time.monotonic() + timeout
    while True:
        out = node(host, "kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=3s "
                         f"--server https://{address}:6443 get --raw /readyz 2>/dev/null; echo; "
                         "systemctl is-active keepalived haproxy", check=False).split()
        if out == ["ok", "active", "active"]:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{host} did not come back within {timeout} s: {out}")
        time.sleep(2)


def load_period(seconds: int, addresses: dict[str, str]) -> tuple[str, int, dict[str, int], int, int]:
    """Busy loops on every node for `seconds`; the VIP holder's changes, keepalived's state transitions per control
    plane, the calls and failed calls through the VIP meanwhile."""
    control_planes = [name for name in addresses if name.startswith("cp")]
    first = one_holder(control_planes)
    loops = os.cpu_count() or 2
    since = int(time.time())
    units = [f"kubeboot-bench-load-{i}" for i in range(loops)]
    for host in addresses:
        node(host, "; ".join(f"systemd-run --quiet --collect --unit={unit} timeout {seconds} "
                             "sh -c 'while :; do :; done'" for unit in units))
    prober = Prober(VIP, PORT, interval=0.2, timeout=1.0, limit=seconds + 5.0)
    prober.start()
    changes, last = 0, first
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            found = holders(control_planes)
            if len(found) == 1 and found[0] != last:
                changes, last = changes + 1, found[0]
            elif len(found) != 1:
                print(f"  VIP held by {found or 'nobody'} at +{seconds - (end - time.monotonic()):.0f} s", flush=True)
            time.sleep(1)
    finally:
        for host in addresses:
            node(host, f"systemctl stop {' '.join(units)} 2>/dev/null; true", check=False)
    prober.done.set()
    prober.join()
    outage = prober.outage()
    transitions = {}
    for cp in control_planes:
        journal = node(cp, f"journalctl -u keepalived --since @{since} -o cat --no-pager", check=False)
        transitions[cp] = len(re.findall(r"Entering (MASTER|BACKUP|FAULT) STATE", journal))
    return first, changes, transitions, outage.calls, outage.failed


def take_away(case: str, addresses: dict[str, str], layout: str, inventory: Path) -> tuple[str, str, Outage]:
    control_planes = [name for name in addresses if name.startswith("cp")]
    holder = one_holder(control_planes)
    prober = Prober(VIP, PORT, interval=0.2, timeout=1.0, limit=120.0)
    prober.start()
    time.sleep(2)
    if case == "api-server-fails":
        node(holder, "mkdir -p /etc/kubeboot-standin/faults && echo 10 >/etc/kubeboot-standin/faults/apiserver-down")
    else:
        node(holder, "systemctl poweroff --force --force", check=False)
    # The calls are summed up once the VIP is on another node and they have all answered for 5 s since then: an
    # action that takes effect late (a loaded machine) must not end the count before its outage.
    new = one_holder([cp for cp in control_planes if cp != holder])
    outage = prober.stop_when_steady(time.monotonic(), steady=5.0)
    if case == "power-off":
        kubeboot("sandbox", "up", "--name", NAME, "--layout", layout, "--standin", "--subnet", SUBNET,
                 "--inventory", str(inventory))
    ready_again(holder, addresses[holder])
    return holder, new, outage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--layout", default="3cp1w")
    parser.add_argument("--advert-interval", type=float, default=None,
                        help="kube_control_plane_vip_advert_interval (seconds; default: the contract's)")
    parser.add_argument("--load", type=int, default=0, metavar="SECONDS",
                        help="after the tries, busy CPUs on every node for SECONDS, counting VIP moves")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("failover_bench: needs root (sandbox nodes)")
    count = int(args.layout.split("cp")[0])
    if count < 2:
        raise SystemExit("failover_bench: --layout needs at least 2 control planes, e.g. 3cp1w")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}; layout {args.layout}, "
          f"VIP {VIP}:{PORT}; probe: GET /readyz every 0.2 s, 1 s timeout; VRRP advert interval "
          f"{args.advert_interval if args.advert_interval is not None else 'default'}")
    rows: dict[str, list[Outage]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="kubeboot-failover-bench-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        try:
            up = kubeboot("sandbox", "up", "--name", NAME, "--layout", args.layout, "--standin", "--subnet", SUBNET,
                          "--inventory", str(inventory), "--json")
            addresses = {name: str(n["address"]) for name, n in json.loads(up.stdout)["nodes"].items()}
            (Path(tmp) / "group_vars").mkdir()
            (Path(tmp) / "group_vars" / "all.yml").write_text(
                f"---\nkube_control_plane_lb: keepalived\nkube_control_plane_vip: {VIP}\n"
                + (f"kube_control_plane_vip_advert_interval: {args.advert_interval}\n"
                   if args.advert_interval is not None else ""))
            env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
            started = time.monotonic()
            done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"], cwd=REPO,
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"site.yml failed:\n{done.stdout[-3000:]}")
            print(f"site.yml: {time.monotonic() - started:.0f} s")
            print(f"{'try':>3}  {'case':<17} {'from':<5} {'to':<5} {'load':>5} {'calls':>5} {'failed':>6} "
                  f"{'no answer (s)':>13}")
            for attempt in range(1, args.tries + 1):
                order = CASES if attempt % 2 else tuple(reversed(CASES))
                for case in order:
                    load = os.getloadavg()[0]
                    holder, new, outage = take_away(case, addresses, args.layout, inventory)
                    rows[case].append(outage)
                    print(f"{attempt:>3}  {case:<17} {holder:<5} {new:<5} {load:>5.1f} {outage.calls:>5} "
                          f"{outage.failed:>6} {outage.longest_gap:>13.1f}", flush=True)
            if args.load:
                load = os.getloadavg()[0]
                first, changes, transitions, calls, failed = load_period(args.load, addresses)
                print(f"busy CPUs on every node for {args.load} s (load at start {load:.1f}, at end "
                      f"{os.getloadavg()[0]:.1f}): VIP on {first}, {changes} holder changes; keepalived state "
                      f"transitions {sum(transitions.values())} "
                      f"({', '.join(f'{cp} {n}' for cp, n in transitions.items())}); {calls} calls, {failed} failed",
                      flush=True)
        finally:
            kubeboot("sandbox", "down", "--name", NAME, check=False)
    print("medians (min-max):")
    for case in CASES:
        gaps = [o.longest_gap for o in rows[case]]
        failed = [o.failed for o in rows[case]]
        if gaps:
            print(f"  {case:<17} no answer {statistics.median(gaps):.1f} s ({min(gaps):.1f}-{max(gaps):.1f}), "
                  f"failed calls {statistics.median(failed):g} ({min(failed)}-{max(failed)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
