"""Every check of the inventory contract, as pure functions over plain data returning findings.

Cluster-wide checks take the settings (a dict of the cluster-wide variables); the others take the Inventory.
`validate` runs them all.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from kubeboot import contract, nfs
from kubeboot.contract import (
    CLUSTER,
    CONTROL_PLANE,
    GROUPS,
    MSMS,
    NFS_SERVER,
    PREFIXES,
    SUPPORTED_MINORS,
    WORKERS,
    as_bool,
    as_int,
)
from kubeboot.derived import (
    DEFAULT_LB_PORT,
    address_inside,
    node_address,
    node_cidr_mask_size,
    node_cidr_mask_variable,
    parse_address,
    parse_network,
)
from kubeboot.inventory import syntax
from kubeboot.inventory.model import Finding, Host, Inventory, error, warning

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL = "all"

# kube-apiserver refuses a larger service range (--service-cluster-ip-range): /12 for IPv4, /108 for IPv6.
SERVICE_MIN_PREFIX = {4: 12, 6: 108}
# The controller manager refuses a node mask more than 16 bits longer than the cluster CIDR's.
NODE_MASK_MAX_DIFF = 16
# calico's IPAM block size limits.
CALICO_BLOCK = {4: (20, 32), 6: (116, 128)}
KUBELET_MAX_PODS = 110
HEADROOM = 2


# ---------------------------------------------------------------- helpers

def _networks(settings: dict[str, Any]) -> tuple[Network | None, Network | None]:
    pod, _ = parse_network(settings.get("kube_pod_subnet"))
    service, _ = parse_network(settings.get("kube_service_subnet"))
    return pod, service


# ---------------------------------------------------------------- cluster-wide settings

def check_version(settings: dict[str, Any]) -> list[Finding]:
    value = settings.get("kube_version")
    text = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+\.\d+", text):
        hint = " (without the leading v)" if text.startswith("v") else ""
        return [error(ALL, "kube_version", value, f"must be a full patch version such as 1.33.5{hint}; quote it")]
    minor = ".".join(text.split(".")[:2])
    if minor not in SUPPORTED_MINORS:
        return [error(ALL, "kube_version", value, f"minor {minor} is not supported: use one of "
                      f"{', '.join(SUPPORTED_MINORS)} (kubeadm config API v1beta4)")]
    return []


def check_types(settings: dict[str, Any]) -> list[Finding]:
    """The contract's type rules for every cluster-wide setting: enum values, booleans, integers and their range,
    durations.

    Strings, lists and mappings have checks of their own below (syntax, members), which say more than a type."""
    found = []
    for item in contract.scoped("cluster", "node"):
        if item.kind not in ("enum", "bool", "int", "float", "duration") or item.name not in settings:
            continue
        problem = contract.type_problem(item, settings[item.name])
        if problem:
            found.append(error(ALL, item.name, settings[item.name], problem))
    return found


def check_certificate_validity(settings: dict[str, Any]) -> list[Finding]:
    """A certificate authority outlives what it signs: kubeadm would cap every certificate at the CA's expiry."""
    leaf = contract.duration_seconds(settings.get("kube_certificate_validity") or "8760h")
    ca_value = settings.get("kube_ca_certificate_validity") or "87600h"
    ca = contract.duration_seconds(ca_value)
    if leaf is None or ca is None or ca > leaf:
        return []
    return [error(ALL, "kube_ca_certificate_validity", ca_value, "must be longer than kube_certificate_validity "
                  f"({settings.get('kube_certificate_validity') or '8760h'}): the certificates it signs would expire "
                  "with it")]


def check_node_cidr_mask_alias(settings: dict[str, Any]) -> list[Finding]:
    """One fact, one value: flannel_subnet_len is kube_node_cidr_mask_size's alias; set both, they must agree."""
    mask, length = settings.get("kube_node_cidr_mask_size"), settings.get("flannel_subnet_len")
    if mask in ("", None) or length in ("", None) or as_int(mask) is None or as_int(length) is None:
        return []
    if as_int(mask) != as_int(length):
        return [error(ALL, "flannel_subnet_len", length, f"differs from kube_node_cidr_mask_size ({mask}): both "
                      "name each node's pod range size; keep one of them")]
    return []


def check_cidrs(settings: dict[str, Any]) -> list[Finding]:
    """CIDR syntax and host bits of the pod and service networks; same IP family."""
    found = []
    for name in ("kube_pod_subnet", "kube_service_subnet"):
        _, problem = parse_network(settings.get(name))
        if problem:
            found.append(error(ALL, name, settings.get(name), problem))
    pod, service = _networks(settings)
    if pod and service and pod.version != service.version:
        found.append(error(ALL, "kube_service_subnet", str(service),
                           f"is IPv{service.version} but kube_pod_subnet is IPv{pod.version}: use one family"))
    return found


def check_service_range_size(settings: dict[str, Any]) -> list[Finding]:
    _, service = _networks(settings)
    if service is None:
        return []
    limit = SERVICE_MIN_PREFIX[service.version]
    if service.prefixlen < limit:
        return [error(ALL, "kube_service_subnet", str(service), f"is larger than kube-apiserver accepts: use a "
                      f"/{limit} or smaller range (a longer prefix), e.g. {service.network_address}/{limit}")]
    if service.num_addresses < 16:
        return [error(ALL, "kube_service_subnet", str(service),
                      "is too small: the cluster DNS service takes the 10th address; use a /28 or larger range")]
    return []


