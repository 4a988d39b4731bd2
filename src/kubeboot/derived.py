"""Values derived from the inventory (and, for the public NIC, from a node's gathered facts), worked out here only.

The validator, `kubeboot plan` and `kubeboot status` call these functions; the playbooks get the same values as facts
from the action plugin kubeboot_cluster_facts (playbooks/facts.yml), so no playbook derives them again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from kubeboot import contract

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PACKAGE_REPO = "https://pkgs.k8s.io/core:/stable:/v{minor}"
# The sandbox (pause) image kubeadm expects for each supported minor (kubeadm's constants.PauseVersion).
PAUSE_VERSIONS = {"1.31": "3.10", "1.32": "3.10", "1.33": "3.10", "1.34": "3.10.1"}
# Each node's pod range when neither kube_node_cidr_mask_size nor flannel_subnet_len is set (the controller
# manager's own defaults).
DEFAULT_NODE_MASK = {4: 24, 6: 64}


# ---------------------------------------------------------------- addresses and networks

def parse_network(value: Any) -> tuple[Network | None, str | None]:
    """A network in CIDR form with no host bits set, or the reason it is not one."""
    if not isinstance(value, str) or "/" not in value:
        return None, "must be a network in CIDR form, e.g. 10.244.0.0/16"
    if "," in value:
        return None, "must be one network (dual-stack is not supported)"
    try:
        return ipaddress.ip_network(value.strip(), strict=True), None
    except ValueError:
        try:
            fixed = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            return None, "is not a valid network in CIDR form, e.g. 10.244.0.0/16"
        return None, f"has host bits set: write {fixed}"


def network(value: Any) -> Network | None:
    """A network written in CIDR form (host bits allowed, as the API reports them), or None."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def parse_address(value: Any) -> Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def address_inside(value: Any, net: Network) -> bool:
    """Whether value is an address of net (same family): the rule for flannel's SubnetMin/SubnetMax and the like."""
    address = parse_address(value)
    return address is not None and address.version == net.version and address in net


def node_address(variables: Mapping[str, Any], name: str) -> str:
    """The address a node is known by in the cluster: node_ip, else ansible_host, else its inventory name."""
    return str(variables.get("node_ip") or variables.get("ansible_host") or name)


def host_address(hostvars: Mapping[str, Any], name: str) -> str:
    """node_address of an inventory host by name."""
    return node_address(hostvars.get(name) or {}, name)


def dns_address(service_subnet: Any) -> str | None:
    """The cluster DNS service address: the 10th address of the service range (None when the range is not one)."""
    service, _ = parse_network(service_subnet)
    if service is None or service.num_addresses <= 10:
        return None
    return str(service.network_address + 10)


def node_cidr_mask_variable(settings: Mapping[str, Any]) -> str:
    """The variable that sets each node's pod range size: flannel_subnet_len when only that alias is set."""
    if settings.get("kube_node_cidr_mask_size") in ("", None) and settings.get("flannel_subnet_len") not in ("", None):
        return "flannel_subnet_len"
    return "kube_node_cidr_mask_size"


def node_cidr_mask_size(settings: Mapping[str, Any]) -> int | None:
    """The prefix length of each node's pod range: kube_node_cidr_mask_size, else its alias flannel_subnet_len, else
    24 (IPv4) or 64 (IPv6). None when a set value is not an integer (the validator says so)."""
    for name in ("kube_node_cidr_mask_size", "flannel_subnet_len"):
        value = settings.get(name)
        if value not in ("", None):
            return contract.as_int(value)
    pod, _ = parse_network(settings.get("kube_pod_subnet"))
    return DEFAULT_NODE_MASK[pod.version if pod else 4]


# ---------------------------------------------------------------- software

def kube_minor(version: Any) -> str:
    """'1.33.5' -> '1.33'."""
    return ".".join(str(version).lstrip("v").split(".")[:2])


def package_repo_url(version: Any, url: Any = "") -> str:
    """The pkgs.k8s.io repository of the version's minor; an operator's URL (mirror) wins."""
    return (str(url or "") or DEFAULT_PACKAGE_REPO.format(minor=kube_minor(version))).rstrip("/")


