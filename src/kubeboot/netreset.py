"""What kube-proxy and the pod network left in netfilter and IPVS, and how to remove exactly that.

Pure functions over the text of `iptables-save`, `nft list tables` and `ipvsadm -Sn`; the Ansible module
`kubeboot_netfilter_reset` (plugins/modules/) runs the commands on the node. This file is also the module's
module_utils (plugins/module_utils/kubeboot_netreset.py links to it), so it uses the standard library only and runs
on every Python the nodes have (3.9 and later).

What is ours (removed without a full flush):
- iptables chains named KUBE-* (kube-proxy, kubelet), FLANNEL* (flanneld), cali-* (calico) and CNI-* (the CNI
  bridge, portmap and firewall plugins), with every rule in them;
- rules in any other chain that jump to one of those chains, or that flanneld or calico put there directly
  (comment "flanneld ..." or "cali:...");
- the nftables tables kube-proxy (nftables mode) and calico (nftables dataplane) make;
- IPVS virtual services of kube-proxy (ipvs mode): their address is on kube-ipvs0 or in the service network, or
  their port is in the NodePort range.
Anything else, e.g. the operator's own rules, chains, tables and IPVS services, is left as it is.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

OUR_CHAIN_PREFIXES = ("KUBE-", "FLANNEL", "cali-", "CNI-")
OUR_COMMENT = re.compile(r'--comment\s+"?(flanneld |cali:)')
OUR_NFT_TABLES = ("kube-proxy", "calico")
BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass
class Table:
    """One table of iptables-save output: its chains in order and its rules as (chain, rule spec)."""

    name: str
    chains: list[str] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class TablePlan:
    """What to remove from one table: rules of kept chains (as written by iptables-save) and whole chains."""

    name: str
    rules: list[tuple[str, str]] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    flush: bool = False

    def empty(self) -> bool:
        return not (self.rules or self.chains or self.flush)


def parse_save(text: str) -> list[Table]:
    """Parse iptables-save (or ip6tables-save) output; comments, counters and COMMIT lines are dropped."""
    tables: list[Table] = []
    current: Table | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = Table(line[1:])
            tables.append(current)
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("[") and "] -A " in line:  # iptables-save -c: "[pkts:bytes] -A CHAIN ..."
            chain, _, spec = line.split("] -A ", 1)[1].partition(" ")
            current.rules.append((chain, spec))
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            current.rules.append((chain, spec))
    return tables


def is_our_chain(chain: str) -> bool:
    return chain.startswith(OUR_CHAIN_PREFIXES)


def rule_target(spec: str) -> str:
    """The chain or target a rule jumps or goes to (-j/--jump, -g/--goto), '' when it has none."""
    try:
        words = shlex.split(spec)
    except ValueError:
        words = spec.split()
    for i, word in enumerate(words[:-1]):
        if word in ("-j", "--jump", "-g", "--goto"):
            return words[i + 1]
    return ""


def is_our_rule(chain: str, spec: str) -> bool:
    return is_our_chain(chain) or is_our_chain(rule_target(spec)) or bool(OUR_COMMENT.search(spec))


def plan_tables(tables: list[Table], full_flush: bool = False) -> list[TablePlan]:
    """What to remove from each table: ours, or everything with full_flush. Tables with nothing to do are left out."""
    plans: list[TablePlan] = []
    for table in tables:
        if full_flush:
            if table.rules or any(c not in BUILTIN_CHAINS.get(table.name, ()) for c in table.chains):
                plans.append(TablePlan(table.name, flush=True))
            continue
        plan = TablePlan(table.name)
        plan.chains = [c for c in table.chains if is_our_chain(c)]
        plan.rules = [(c, s) for c, s in table.rules if not is_our_chain(c) and is_our_rule(c, s)]
        if not plan.empty():
            plans.append(plan)
    return plans


def render_restore(plans: list[TablePlan]) -> str:
    """Input for `iptables-restore --noflush` that removes what the plans name (and nothing else).

    Rules of kept chains are deleted by their exact spec (one -D per copy), then our chains are flushed and deleted:
    after that nothing refers to them. A full-flush plan instead lists only the table's built-in chains with the
    policy ACCEPT; that is for iptables-restore *without* --noflush, which then flushes the table and deletes its
    chains (render_full_flush).
    """
    out: list[str] = []
    for plan in plans:
        if plan.flush or plan.empty():
            continue
        out.append(f"*{plan.name}")
        out += [f"-D {chain} {spec}" for chain, spec in plan.rules]
        out += [f"-F {chain}" for chain in plan.chains]
        out += [f"-X {chain}" for chain in plan.chains]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def render_full_flush(plans: list[TablePlan]) -> str:
    """Input for `iptables-restore` (flushing) that empties the tables of the full-flush plans, policies ACCEPT."""
    out: list[str] = []
    for plan in plans:
        if not plan.flush:
            continue
        out.append(f"*{plan.name}")
        out += [f":{chain} ACCEPT [0:0]" for chain in BUILTIN_CHAINS.get(plan.name, ())]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def summary(plans: list[TablePlan]) -> dict[str, dict[str, object]]:
    """Per table: the chains removed and how many rules of other chains, for the module's result."""
    return {
        p.name: {"flush": True} if p.flush else {"chains": list(p.chains), "rules": [f"-A {c} {s}" for c, s in p.rules]}
        for p in plans
    }


def parse_nft_tables(text: str) -> list[tuple[str, str]]:
    """(family, name) of each line "table FAMILY NAME" of `nft list tables`."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            found.append((words[1], words[2]))
    return found


def our_nft_tables(tables: list[tuple[str, str]], names: tuple[str, ...] = OUR_NFT_TABLES) -> list[tuple[str, str]]:
    return [(family, name) for family, name in tables if name in names]


@dataclass(frozen=True)
class IpvsService:
    """One IPVS virtual service: protocol flag (-t, -u, --sctp-service, -f) and address (host:port, [v6]:port or a
    firewall mark)."""

    flag: str
    address: str

    def host_port(self) -> tuple[str, int] | None:
        if self.flag == "-f":
            return None
        host, _, port = self.address.rpartition(":")
        try:
            return host.strip("[]"), int(port)
        except ValueError:
            return None


def parse_ipvs(text: str) -> list[IpvsService]:
    """The virtual services (-A lines) of `ipvsadm -Sn`."""
    services = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("-A", "--add-service"):
            services.append(IpvsService(words[1], words[2]))
    return services


def parse_port_range(text: str) -> tuple[int, int]:
    """'30000-32767' (kube-apiserver --service-node-port-range syntax; also 'a+n')."""
    if "+" in text:
        first, _, count = text.partition("+")
        return int(first), int(first) + int(count) - 1
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def our_ipvs_services(
    services: list[IpvsService],
    ipvs_addresses: list[str],
    service_subnets: list[str],
    nodeport_range: str = "30000-32767",
) -> list[IpvsService]:
    """kube-proxy's virtual services: address on kube-ipvs0 (ipvs_addresses), in a service network, or a NodePort."""
    bound = {ipaddress.ip_address(a.split("/")[0]) for a in ipvs_addresses}
    networks = [ipaddress.ip_network(s, strict=False) for s in service_subnets]
    low, high = parse_port_range(nodeport_range)
    ours = []
    for service in services:
        hp = service.host_port()
        if hp is None:
            continue
        try:
            address = ipaddress.ip_address(hp[0])
        except ValueError:
            continue
        in_network = any(address.version == n.version and address in n for n in networks)
        if address in bound or in_network or low <= hp[1] <= high:
            ours.append(service)
    return ours