def check_disjoint_networks(settings: dict[str, Any], inventory: Inventory) -> list[Finding]:
    """Pod, service and node networks must not overlap (node addresses, the endpoint, NFS clients)."""
    pod, service = _networks(settings)
    found = []
    if pod and service and pod.version == service.version and pod.overlaps(service):
        found.append(error(ALL, "kube_service_subnet", str(service),
                           f"overlaps kube_pod_subnet {pod}: choose ranges that do not overlap"))
    ranges = [(n, net) for n, net in (("kube_pod_subnet", pod), ("kube_service_subnet", service)) if net]
    for host in inventory.cluster_hosts():
        for variable in ("node_ip", "ansible_host"):
            address = parse_address(host.var(variable)) if host.var(variable) else None
            if address is None:
                continue
            for name, net in ranges:
                if address.version == net.version and address in net:
                    found.append(error(host.name, variable, str(address), f"is inside {name} {net}: the node "
                                       f"network must not overlap it; choose another {name}"))
    endpoint = str(settings.get("kube_control_plane_endpoint") or "")
    host_part = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint else ""
    address = parse_address(host_part) if host_part else None
    for name, net in ranges:
        if address and address.version == net.version and address in net:
            found.append(error(ALL, "kube_control_plane_endpoint", endpoint, f"is inside {name} {net}"))
    return found


def _ranges_for_nodes(variable: str, prefix: int, length: int, nodes: int, what: str) -> list[Finding]:
    available = 2 ** (length - prefix)
    if available < nodes:
        return [error(ALL, variable, length, f"leaves {available} {what} for {nodes} nodes: use a longer prefix "
                      f"or a larger kube_pod_subnet")]
    if available < HEADROOM * nodes:
        return [warning(ALL, variable, length, f"leaves {available} {what} for {nodes} nodes, little room to add "
                        f"nodes: consider a larger kube_pod_subnet")]
    return []


def check_node_cidr_mask(settings: dict[str, Any], nodes: int) -> list[Finding]:
    """kube_node_cidr_mask_size: inside the pod prefix, accepted by the controller manager, room for every node."""
    pod, _ = _networks(settings)
    variable = node_cidr_mask_variable(settings)
    mask = node_cidr_mask_size(settings)
    if mask is None:
        return [error(ALL, variable, settings.get(variable), "must be a prefix length (an integer such as 24)")]
    if pod is None:
        return []
    if not pod.prefixlen <= mask <= pod.max_prefixlen:
        return [error(ALL, variable, mask,
                      f"must be between kube_pod_subnet's prefix /{pod.prefixlen} and {pod.max_prefixlen}")]
    if mask - pod.prefixlen > NODE_MASK_MAX_DIFF:
        return [error(ALL, variable, mask, f"is more than {NODE_MASK_MAX_DIFF} bits longer than "
                      f"kube_pod_subnet's /{pod.prefixlen}, which the controller manager refuses")]
    found = _ranges_for_nodes(variable, pod.prefixlen, mask, nodes, "node pod ranges")
    per_node = 2 ** (pod.max_prefixlen - mask)
    if per_node - 2 < KUBELET_MAX_PODS:
        found.append(warning(ALL, variable, mask, f"gives each node {per_node} addresses, fewer "
                             f"than the kubelet's {KUBELET_MAX_PODS} pods: use /{pod.max_prefixlen - 8} or shorter"))
    return found


def check_flannel(settings: dict[str, Any], nodes: int) -> list[Finding]:
    if settings.get("kube_cni") != "flannel":
        return []
    pod, _ = _networks(settings)
    found = check_node_cidr_mask_alias(settings)
    value = settings.get("flannel_subnet_len")
    if value not in ("", None) and as_int(value) is None:
        return [error(ALL, "flannel_subnet_len", value, "must be a prefix length (an integer such as 24)")]
    length = node_cidr_mask_size(settings)
    if length is None or pod is None:
        return found
    variable = node_cidr_mask_variable(settings)
    if pod.version != 4:
        found.append(error(ALL, "kube_pod_subnet", str(pod), "must be IPv4 with flannel"))
    if length == pod.prefixlen:  # shorter or longer than the range allows: check_node_cidr_mask says so
        found.append(error(ALL, variable, length, f"must be longer than kube_pod_subnet's "
                           f"/{pod.prefixlen} and at most {pod.max_prefixlen}"))
    bounds: dict[str, Any] = {}
    for name in ("flannel_subnet_min", "flannel_subnet_max"):
        raw = settings.get(name)
        if raw in ("", None):
            continue
        address = parse_address(raw)
        if address is None or not address_inside(address, pod):
            found.append(error(ALL, name, raw, f"must be an address inside kube_pod_subnet {pod} or empty"))
            continue
        if 0 < length <= pod.max_prefixlen and int(address) % 2 ** (pod.max_prefixlen - length):
            found.append(error(ALL, name, raw, f"must start a /{length} range (each node's pod range)"))
            continue
        bounds[name] = address
    if len(bounds) == 2 and bounds["flannel_subnet_min"] > bounds["flannel_subnet_max"]:
        found.append(error(ALL, "flannel_subnet_max", str(bounds["flannel_subnet_max"]),
                           "is below flannel_subnet_min"))
    elif len(bounds) == 2 and 0 < length <= pod.max_prefixlen:
        count = (int(bounds["flannel_subnet_max"]) - int(bounds["flannel_subnet_min"])) // 2 ** (
            pod.max_prefixlen - length) + 1
        if count < nodes:
            found.append(error(ALL, "flannel_subnet_max", str(bounds["flannel_subnet_max"]),
                               f"leaves {count} node ranges between min and max for {nodes} nodes"))
    return found


