"""iptables rules the real components leave on a node: the kubelet's canary chains, kube-proxy's (iptables mode) and
flanneld's masquerade and forward chains. kubeadm reset removes none of them, as with the real ones.

On a node a fragment is applied with `iptables-restore --noflush` unless its chains are all there already (the real
components reconcile their chains; re-adding the same rules would duplicate them). Under a test root the fragments
are recorded in <root>/run/kubeboot-standin/iptables.json instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from . import paths

KUBELET_CANARY = """*mangle
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
"""

KUBE_PROXY_IPTABLES = """*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A INPUT -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
"""


def flannel_rules(network: str, subnet: str) -> str:
    """flanneld --ip-masq (v0.27): FLANNEL-POSTRTG in nat and FLANNEL-FWD in filter, for this node's subnet."""
    masq = '-m comment --comment "flanneld masq"'
    fwd = '-m comment --comment "flanneld forward"'
    return f"""*nat
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING {masq} -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {masq} -j RETURN
-A FLANNEL-POSTRTG -s {subnet} -d {network} {masq} -j RETURN
-A FLANNEL-POSTRTG -s {network} -d {subnet} {masq} -j RETURN
-A FLANNEL-POSTRTG ! -s {network} -d {subnet} {masq} -j RETURN
-A FLANNEL-POSTRTG -s {network} ! -d 224.0.0.0/4 {masq} -j MASQUERADE
-A FLANNEL-POSTRTG ! -s {network} -d {network} {masq} -j MASQUERADE
COMMIT
*filter
:FLANNEL-FWD - [0:0]
-A FORWARD {fwd} -j FLANNEL-FWD
-A FLANNEL-FWD -s {network} {fwd} -j ACCEPT
-A FLANNEL-FWD -d {network} {fwd} -j ACCEPT
COMMIT
"""


def chains(fragment: str) -> dict[str, list[str]]:
    """Table -> the chains a fragment declares."""
    out: dict[str, list[str]] = {}
    table = ""
    for line in fragment.splitlines():
        if line.startswith("*"):
            table = line[1:]
            out.setdefault(table, [])
        elif line.startswith(":"):
            out[table].append(line[1:].split()[0])
    return out


def recorded() -> Path:
    return paths.host("/run/kubeboot-standin/iptables.json")


def simulated() -> bool:
    return paths.root() != Path("/") or not shutil.which("iptables-restore")


def present(table: str) -> set[str]:
    cp = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=False)
    return set(re.findall(r"^:(\S+)", cp.stdout, re.M))


def ensure(name: str, fragment: str) -> bool:
    """Apply the fragment unless its chains are all there; True when it was applied (or recorded)."""
    if simulated():
        f = recorded()
        try:
            data = dict(json.loads(f.read_text()))
        except (OSError, ValueError):
            data = {}
        if data.get(name) == fragment:
            return False
        data[name] = fragment
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(data, indent=1))
        return True
    if all(set(cs) <= present(table) for table, cs in chains(fragment).items()):
        return False
    cp = subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input=fragment, capture_output=True,
                        text=True, check=False)
    if cp.returncode != 0:
        print(f"E kubelet netfilter] {name}: iptables-restore failed: {cp.stderr.strip()}", flush=True)
        return False
    return True
