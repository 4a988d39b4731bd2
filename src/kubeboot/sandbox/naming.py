"""Pure naming and addressing rules of the sandbox: layouts, node names, MACs, interface names."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from kubeboot.errors import UsageError

SANDBOX_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
IFNAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")
LAYOUT_RE = re.compile(r"^(?P<cp>[1-9][0-9]*)cp(?P<w>[0-9]+)w$")
# Predictable-style names a VirtualBox/QEMU guest would show for its extra NICs.
EXTRA_NIC_FIRST_SLOT = 8
FIRST_NODE_HOST = 11  # node addresses start at .11; .1 is the bridge


@dataclass(frozen=True)
class Layout:
    """Node names and their contract groups for `--layout` / `--nodes`."""

    control_planes: tuple[str, ...]
    workers: tuple[str, ...]
    ungrouped: tuple[str, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.control_planes + self.workers + self.ungrouped


def check_sandbox_name(name: str) -> str:
    if not SANDBOX_NAME_RE.match(name):
        raise UsageError(
            f"--name {name!r} is not a valid sandbox name: use 1-12 lowercase letters and digits, "
            "starting with a letter (it is part of bridge and interface names)"
        )
    return name


def parse_layout(layout: str | None, nodes: int | None) -> Layout:
    """`--layout 1cp2w` -> cp1, worker1, worker2; `--nodes 3` -> node1..node3 without groups."""
    if layout is None and nodes is None:
        raise UsageError("say how many nodes: --layout 1cp2w (grouped) or --nodes N (ungrouped)")
    if layout is not None and nodes is not None:
        raise UsageError("give either --layout or --nodes, not both")
    if layout is not None:
        match = LAYOUT_RE.match(layout)
        if not match:
            raise UsageError(
                f"--layout {layout!r} is not a layout: write <control planes>cp<workers>w, for example 1cp2w or 3cp3w"
            )
        cps = int(match["cp"])
        workers = int(match["w"])
        return Layout(
            control_planes=tuple(f"cp{i}" for i in range(1, cps + 1)),
            workers=tuple(f"worker{i}" for i in range(1, workers + 1)),
            ungrouped=(),
        )
    assert nodes is not None
    if nodes < 1:
        raise UsageError(f"--nodes {nodes} is not a node count: give 1 or more")
    return Layout(control_planes=(), workers=(), ungrouped=tuple(f"node{i}" for i in range(1, nodes + 1)))


def stable_mac(sandbox: str, node: str, nic: int) -> str:
    """A locally administered unicast MAC derived from the sandbox, node and NIC index."""
    digest = hashlib.sha256(f"{sandbox}/{node}/{nic}".encode()).digest()
    octets = [0x02, *digest[:5]]
    return ":".join(f"{octet:02x}" for octet in octets)


def short_id(sandbox: str) -> str:
    return hashlib.sha256(sandbox.encode()).hexdigest()[:4]


def bridge_name(sandbox: str) -> str:
    return f"kb-{sandbox}"[:15]


def host_ifname(sandbox: str, index: int, nic: int) -> str:
    """Host-side veth name of a node's NIC: at most 15 characters, unique per sandbox."""
    return f"kb{short_id(sandbox)}n{index}v{nic}"


def peer_ifname(sandbox: str, index: int, nic: int) -> str:
    """Temporary name of the node-side veth end before it moves into the node's namespace."""
    return f"kb{short_id(sandbox)}n{index}p{nic}"


def netns_name(sandbox: str, node: str) -> str:
    return f"kubeboot-{sandbox}-{node}"


def cgroup_name(sandbox: str, node: str) -> str:
    """A node's cgroup, one in each hierarchy below the cgroup kubeboot runs in: unique per sandbox and node."""
    return f"kubeboot-sandbox-{sandbox}-{node}"


def chain_name(sandbox: str) -> str:
    return f"KUBEBOOT-{sandbox.upper()}"


def node_nic_names(primary: str, extra: int) -> list[str]:
    return [primary] + [f"enp0s{EXTRA_NIC_FIRST_SLOT + i}" for i in range(extra)]


def node_address(subnet: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    address = subnet.network_address + FIRST_NODE_HOST + index
    if address not in subnet or address == subnet.broadcast_address:
        raise UsageError(
            f"--subnet {subnet} has no room for node #{index + 1}: give a larger subnet (for example a /24)"
        )
    return address


def bridge_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def max_nodes(subnet: ipaddress.IPv4Network) -> int:
    return max(0, subnet.num_addresses - FIRST_NODE_HOST - 1)