def check_calico(settings: dict[str, Any], nodes: int) -> list[Finding]:
    found = []
    for name, value in settings.items():
        if name.startswith("calico_") and ("pool" in name or "cidr" in name):
            found.append(error(ALL, name, value, "the calico IP pool is kube_pod_subnet: remove this "
                               "variable and set kube_pod_subnet"))
    if settings.get("kube_cni") != "calico":
        return found
    pod, _ = _networks(settings)
    value = settings.get("calico_block_size")
    block = as_int(value)
    if block is None:
        return [*found, error(ALL, "calico_block_size", value, "must be a prefix length (an integer such as 26)")]
    if pod is None:
        return found
    low, high = CALICO_BLOCK[pod.version]
    if not low <= block <= high:
        return [*found, error(ALL, "calico_block_size", block,
                              f"must be between {low} and {high} for IPv{pod.version}")]
    if block < pod.prefixlen:
        return [*found, error(ALL, "calico_block_size", block, f"must not be shorter than kube_pod_subnet's "
                              f"/{pod.prefixlen}: the blocks come from that pool")]
    return [*found, *_ranges_for_nodes("calico_block_size", pod.prefixlen, block, nodes, "calico blocks")]


def check_endpoint(settings: dict[str, Any]) -> list[Finding]:
    value = settings.get("kube_control_plane_endpoint")
    if value in ("", None):
        return []
    problem = syntax.host_port(str(value))
    return [error(ALL, "kube_control_plane_endpoint", value, f"{problem}, or leave it empty")] if problem else []


def check_dns_domain(settings: dict[str, Any]) -> list[Finding]:
    value = settings.get("kube_dns_domain")
    problem = syntax.dns_subdomain(str(value)) if isinstance(value, str) else "must be a string"
    return [error(ALL, "kube_dns_domain", value, f"{problem}, e.g. cluster.local")] if problem else []


def check_urls(settings: dict[str, Any]) -> list[Finding]:
    found = []
    for name in ("kube_package_repo_url", "kube_download_url"):
        value = settings.get(name)
        if name == "kube_package_repo_url" and value in ("", None):
            continue
        problem = syntax.url(str(value)) if isinstance(value, str) else "must be a URL"
        if problem:
            found.append(error(ALL, name, value, problem))
    image = settings.get("kube_image_repository")
    problem = syntax.image_repository(str(image)) if isinstance(image, str) and image else "must not be empty"
    if problem:
        found.append(error(ALL, "kube_image_repository", image, problem))
    mirrors = settings.get("containerd_registry_mirrors")
    if not isinstance(mirrors, dict):
        return [*found, error(ALL, "containerd_registry_mirrors", mirrors,
                              "must be a mapping: registry host -> list of mirror URLs")]
    for registry, urls in mirrors.items():
        variable = f"containerd_registry_mirrors[{registry}]"
        problem = None if registry == "_default" else syntax.host_port(str(registry), port_required=False)
        if problem:
            found.append(error(ALL, variable, registry, f"registry {problem}"))
        if not isinstance(urls, list) or not urls:
            found.append(error(ALL, variable, urls, "must be a list of mirror URLs"))
            continue
        for index, item in enumerate(urls):
            problem = syntax.url(str(item))
            if problem:
                found.append(error(ALL, f"{variable}[{index}]", item, problem))
    return found


def check_cluster_name(settings: dict[str, Any]) -> list[Finding]:
    value = settings.get("kube_cluster_name")
    problem = syntax.dns_label(value) if isinstance(value, str) else "must be a string"
    return [error(ALL, "kube_cluster_name", value, f"{problem}: a DNS-1123 label such as kubernetes")] \
        if problem else []


def check_etcd_backup(settings: dict[str, Any]) -> list[Finding]:
    """Where the snapshots go (an absolute controller path, or empty) and when the backup timer runs."""
    found = []
    directory = settings.get("etcd_backup_dir")
    if directory not in ("", None) and (not isinstance(directory, str) or not directory.startswith("/")
                                        or "\n" in directory):
        found.append(error(ALL, "etcd_backup_dir", directory, "must be an absolute directory on the controller, "
                           "or empty for etcd-backups beside the inventory"))
    schedule = settings.get("etcd_backup_schedule")
    if schedule not in ("", None):
        problem = syntax.on_calendar(schedule) if isinstance(schedule, str) else \
            f"must be a string: {syntax.ON_CALENDAR_FIX}, or empty for no timer"
        if problem:
            found.append(error(ALL, "etcd_backup_schedule", schedule, problem))
    return found


def check_upgrade_batch(settings: dict[str, Any]) -> list[Finding]:
    """kube_upgrade_batch: a positive count of workers, or a percentage of them (1% to 100%)."""
    value = settings.get("kube_upgrade_batch")
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    count = text[:-1] if text.endswith("%") else text
    if count.isdigit() and (1 <= int(count) <= 100 if text.endswith("%") else int(count) >= 1):
        return []
    return [error(ALL, "kube_upgrade_batch", value, "must be a number of workers (1 or more) or a percentage of "
                  "them from 1% to 100%, such as 1 or 25%")]


def check_public_nic_name(settings: dict[str, Any]) -> list[Finding]:
    value = settings.get("public_nic_name")
    problem = syntax.interface_name(value) if isinstance(value, str) else "must be a string"
    return [error(ALL, "public_nic_name", value, f"{problem}: give a Linux interface name such as eth0")] \
        if problem else []


def check_settings(settings: dict[str, Any], nodes: int) -> list[Finding]:
    """Every cluster-wide check on the settings alone."""
    checks: list[Callable[[dict[str, Any]], list[Finding]]] = [
        check_version, check_types, check_certificate_validity, check_node_cidr_mask_alias, check_cidrs,
        check_service_range_size, check_endpoint,
        check_dns_domain, check_urls, check_public_nic_name, check_msms_settings, check_nfs_settings,
        check_cluster_name, check_etcd_backup, check_upgrade_batch,
    ]
    found = [finding for check in checks for finding in check(settings)]
    found += check_node_cidr_mask(settings, nodes)
    found += check_flannel(settings, nodes)
    found += check_calico(settings, nodes)
    return found


# ---------------------------------------------------------------- the API endpoint's load balancer

VIP_SETTINGS = ("kube_control_plane_vip", "kube_control_plane_vip_router_id")