def pause_image(version: Any, repository: Any) -> str:
    """The sandbox image containerd must use so that kubeadm's preflight does not warn about it."""
    return f"{str(repository).rstrip('/')}/pause:{PAUSE_VERSIONS.get(kube_minor(version), '3.10')}"


# ---------------------------------------------------------------- the cluster's shape

def control_plane_endpoint(settings: Mapping[str, Any], first_control_plane_address: str | None) -> str:
    """The VIP and haproxy's port with kube_control_plane_lb keepalived; else kube_control_plane_endpoint, or the
    first control plane's node address and the API server port."""
    vip = str(settings.get("kube_control_plane_vip") or "")
    if settings.get("kube_control_plane_lb") == LB_KEEPALIVED and vip:
        return f"{vip}:{settings.get('kube_control_plane_lb_port', DEFAULT_LB_PORT)}"
    endpoint = str(settings.get("kube_control_plane_endpoint") or "")
    if endpoint or not first_control_plane_address:
        return endpoint
    port = settings.get("kube_apiserver_port", 6443)
    address = parse_address(first_control_plane_address)
    if address is not None and address.version == 6:
        return f"[{first_control_plane_address}]:{port}"
    return f"{first_control_plane_address}:{port}"


# ---------------------------------------------------------------- the API endpoint's load balancer (keepalived)

LB_KEEPALIVED = "keepalived"
DEFAULT_LB_PORT = 8443
# keepalived priority of the first control plane; each next one gets one less (never below 1). 255 is reserved
# for the owner of an address, which the VIP never is.
FIRST_PRIORITY = 200


def derived_router_id(vip: Any) -> int | None:
    """The VRRP router id of a VIP when kube_control_plane_vip_router_id is unset: its last octet, 255 for a .0
    (None when the VIP is not an IPv4 address)."""
    address = parse_address(vip)
    if not isinstance(address, ipaddress.IPv4Address):
        return None
    return int(address) % 256 or 255


def vip_router_id(settings: Mapping[str, Any]) -> int | None:
    """kube_control_plane_vip_router_id, else the one derived from the VIP (None when neither is known)."""
    value = settings.get("kube_control_plane_vip_router_id")
    if value not in ("", None):
        return contract.as_int(value)
    return derived_router_id(settings.get("kube_control_plane_vip"))


def vip_interface(settings: Mapping[str, Any]) -> str:
    """The NIC that carries the VIP: kube_control_plane_vip_interface, else public_nic_name."""
    return str(settings.get("kube_control_plane_vip_interface") or settings.get("public_nic_name") or "")


def vip_priority(name: str, control_planes: Iterable[str]) -> int:
    """keepalived priority of a control plane: the first holds the VIP at first, the next ones follow in order
    (0 for a node that is no control plane)."""
    names = list(control_planes)
    return max(FIRST_PRIORITY - names.index(name), 1) if name in names else 0


def ipv4_interfaces(facts: Mapping[str, Any]) -> list[tuple[str, ipaddress.IPv4Interface]]:
    """Every IPv4 address of a node with its prefix, by interface, from its gathered facts (primary and
    secondary addresses, loopback left out; interface names as the facts list them)."""
    found = []
    for name in facts.get("interfaces") or []:
        data = facts.get(str(name).replace("-", "_")) or {}
        for entry in [data.get("ipv4") or {}, *(data.get("ipv4_secondaries") or [])]:
            if not isinstance(entry, Mapping) or not entry.get("address") or not entry.get("netmask"):
                continue
            try:
                item = ipaddress.IPv4Interface(f"{entry['address']}/{entry['netmask']}")
            except ValueError:
                continue
            if not item.ip.is_loopback:
                found.append((str(name), item))
    return found


