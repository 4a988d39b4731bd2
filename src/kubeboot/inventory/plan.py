"""The derived plan of a cluster: address ranges, DNS address, node ranges, endpoint, add-ons, nodes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kubeboot.contract import CONTROL_PLANE, MSMS, WORKERS, as_bool, as_int
from kubeboot.derived import (
    control_plane_endpoint,
    dns_address,
    node_address,
    node_cidr_mask_size,
    package_repo_url,
    parse_network,
    vip_interface,
    vip_router_id,
)
from kubeboot.inventory.model import Inventory


@dataclass
class NodePlan:
    name: str
    roles: list[str]
    address: str
    ansible_host: str


@dataclass
class Plan:
    pod_subnet: str
    service_subnet: str
    cluster_dns: str
    dns_domain: str
    node_mask: int | None
    node_ranges_available: int | None
    nodes: int
    cni: str
    cni_backend: str
    calico_block_size: int | None
    calico_blocks_available: int | None
    control_plane_endpoint: str
    control_plane_lb: str
    kube_version: str
    install_method: str
    install_source: str
    image_repository: str
    proxy_mode: str
    node_list: list[NodePlan] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        ranges = "-" if self.node_ranges_available is None else str(self.node_ranges_available)
        rows = [
            ("kubernetes version", self.kube_version),
            ("pod range", self.pod_subnet),
            ("service range", self.service_subnet),
            ("cluster DNS", f"{self.cluster_dns} ({self.dns_domain})"),
            ("pod range per node", f"/{self.node_mask}" if self.node_mask is not None else "-"),
            ("node pod ranges", f"{ranges} available for {self.nodes} nodes"),
        ]
        if self.cni == "calico":
            blocks = "-" if self.calico_blocks_available is None else str(self.calico_blocks_available)
            rows.append(("calico blocks", f"/{self.calico_block_size}: {blocks} available for {self.nodes} nodes"))
        rows += [
            ("control-plane endpoint", self.control_plane_endpoint or "-"),
            ("API load balancer", self.control_plane_lb),
            ("pod network", f"{self.cni} ({self.cni_backend})"),
            ("kube-proxy mode", self.proxy_mode),
            ("install method", f"{self.install_method} from {self.install_source}"),
            ("image repository", self.image_repository),
        ]
        return rows

    def table(self) -> str:
        width = max(len(key) for key, _ in self.rows())
        lines = [f"{key:<{width}}  {value}" for key, value in self.rows()]
        if self.node_list:
            name_w = max(len("node"), *(len(n.name) for n in self.node_list))
            role_w = max(len("roles"), *(len(",".join(n.roles)) for n in self.node_list))
            lines += ["", f"{'node':<{name_w}}  {'roles':<{role_w}}  address"]
            for node in self.node_list:
                extra = f" (ssh {node.ansible_host})" if node.ansible_host != node.address else ""
                lines.append(f"{node.name:<{name_w}}  {','.join(node.roles):<{role_w}}  {node.address}{extra}")
        return "\n".join(lines)


def _count(prefix: int | None, length: int | None) -> int | None:
    if prefix is None or length is None or length < prefix:
        return None
    return int(2 ** (length - prefix))


def load_balancer(settings: dict[str, Any], control_planes: list[str]) -> str:
    """What keeps the API endpoint up, in a line of the plan."""
    mode = str(settings.get("kube_control_plane_lb") or "none")
    if mode == "external":
        return "external (your load balancer at the endpoint)"
    if mode != "keepalived":
        return "none"
    multicast = "unicast" if as_bool(settings.get("kube_control_plane_vip_unicast")) else "multicast"
    return (f"keepalived VIP {settings.get('kube_control_plane_vip')} on {vip_interface(settings)} (router id "
            f"{vip_router_id(settings)}, {multicast}), haproxy on {', '.join(control_planes) or '-'} to port "
            f"{settings.get('kube_apiserver_port')}")


def make_plan(inventory: Inventory) -> Plan:
    settings = inventory.cluster
    pod, _ = parse_network(settings.get("kube_pod_subnet"))
    service, _ = parse_network(settings.get("kube_service_subnet"))
    hosts = inventory.cluster_hosts()
    nodes = [
        NodePlan(
            name=h.name,
            roles=[role for group, role in ((CONTROL_PLANE, "control-plane"), (WORKERS, "worker"), (MSMS, "msms"))
                   if h.name in inventory.members(group)],
            address=node_address(h.variables, h.name),
            ansible_host=str(h.var("ansible_host") or h.name),
        )
        for h in hosts
    ]
    first_cp = next((n.address for n in nodes if "control-plane" in n.roles), None)
    mask = node_cidr_mask_size(settings)
    block = as_int(settings.get("calico_block_size"))
    cni = str(settings.get("kube_cni"))
    backend = str(settings.get("flannel_backend") if cni == "flannel" else settings.get("calico_encapsulation"))
    method = str(settings.get("kube_install_method"))
    source = (package_repo_url(settings.get("kube_version"), settings.get("kube_package_repo_url"))
              if method == "package" else str(settings.get("kube_download_url")))
    return Plan(
        pod_subnet=str(pod) if pod else str(settings.get("kube_pod_subnet")),
        service_subnet=str(service) if service else str(settings.get("kube_service_subnet")),
        cluster_dns=dns_address(settings.get("kube_service_subnet")) or "-",
        dns_domain=str(settings.get("kube_dns_domain")),
        node_mask=mask,
        node_ranges_available=_count(pod.prefixlen if pod else None, mask),
        nodes=len(hosts),
        cni=cni,
        cni_backend=backend,
        calico_block_size=block,
        calico_blocks_available=_count(pod.prefixlen if pod else None, block) if cni == "calico" else None,
        control_plane_endpoint=control_plane_endpoint(settings, first_cp),
        control_plane_lb=load_balancer(settings, [n.name for n in nodes if "control-plane" in n.roles]),
        kube_version=str(settings.get("kube_version")),
        install_method=method,
        install_source=source,
        image_repository=str(settings.get("kube_image_repository")),
        proxy_mode=str(settings.get("kube_proxy_mode")),
        node_list=nodes,
    )


__all__ = ["NodePlan", "Plan", "make_plan"]