def _check_vip_address(vip: Any, settings: dict[str, Any], inventory: Inventory) -> list[Finding]:
    """The VIP: an IPv4 host address, outside the pod and service ranges, no host's address."""
    name = "kube_control_plane_vip"
    if vip in ("", None):
        return [error(ALL, name, vip, "is required with kube_control_plane_lb keepalived: set a free IPv4 address "
                      "of the control planes' subnet")]
    address = parse_address(vip)
    if not isinstance(address, ipaddress.IPv4Address):
        return [error(ALL, name, vip, "must be an IPv4 address such as 192.0.2.100 (keepalived's VIP)")]
    if address.is_loopback or address.is_multicast or address.is_unspecified or address.is_link_local \
            or address == ipaddress.IPv4Address("255.255.255.255"):
        return [error(ALL, name, vip, "must be a unicast address of the control planes' subnet")]
    found = []
    for range_name, net in zip(("kube_pod_subnet", "kube_service_subnet"), _networks(settings), strict=True):
        if net is not None and net.version == 4 and address in net:
            found.append(error(ALL, name, vip, f"is inside {range_name} {net}: choose a free address of the "
                               "control planes' subnet"))
    for host in inventory.hosts.values():
        for variable in ("node_ip", "ansible_host"):
            if parse_address(host.var(variable)) == address:
                found.append(error(ALL, name, vip, f"is the address of {host.name} ({variable}): the VIP must be "
                                   "an address no host has"))
    return found


def check_control_plane_lb(settings: dict[str, Any], inventory: Inventory) -> list[Finding]:
    """kube_control_plane_lb and the settings it needs: the VIP, haproxy's port and the endpoint with keepalived,
    an endpoint with external; VIP settings that would be ignored; one control plane's address as the only endpoint
    of several."""
    mode = settings.get("kube_control_plane_lb", "none")
    endpoint = str(settings.get("kube_control_plane_endpoint") or "")
    control = inventory.members(CONTROL_PLANE)
    if mode == "external" and not endpoint:
        return [error(ALL, "kube_control_plane_endpoint", endpoint, "is required with kube_control_plane_lb "
                      "external: set your load balancer's host:port (it forwards to every API server's "
                      "kube_apiserver_port)")]
    if mode != "keepalived":
        found = []
        for name in VIP_SETTINGS:
            if settings.get(name) not in ("", None):
                found.append(warning(ALL, name, settings[name], f"is ignored: kube_control_plane_lb is {mode}; set "
                                     "it to keepalived to have the control planes hold the VIP"))
        if mode == "none" and not endpoint and len(control) > 1:
            found.append(warning(ALL, "kube_control_plane_lb", mode, f"the API endpoint is {control[0]}'s "
                                 f"address with {len(control)} control planes: it is lost with {control[0]}; set "
                                 "kube_control_plane_lb: keepalived (a VIP) or external (your load balancer)"))
        return found
    vip = settings.get("kube_control_plane_vip")
    found = _check_vip_address(vip, settings, inventory)
    port = as_int(settings.get("kube_control_plane_lb_port"))
    api_port = as_int(settings.get("kube_apiserver_port"))
    if port is not None and port == api_port:
        found.append(error(ALL, "kube_control_plane_lb_port", port, f"equals kube_apiserver_port ({api_port}): "
                           "haproxy and the API server listen on every control plane; choose another port such as "
                           f"{DEFAULT_LB_PORT if api_port != DEFAULT_LB_PORT else 9443}"))
    expected = f"{vip}:{port}"
    if endpoint and port is not None and endpoint != expected:
        found.append(error(ALL, "kube_control_plane_endpoint", endpoint, "must be empty or the VIP and haproxy's "
                           f"port ({expected}) with kube_control_plane_lb keepalived"))
    for name in control:
        host = inventory.hosts.get(name)
        if host is None:
            continue
        interface = host.var("kube_control_plane_vip_interface")
        if interface not in ("", None):
            problem = syntax.interface_name(interface) if isinstance(interface, str) else "must be a string"
            if problem:
                found.append(error(name, "kube_control_plane_vip_interface", interface, f"{problem}: give a Linux "
                                   "interface name such as eth0, or leave it empty for public_nic_name"))
        address = parse_address(node_address(host.variables, name))
        if address is not None and address.version != 4:
            found.append(error(name, "node_ip" if host.var("node_ip") else "ansible_host", str(address),
                               "is not IPv4 but the keepalived VIP is: kube_control_plane_lb keepalived needs IPv4 "
                               "control planes (use external for an IPv6 load balancer)"))
    return found


# ---------------------------------------------------------------- groups and hosts

def check_groups(inventory: Inventory) -> list[Finding]:
    found = []
    control = inventory.members(CONTROL_PLANE)
    cluster = set(inventory.members(CLUSTER))
    workers = inventory.members(WORKERS)
    if not control:
        found.append(error(ALL, CONTROL_PLANE, None, "no host in the group: add at least one control plane"))
    elif len(control) % 2 == 0:
        found.append(warning(ALL, CONTROL_PLANE, len(control), "an even number of control planes tolerates no "
                             "more failures than one fewer (etcd quorum): use an odd number"))
    for name in dict.fromkeys([*control, *workers]):
        if name not in cluster:
            found.append(error(name, CLUSTER, None, f"{name} is in {CONTROL_PLANE} or {WORKERS} but not in "
                               f"{CLUSTER}: make {CLUSTER} the union of both (children: {CONTROL_PLANE}, {WORKERS})"))
    for name in inventory.members(CLUSTER):
        if name not in control and name not in workers:
            found.append(error(name, CLUSTER, None, f"{name} is in {CLUSTER} but neither a control plane nor a "
                               f"worker: put it in {CONTROL_PLANE} or {WORKERS}"))
    for name in inventory.members(MSMS):
        if name not in cluster:
            found.append(error(name, MSMS, None, f"msms host {name} is not a cluster node: add it to {WORKERS}"))
        elif name not in workers:
            found.append(warning(name, MSMS, None, f"msms host {name} is not a worker: dedicated media servers "
                                 f"belong in {WORKERS}"))
    for group in inventory.groups:
        if group in GROUPS or group in ("all", "ungrouped"):
            continue
        near = difflib.get_close_matches(group, GROUPS, n=1, cutoff=0.8)
        if near:
            found.append(warning(ALL, group, None, f"unknown group; did you mean {near[0]}?"))
    return found