def vip_subnet_problem(vip: Any, facts: Mapping[str, Any] | None, interface: str, address: str) -> str:
    """Why a control plane cannot hold the VIP, from its gathered facts ("" when it can, or when its facts are not
    known): the VIP must be inside the subnet of the NIC that carries it (interface when the node has it, else the
    NIC of its node address, else any NIC), and not one of the node's own addresses."""
    parsed = parse_address(vip)
    if not facts or not isinstance(parsed, ipaddress.IPv4Address):
        return ""
    # A /32 is a single address (the VIP keepalived holds here, or another), not a subnet.
    subnets = [(name, item) for name, item in ipv4_interfaces(facts) if item.network.prefixlen < 32]
    owned = [name for name, item in subnets if item.ip == parsed]
    if owned:
        return f"is already an address of this node on {owned[0]}: choose an address no host uses"
    candidates = [(n, i) for n, i in subnets if n == interface] \
        or [(n, i) for n, i in subnets if str(i.ip) == address] or subnets
    if not candidates:
        return ""
    if any(parsed in item.network for _, item in candidates):
        return ""
    shown = ", ".join(f"{item.network} on {name}" for name, item in candidates)
    return f"is outside this control plane's subnet ({shown}): choose a free address of the control planes' subnet"


def node_roles(name: str, groups: Mapping[str, Iterable[str]]) -> list[str]:
    """'control_plane' and/or 'worker' for a node, from the contract's groups."""
    roles = []
    if name in groups.get(contract.CONTROL_PLANE, []):
        roles.append("control_plane")
    if name in groups.get(contract.WORKERS, []):
        roles.append("worker")
    return roles


def cluster_hosts(names: Iterable[str], hostvars: Mapping[str, Any]) -> list[dict[str, str]]:
    """/etc/hosts entries ({name, address}) for the nodes named, in that order."""
    return [{"name": name, "address": host_address(hostvars, name)} for name in names]


def public_nic(facts: Mapping[str, Any] | None, target: str) -> str:
    """A node's public NIC from its gathered facts: target (public_nic_name) when the node has it, else the NIC of
    its IPv4 default route; "" when its facts are not known."""
    if not facts or facts.get("interfaces") is None:
        return ""
    if target in facts["interfaces"]:
        return target
    return str((facts.get("default_ipv4") or {}).get("interface") or "")


def cni_iface(target: str, nodes: Iterable[str], hostvars: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The pod network's interface (flannel --iface): target when every node whose facts are known has a NIC of
    that name, else "" (flannel then takes each node's default route); and the nodes that lack it."""
    lacking = [name for name in nodes
               if (facts := (hostvars.get(name) or {}).get("ansible_facts") or {}).get("interfaces") is not None
               and target not in facts["interfaces"]]
    return ("" if lacking else target), lacking


def setting(variables: Mapping[str, Any], name: str) -> Any:
    """A contract setting of one host: its value, else the contract's default."""
    return variables[name] if name in variables else contract.defaults().get(name)


def node_facts(name: str, hostvars: Mapping[str, Any], groups: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """Everything derived for one node, as the playbooks get it: {node: {...}, cluster: {...}}."""
    variables = hostvars.get(name) or {}
    settings = {item.name: setting(variables, item.name) for item in contract.SETTINGS if item.has_default}
    control_planes = list(groups.get(contract.CONTROL_PLANE, []))
    first = control_planes[0] if control_planes else ""
    nodes = list(groups.get(contract.CLUSTER, []))
    iface, lacking = cni_iface(str(settings["public_nic_name"]), nodes, hostvars)
    return {
        "node": {
            "name": name,
            "address": node_address(variables, name),
            "roles": node_roles(name, groups),
            # /etc/hosts: the control planes and the node itself (adding a worker changes no other host).
            "etc_hosts": cluster_hosts(dict.fromkeys([*control_planes, name]), hostvars),
            "public_nic": public_nic(variables.get("ansible_facts"), str(settings["public_nic_name"])),
            "package_repo_url": package_repo_url(settings["kube_version"], settings["kube_package_repo_url"]),
            "pause_image": pause_image(settings["kube_version"], settings["kube_image_repository"]),
            "vip_interface": vip_interface(settings),
            "vip_priority": vip_priority(name, control_planes),
        },
        "cluster": {
            "first_control_plane": first,
            "endpoint": control_plane_endpoint(settings, host_address(hostvars, first) if first else None),
            "dns_address": dns_address(settings["kube_service_subnet"]) or "",
            "node_cidr_mask_size": node_cidr_mask_size(settings),
            "cni_iface": iface,
            "nodes_without_public_nic": lacking,
            "public_nic_name": settings["public_nic_name"],
            "vip_router_id": vip_router_id(settings),
            "control_planes": [{"name": cp, "address": host_address(hostvars, cp)} for cp in control_planes],
        },
    }