def check_node_names(inventory: Inventory) -> list[Finding]:
    found = []
    seen: dict[str, str] = {}
    for host in inventory.cluster_hosts():
        problem = syntax.dns_subdomain(host.name)
        if problem:
            found.append(error(host.name, "inventory_hostname", host.name,
                               f"is not a valid Kubernetes node name: it {problem}"))
        key = host.name.lower()
        if key in seen:
            found.append(error(host.name, "inventory_hostname", host.name, f"same node name as {seen[key]}"))
        seen.setdefault(key, host.name)
    return found


def check_addresses(inventory: Inventory) -> list[Finding]:
    """node_ip is an address; node addresses and MACs are unique; MACs are well formed."""
    found = []
    addresses: dict[str, str] = {}
    macs: dict[str, str] = {}
    for host in inventory.cluster_hosts():
        node_ip = host.var("node_ip")
        if node_ip not in (None, "") and parse_address(node_ip) is None:
            found.append(error(host.name, "node_ip", node_ip, "must be an IP address"))
        ansible_host = host.var("ansible_host")
        if ansible_host not in (None, "") and syntax.host_name(str(ansible_host)):
            found.append(error(host.name, "ansible_host", ansible_host, "must be an IP address or a DNS name"))
        variable = "node_ip" if node_ip else "ansible_host"
        address = node_address(host.variables, host.name)
        parsed = parse_address(address)
        key = str(parsed) if parsed else address.lower()
        if key in addresses:
            found.append(error(host.name, variable, address, f"is also the address of {addresses[key]}: "
                               "every node needs its own address"))
        addresses.setdefault(key, host.name)
        mac = host.var("public_nic_mac")
        if mac in (None, ""):
            continue
        problem = syntax.mac_address(str(mac))
        if problem:
            found.append(error(host.name, "public_nic_mac", mac, problem))
            continue
        normal = syntax.normal_mac(str(mac))
        if normal in macs:
            found.append(error(host.name, "public_nic_mac", mac, f"is also the MAC of {macs[normal]}"))
        macs.setdefault(normal, host.name)
    return found


def check_labels(host: str, labels: Any, name: str = "node_labels") -> list[Finding]:
    if not isinstance(labels, dict):
        return [error(host, name, labels, "must be a mapping of label key to value")]
    found = []
    for key, value in labels.items():
        variable = f"{name}[{key}]"
        problem = syntax.qualified_name(str(key))
        if problem:
            found.append(error(host, variable, value, f"label key {problem}"))
            continue
        if not isinstance(value, str):
            found.append(error(host, variable, value,
                               f"label value must be a string: quote it ({key}: '{json.dumps(value)}')"))
            continue
        problem = syntax.label_value(value)
        if problem:
            found.append(error(host, variable, value, f"label value {problem}"))
        elif syntax.applied_through_api(str(key)):
            found.append(warning(host, variable, value, "the NodeRestriction admission plugin forbids kubelets "
                                 "to set this label; the playbooks apply it through the API after join (node_meta "
                                 "role), so it is not passed to the kubelet"))
        elif not syntax.kubelet_may_set(str(key)):
            found.append(error(host, variable, value, "kubernetes.io and k8s.io labels are reserved: the "
                               "NodeRestriction admission plugin refuses them from kubelets; use your own prefix "
                               "(example.com/...) or node-role.kubernetes.io/<role>"))
    return found


def check_taints(host: str, taints: Any, name: str = "node_taints") -> list[Finding]:
    if not isinstance(taints, list):
        return [error(host, name, taints, "must be a list of key=value:Effect or key:Effect")]
    found = []
    seen: set[tuple[str, str]] = set()
    for index, taint in enumerate(taints):
        variable = f"{name}[{index}]"
        if not isinstance(taint, str):
            found.append(error(host, variable, taint, "must be a string key=value:Effect or key:Effect"))
            continue
        try:
            key, value, effect = syntax.parse_taint(taint)
        except ValueError as exc:
            found.append(error(host, variable, taint, str(exc)))
            continue
        problem = syntax.qualified_name(key)
        if problem:
            found.append(error(host, variable, taint, f"taint key {problem}"))
            continue
        problem = syntax.label_value(value)
        if problem:
            found.append(error(host, variable, taint, f"taint value {problem}"))
            continue
        if effect not in syntax.TAINT_EFFECTS:
            near = difflib.get_close_matches(effect, syntax.TAINT_EFFECTS, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            found.append(error(host, variable, taint, f"effect must be {', '.join(syntax.TAINT_EFFECTS[:-1])} or "
                               f"{syntax.TAINT_EFFECTS[-1]}{hint}"))
            continue
        if (key, effect) in seen:
            found.append(error(host, variable, taint, f"duplicate taint: {key} already has the effect {effect}; "
                               "keep one"))
        seen.add((key, effect))
    return found


EXPORT_KEYS = frozenset({"path", "owner", "group", "mode", "options", "clients", "directories", "volume"})
VOLUME_KEYS = frozenset({"name", "path", "capacity", "access_mode", "namespace", "claim", "mount_options"})


def _check_export_options(host: str, where: str, raw: Any, client: Any,
                          allow_world_no_root_squash: bool) -> list[Finding]:
    options = nfs.split_options(raw)
    if options is None:
        return [error(host, where, raw, "must be a comma-separated string or a list of exports(5) options")]
    problem = syntax.nfs_options(options) or nfs.contradiction(options)
    if problem:
        return [error(host, where, raw, f"{problem}; see man 5 exports")]
    if client == "*" and "no_root_squash" in options and not allow_world_no_root_squash:
        return [error(host, where, raw, "no_root_squash to everyone (*) lets any host write as root: name the "
                      "clients, or set nfs_allow_world_no_root_squash: true")]
    return []


def _check_owner(host: str, where: str, item: dict[str, Any]) -> list[Finding]:
    found = []
    for key in ("owner", "group"):
        value = item.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            continue
        if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]*\$?|[0-9]+", value):
            found.append(error(host, f"{where}.{key}", value, "must be a user or group name or a numeric id"))
    mode = item.get("mode")
    if mode is not None and not (isinstance(mode, str) and re.fullmatch(r"0?[0-7]{3,4}", mode)):
        found.append(error(host, f"{where}.mode", mode, 'must be an octal mode in quotes, e.g. mode: "0755"'))
    return found


def _check_directories(host: str, where: str, directories: Any) -> list[Finding]:
    if directories is None:
        return []
    if not isinstance(directories, list):
        return [error(host, where, directories, "must be a list of {path, owner, group, mode}")]
    found = []
    for index, directory in enumerate(directories):
        item = f"{where}[{index}]"
        if not isinstance(directory, dict):
            found.append(error(host, item, directory, "must be a mapping {path, owner, group, mode}"))
            continue
        path = directory.get("path")
        if not isinstance(path, str) or path.startswith("/") or nfs.normal_path("/" + path) \
                or path.split("/")[0] == "..":
            found.append(error(host, f"{item}.path", path, "must be a path relative to the export, e.g. mongodb "
                               "(no leading /, no ..)"))
        found += _check_owner(host, item, directory)
    return found


def check_volume_fields(host: str, where: str, volume: dict[str, Any]) -> list[Finding]:
    """The fields of a PersistentVolume declaration (an export's `volume` or an nfs_volumes entry) that are set."""
    found = []
    for key in ("name", "claim"):
        if key in volume:
            problem = syntax.dns_subdomain(str(volume[key]))
            if problem:
                found.append(error(host, f"{where}.{key}", volume[key], f"is not a valid object name: it {problem}"))
    if "namespace" in volume:
        text = str(volume["namespace"])
        if len(text) > 63 or "." in text or syntax.dns_subdomain(text):
            found.append(error(host, f"{where}.namespace", volume["namespace"], "a namespace name must be at most 63 "
                               "lowercase letters, digits and '-', starting and ending with a letter or digit"))
    if "capacity" in volume and not nfs.QUANTITY_RE.match(str(volume["capacity"])):
        found.append(error(host, f"{where}.capacity", volume["capacity"], "must be a quantity such as 10Gi or 500Mi"))
    if "access_mode" in volume and volume["access_mode"] not in nfs.ACCESS_MODES:
        found.append(error(host, f"{where}.access_mode", volume["access_mode"],
                           f"must be one of {', '.join(nfs.ACCESS_MODES)}"))
    if "mount_options" in volume:
        options = nfs.split_options(volume["mount_options"])
        if options is None:
            found.append(error(host, f"{where}.mount_options", volume["mount_options"],
                               "must be a list of mount options, e.g. [hard, nfsvers=4.2]"))
    return found


def check_nfs_exports(host: str, exports: Any, allow_world_no_root_squash: bool,
                      default_clients: list[str] | None = None,
                      default_options: Any = nfs.DEFAULT_EXPORT_OPTIONS) -> list[Finding]:
    """One nfs_server host's exports: paths, clients, options, ownership, directories and the volume."""
    if not isinstance(exports, list):
        return [error(host, "nfs_exports", exports, "must be a list of {path, clients: [{host, options}]}")]
    found = []
    paths: list[tuple[int, str]] = []
    for index, export in enumerate(exports):
        variable = f"nfs_exports[{index}]"
        if not isinstance(export, dict):
            found.append(error(host, variable, export, "must be a mapping {path, clients}"))
            continue
        unknown = sorted(set(export) - EXPORT_KEYS)
        if unknown:
            found.append(error(host, f"{variable}.{unknown[0]}", export[unknown[0]], "is not an export setting: use "
                               f"{', '.join(sorted(EXPORT_KEYS))}"))
        raw_path = export.get("path")
        problem = nfs.normal_path(raw_path)
        if problem:
            found.append(error(host, f"{variable}.path", raw_path, problem))
        path = None if problem else str(raw_path)
        for other, known in paths:
            if path is None:
                break
            if known == path:
                found.append(error(host, f"{variable}.path", path, f"is exported twice (nfs_exports[{other}]): "
                                   "merge the clients into one"))
            elif nfs.inside(path, known) or nfs.inside(known, path):
                relation = "is inside" if nfs.inside(path, known) else "contains"
                found.append(error(host, f"{variable}.path", path, f"{relation} nfs_exports[{other}].path {known}: "
                                   "exports must not overlap; export the outer directory only, or move one"))
            else:
                continue
            break
        if path:
            paths.append((index, path))
        own_options = export.get("options")
        if own_options is not None:
            found += _check_export_options(host, f"{variable}.options", own_options, None, True)
        export_default = own_options if own_options is not None else default_options
        found += _check_owner(host, variable, export)
        found += _check_directories(host, f"{variable}.directories", export.get("directories"))
        found += _check_volume(host, f"{variable}.volume", export.get("volume"), path)
        clients = export.get("clients")
        if clients is None:
            if not default_clients:
                found.append(error(host, f"{variable}.clients", None, "no cluster node to default to: "
                                   "name the clients ({host, options})"))
            for client in default_clients or []:
                found += _check_export_options(host, f"{variable}.options", export_default, client,
                                               allow_world_no_root_squash)
            continue
        if not isinstance(clients, list) or not clients:
            found.append(error(host, f"{variable}.clients", clients, "must be a non-empty list of {host, options}, "
                               "or left out for every cluster node"))
            continue
        seen: set[str] = set()
        for number, client in enumerate(clients):
            where = f"{variable}.clients[{number}]"
            if not isinstance(client, dict) or "host" not in client:
                found.append(error(host, where, client, "must be a mapping {host, options}"))
                continue
            name = str(client["host"])
            problem = syntax.nfs_client(name)
            if problem:
                found.append(error(host, f"{where}.host", client["host"], problem))
            elif name in seen:
                found.append(error(host, f"{where}.host", client["host"], "is listed twice: keep one"))
            seen.add(name)
            raw = client.get("options", export_default)
            found += _check_export_options(host, f"{where}.options" if "options" in client else
                                           f"{variable}.options", raw, name, allow_world_no_root_squash)
    return found


def _check_volume(host: str, where: str, volume: Any, export_path: str | None) -> list[Finding]:
    if volume is None or volume is False:
        return []
    if not isinstance(volume, dict):
        return [error(host, where, volume, "must be a mapping {name, path, capacity, access_mode, namespace, claim, "
                      "mount_options}, or false for no PersistentVolume")]
    found = check_volume_fields(host, where, volume)
    unknown = sorted(set(volume) - VOLUME_KEYS)
    if unknown:
        found.append(error(host, f"{where}.{unknown[0]}", volume[unknown[0]], "is not a volume setting: use "
                           f"{', '.join(sorted(VOLUME_KEYS))}"))
    if "path" in volume:
        problem = nfs.normal_path(volume["path"])
        if problem:
            found.append(error(host, f"{where}.path", volume["path"], problem))
        elif export_path and not nfs.inside(volume["path"], export_path):
            found.append(error(host, f"{where}.path", volume["path"], f"must be the export {export_path} or a "
                               "directory below it"))
    return found


def check_nfs_settings(settings: dict[str, Any]) -> list[Finding]:
    """Cluster-wide NFS settings: default export options, volume defaults and nfs_volumes."""
    found = []
    raw = settings.get("nfs_export_options")
    if raw is not None:
        found += _check_export_options(ALL, "nfs_export_options", raw, None, True)
    defaults = {key: settings[f"nfs_volume_{key}"] for key in ("capacity", "access_mode", "namespace",
                                                              "mount_options") if f"nfs_volume_{key}" in settings}
    for finding in check_volume_fields(ALL, "nfs_volume", defaults):
        found.append(error(ALL, finding.variable.replace("nfs_volume.", "nfs_volume_"), finding.value,
                           finding.message))
    entries = settings.get("nfs_volumes", [])
    if not isinstance(entries, list):
        return [*found, error(ALL, "nfs_volumes", entries, "must be a list of {name, server, path, ...}")]
    for index, entry in enumerate(entries):
        where = f"nfs_volumes[{index}]"
        if not isinstance(entry, dict):
            found.append(error(ALL, where, entry, "must be a mapping {name, server, path, capacity, access_mode, "
                               "namespace, claim, mount_options}"))
            continue
        for key in ("name", "server", "path"):
            if key not in entry:
                found.append(error(ALL, f"{where}.{key}", None, "is missing: every nfs_volumes entry needs name, "
                                   "server and path"))
        found += check_volume_fields(ALL, where, entry)
        unknown = sorted(set(entry) - VOLUME_KEYS - {"server"})
        if unknown:
            found.append(error(ALL, f"{where}.{unknown[0]}", entry[unknown[0]], "is not a volume setting: use "
                               f"{', '.join(sorted(VOLUME_KEYS | {'server'}))}"))
        if "server" in entry and syntax.host_name(str(entry["server"])):
            found.append(error(ALL, f"{where}.server", entry["server"], "must be the NFS server's address or DNS "
                               "name"))
        if "path" in entry and nfs.normal_path(entry["path"]):
            found.append(error(ALL, f"{where}.path", entry["path"], str(nfs.normal_path(entry["path"]))))
    return found


def check_nfs_volumes(inventory: Inventory, settings: dict[str, Any]) -> list[Finding]:
    """PersistentVolume names and claims are unique across every export and nfs_volumes; NFSv3 mounts need v3."""
    hostvars = {name: {**settings, **host.variables} for name, host in inventory.hosts.items()}
    hostvars["__settings__"] = settings
    groups = {group: inventory.members(group) for group in (NFS_SERVER, CLUSTER)}
    try:
        declared = nfs.volumes(groups, hostvars, "__settings__")
    except (AttributeError, KeyError, TypeError):
        return []  # malformed exports or nfs_volumes: reported by the checks above
    found = []
    names: set[str] = set()
    claims: set[tuple[str, str]] = set()
    for volume in declared:
        if volume["name"] in names:
            found.append(error(ALL, "nfs_exports", volume["name"], "two PersistentVolumes have this name: give "
                               "one export (or nfs_volumes entry) another volume.name"))
        if (volume["namespace"], volume["claim"]) in claims:
            found.append(error(ALL, "nfs_exports", f"{volume['namespace']}/{volume['claim']}", "two volumes have "
                               "this claim: give one another volume.claim or namespace"))
        names.add(volume["name"])
        claims.add((volume["namespace"], volume["claim"]))
    if as_bool(settings.get("nfs_enable_v3")) is not True:
        for name in inventory.members(NFS_SERVER):
            for volume in nfs.volumes({NFS_SERVER: [name]}, hostvars, "__settings__"):
                if {"nfsvers=3", "vers=3"} & set(volume["mount_options"]):
                    found.append(error(name, "nfs_exports", volume["name"], "mounts with NFSv3 but the server "
                                       "serves NFSv4 only: use nfsvers=4.2, or set nfs_enable_v3: true"))
    return found


LABEL_SCOPES = (("msms_labels", "msms_taints"), ("node_group_labels", "node_group_taints"),
                ("node_labels", "node_taints"))


def check_msms_host(host: Host) -> list[Finding]:
    """The msms profile's per-host variables: msms_fixed a boolean, msms_public_address an IP address."""
    found = []
    fixed = host.var("msms_fixed", False)
    if as_bool(fixed) is None:
        found.append(error(host.name, "msms_fixed", fixed, "must be true or false"))
    address = host.var("msms_public_address", "")
    if address not in (None, "") and parse_address(address) is None:
        found.append(error(host.name, "msms_public_address", address, "must be an IP address (the host's public "
                           "address), or empty for the node address"))
    return found


def check_msms_settings(settings: dict[str, Any]) -> list[Finding]:
    """Cluster-wide settings of the msms profile: label and annotation keys, the RTP port range, namespaces."""
    found = []
    for name in ("msms_fixed_label", "msms_public_address_annotation"):
        value = settings.get(name)
        if value is None:
            continue
        problem = syntax.qualified_name(str(value))
        if problem:
            found.append(error(ALL, name, value, f"key {problem}"))
    port_range = settings.get("msms_rtp_port_range")
    if port_range not in (None, ""):
        match = re.match(r"^(\d+)-(\d+)$", str(port_range))
        if not match or not 1 <= int(match[1]) <= int(match[2]) <= 65535:
            found.append(error(ALL, "msms_rtp_port_range", port_range, "must be FIRST-LAST with 1 <= FIRST <= LAST "
                               "<= 65535, e.g. 10000-20000 (or empty to open nothing)"))
    namespaces = settings.get("msms_namespaces")
    if namespaces is not None:
        if not isinstance(namespaces, list):
            found.append(error(ALL, "msms_namespaces", namespaces, "must be a list of namespace names"))
        else:
            for index, namespace in enumerate(namespaces):
                text = str(namespace)
                problem = syntax.dns_subdomain(text) if len(text) <= 63 else "is longer than 63 characters"
                if problem or "." in text:
                    found.append(error(ALL, f"msms_namespaces[{index}]", namespace, "a namespace name must be at "
                                       "most 63 lowercase letters, digits and '-', starting and ending with a letter "
                                       "or digit"))
    return found


def check_host_variables(inventory: Inventory, settings: dict[str, Any]) -> list[Finding]:
    """Labels, taints and NFS exports of every host; exports only on nfs_server hosts."""
    found = []
    nfs_hosts = set(inventory.members(NFS_SERVER))
    allow = as_bool(settings.get("nfs_allow_world_no_root_squash")) is True
    clients = [node_address(host.variables, host.name) for host in inventory.cluster_hosts()]
    options = settings.get("nfs_export_options", nfs.DEFAULT_EXPORT_OPTIONS)
    for host in inventory.hosts.values():
        for labels_var, taints_var in LABEL_SCOPES:
            found += check_labels(host.name, host.var(labels_var, {}), labels_var)
            found += check_taints(host.name, host.var(taints_var, []), taints_var)
        found += check_msms_host(host)
        exports = host.var("nfs_exports", [])
        if host.name in nfs_hosts:
            found += check_nfs_exports(host.name, exports, allow, clients, options)
            if exports == []:
                found.append(warning(host.name, "nfs_exports", exports, "nfs_server host exports nothing: "
                                     "add nfs_exports or remove it from nfs_server"))
        elif exports not in ([], None):
            found.append(warning(host.name, "nfs_exports", None, f"is ignored: {host.name} is not in {NFS_SERVER}"))
    return found


def check_consistency(inventory: Inventory, settings: dict[str, Any]) -> list[Finding]:
    """Cluster-wide variables must have one value on every cluster node."""
    found = []
    names = contract.must_agree()
    for host in inventory.cluster_hosts():
        for name in names:
            if name in host.variables and name in settings and host.variables[name] != settings[name]:
                found.append(error(host.name, name, host.variables[name], f"differs from the cluster's value "
                                   f"{settings[name]!r}: cluster-wide settings belong in group_vars/all"))
    return found


def known_variables(extra: Iterable[str] = ()) -> frozenset[str]:
    return contract.names() | frozenset(extra)


def check_typos(inventory: Inventory, known: frozenset[str]) -> list[Finding]:
    """Unknown variables with the contract's prefixes that look like a known name."""
    seen: dict[str, list[str]] = {}
    for host in inventory.hosts.values():
        for name in host.variables:
            if name.startswith(PREFIXES) and name not in known:
                seen.setdefault(name, []).append(host.name)
    found = []
    for name, hosts in seen.items():
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        if near:
            where = ALL if len(hosts) == len(inventory.hosts) else hosts[0]
            found.append(warning(where, name, None, f"unknown variable; did you mean {near[0]}?"))
    return found


def validate(inventory: Inventory, known: frozenset[str] | None = None) -> list[Finding]:
    """Every check; errors first, in inventory order."""
    settings = inventory.cluster
    nodes = max(len(inventory.cluster_hosts()), 1)
    found = list(inventory.load_findings)
    found += check_settings(settings, nodes)
    found += check_disjoint_networks(settings, inventory)
    found += check_control_plane_lb(settings, inventory)
    found += check_groups(inventory)
    found += check_node_names(inventory)
    found += check_addresses(inventory)
    found += check_host_variables(inventory, settings)
    found += check_nfs_volumes(inventory, settings)
    found += check_consistency(inventory, settings)
    found += check_typos(inventory, known or known_variables())
    unique = list({finding.line(): finding for finding in found}.values())
    return sorted(unique, key=lambda f: f.level != "error")
