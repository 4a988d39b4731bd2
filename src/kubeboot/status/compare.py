"""The cluster as kubectl shows it, compared with the inventory: pure functions, no I/O.

The labels, taints and annotations a node should carry come from ``node_labels.node_meta`` (what the playbooks give
the node_meta role) and are compared with ``node_meta.plan`` (what the role would change), so `kubeboot status`
reports drift exactly where a run of site.yml would make a change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from kubeboot import node_labels, node_meta
from kubeboot.contract import CONTROL_PLANE, NFS_SERVER
from kubeboot.derived import network, node_cidr_mask_size
from kubeboot.inventory.model import Inventory
from kubeboot.status import versions
from kubeboot.status.certificates import NodeCertificates

if TYPE_CHECKING:
    from kubeboot.status.endpoint import Endpoint

CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
ROLE_PREFIX = "node-role.kubernetes.io/"

# What a drift item is about: (kind, state) pairs, e.g. ("label", "different").
STATES = ("missing", "different", "extra")


@dataclass(frozen=True)
class ClusterObjects:
    """What the status script read with kubectl on the first control plane (Kubernetes JSON objects)."""

    nodes: list[dict[str, Any]]
    daemonsets: list[dict[str, Any]] = field(default_factory=list)
    kubeadm_config: dict[str, Any] | None = None  # the kube-system/kubeadm-config ConfigMap
    flannel_config: dict[str, Any] | None = None  # the kube-flannel-cfg ConfigMap
    calico_installation: dict[str, Any] | None = None  # operator.tigera.io Installation "default"
    calico_pools: list[dict[str, Any]] = field(default_factory=list)  # crd.projectcalico.org IPPools
    # The kube-system pods labelled tier=control-plane (kubeadm's mirror pods); None when they could not be read.
    control_plane_pods: list[dict[str, Any]] | None = None
    control_plane_pods_error: str = ""  # why they could not be read


@dataclass(frozen=True)
class Drift:
    """One difference between the cluster and the inventory."""

    node: str  # a node name, or "cluster"
    kind: str  # label, taint, annotation, role, version, pod-cidr, node, cni, pod-subnet; vip, service, backend
    key: str
    state: str  # missing, different, extra
    expected: str | None  # None: the inventory does not want it
    actual: str | None  # None: the cluster does not have it
    fix: str = ""  # what to do, when the line says it (version drift)

    def line(self) -> str:
        """e.g. ``worker1: label disktype different: expected "ssd", actual "hdd"``, then ``: FIX`` when known."""
        return (f"{self.node}: {self.kind} {self.key} {self.state}: expected {_shown(self.expected)}, "
                f"actual {_shown(self.actual)}" + (f": {self.fix}" if self.fix else ""))

    def as_dict(self) -> dict[str, Any]:
        found = {"node": self.node, "kind": self.kind, "key": self.key, "state": self.state,
                 "expected": self.expected, "actual": self.actual}
        return found | ({"fix": self.fix} if self.fix else {})


def _shown(value: str | None) -> str:
    return "(none)" if value is None else json.dumps(value)


@dataclass(frozen=True)
class MetaItem:
    """One label, taint or annotation kubeboot manages on a node: what the inventory wants and what is there."""

    kind: str  # label, taint, annotation
    key: str  # label/annotation key, or a taint's key:Effect
    expected: str | None
    actual: str | None

    @property
    def state(self) -> str:
        if self.expected == self.actual:
            return "ok"
        if self.actual is None:
            return "missing"
        return "extra" if self.expected is None else "different"


@dataclass
class NodeStatus:
    """One node: in the inventory, in the cluster, or both."""

    name: str
    in_inventory: bool
    in_cluster: bool
    inventory_roles: list[str] = field(default_factory=list)  # control_plane, worker
    roles: list[str] = field(default_factory=list)  # node-role.kubernetes.io/* as kubectl shows them
    kubelet_version: str | None = None
    # A control plane's components (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) -> the image tag
    # of its mirror pod; empty on a worker, or when the pods could not be read.
    components: dict[str, str] = field(default_factory=dict)
    ready: str | None = None  # True, False, Unknown (the Ready condition)
    pod_cidrs: list[str] = field(default_factory=list)
    meta: list[MetaItem] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # every label the node has
    taints: list[str] = field(default_factory=list)  # every taint the node has, as key[=value]:Effect
    drift: list[Drift] = field(default_factory=list)


@dataclass(frozen=True)
class CniStatus:
    expected: str
    found: list[str]  # flannel, calico
    sources: list[str]  # what they were found from, e.g. "DaemonSet kube-flannel/kube-flannel-ds 3/3 ready"


@dataclass(frozen=True)
class PodRanges:
    expected: str  # kube_pod_subnet
    node_mask: int  # kube_node_cidr_mask_size
    cluster: str | None  # kubeadm ClusterConfiguration networking.podSubnet
    cni: dict[str, list[str]]  # "flannel Network" / "calico IPPool" -> ranges


@dataclass(frozen=True)
class NfsExport:
    server: str
    path: str
    clients: list[str]  # host(options)


@dataclass
class Status:
    """Everything `kubeboot status` reports."""

    through: str  # the first control plane the status was read through
    nodes: list[NodeStatus]
    cni: CniStatus
    pod_ranges: PodRanges
    nfs: list[NfsExport] | None  # None: no nfs_server host declares exports
    drift: list[Drift] = field(default_factory=list)  # cluster-wide drift; node drift lives in each node
    certificates: list[NodeCertificates] = field(default_factory=list)  # control planes first, then the workers
    certificate_warn_days: int = 30  # kube_certificate_warn_days
    certificate_warnings: list[str] = field(default_factory=list)  # certificates.warnings(): one line each
    endpoint: Endpoint | None = None  # with kube_control_plane_lb keepalived: the VIP and haproxy's backends
    kube_version: str = ""  # the inventory's
    components_error: str | None = None  # why the control-plane components could not be read (None: read)

    @property
    def all_drift(self) -> list[Drift]:
        endpoint = self.endpoint.problems() if self.endpoint is not None else []
        return [*[d for n in self.nodes for d in n.drift], *self.drift, *endpoint]

    @property
    def missing(self) -> list[str]:
        """Inventory hosts that are not nodes of the cluster."""
        return [n.name for n in self.nodes if n.in_inventory and not n.in_cluster]

    @property
    def extra(self) -> list[str]:
        """Cluster nodes the inventory does not list."""
        return [n.name for n in self.nodes if n.in_cluster and not n.in_inventory]


def _same_range(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    na, nb = network(a), network(b)
    return na == nb if na is not None and nb is not None else a.strip() == b.strip()


def _items(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        return [i for i in document["items"] if isinstance(i, dict)]
    return []


def objects_from_json(nodes: Any, *, daemonsets: Any = None, kubeadm_config: Any = None, flannel_config: Any = None,
                      calico_installation: Any = None, calico_pools: Any = None, control_plane_pods: Any = None,
                      control_plane_pods_error: str = "") -> ClusterObjects:
    """``ClusterObjects`` from parsed `kubectl get -o json` documents (lists for nodes, daemonsets, pools and the
    control-plane pods; ``control_plane_pods`` None: not read, ``control_plane_pods_error`` saying why)."""
    def one(doc: Any) -> dict[str, Any] | None:
        return doc if isinstance(doc, dict) and doc.get("metadata") else None

    pods = _items(control_plane_pods) if isinstance(control_plane_pods, dict) else None
    error = control_plane_pods_error or ("" if pods is not None else "the kube-system pods were not asked for")
    return ClusterObjects(nodes=_items(nodes), daemonsets=_items(daemonsets), kubeadm_config=one(kubeadm_config),
                          flannel_config=one(flannel_config), calico_installation=one(calico_installation),
                          calico_pools=_items(calico_pools), control_plane_pods=pods,
                          control_plane_pods_error="" if pods is not None else error)


def ready_state(node: Mapping[str, Any]) -> str | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def cluster_roles(labels: Mapping[str, str]) -> list[str]:
    """Roles as `kubectl get nodes` shows them: the names after node-role.kubernetes.io/."""
    return sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX) and k != ROLE_PREFIX)


def pod_cidrs(node: Mapping[str, Any]) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return [str(c) for c in cidrs]


def meta_items(node: Mapping[str, Any], desired: node_meta.Desired) -> list[MetaItem]:
    """Every label, taint and annotation the inventory declares or kubeboot's record names, before and after the
    reconcile node_meta would do: declared items first, in the inventory's order, then the extra ones."""
    step = node_meta.plan(node, desired)
    items: list[MetaItem] = []
    for kind, section, declared in (("label", "labels", desired.labels),
                                    ("annotation", "annotations", desired.annotations)):
        before, after = step.before[section], step.after[section]
        keys = [*declared, *sorted(k for k in before if before.get(k) != after.get(k) and k not in declared)]
        items += [MetaItem(kind, key, after.get(key), before.get(key)) for key in keys
                  if key not in node_meta.RECORDS]
    before_taints = {node_meta.taint_id(t): node_meta.taint_text(t) for t in step.before["taints"]}
    after_taints = {node_meta.taint_id(t): node_meta.taint_text(t) for t in step.after["taints"]}
    declared_ids = [node_meta.taint_id(t) for t in desired.taints]
    dropped = sorted(i for i in before_taints if i not in after_taints)
    items += [MetaItem("taint", ident, after_taints.get(ident), before_taints.get(ident))
              for ident in [*declared_ids, *dropped]]
    return items


def _taint_texts(node: Mapping[str, Any]) -> list[str]:
    return [node_meta.taint_text(t) for t in (node.get("spec") or {}).get("taints") or []]


def _node_drift(status: NodeStatus, inventory: Inventory, sources: Sequence[str] = ("INVENTORY",),
                newest_server: versions.Version | None = None) -> list[Drift]:
    found = [Drift(status.name, item.kind, item.key, item.state, item.expected, item.actual)
             for item in status.meta if item.state != "ok"]
    settings = inventory.cluster
    wants_cp = "control_plane" in status.inventory_roles
    has_cp = "control-plane" in status.roles
    if wants_cp != has_cp:
        found.append(Drift(status.name, "role", "control-plane", "missing" if wants_cp else "extra",
                           "control-plane" if wants_cp else None, "control-plane" if has_cp else None))
    version = str(settings.get("kube_version") or "")
    if version and status.kubelet_version and status.kubelet_version.lstrip("v") != version.lstrip("v"):
        found.append(Drift(status.name, "version", "kubelet", "different", f"v{version.lstrip('v')}",
                           status.kubelet_version,
                           versions.behind_fix(status.name, "kubelet", status.kubelet_version, version, sources,
                                               newest_server=newest_server)))
    for component in versions.KUBE_COMPONENTS:
        tag = status.components.get(component)
        if version and tag is not None and tag.lstrip("v") != version.lstrip("v"):
            found.append(Drift(status.name, "version", component, "different", f"v{version.lstrip('v')}",
                               tag or None, versions.behind_fix(status.name, component, tag, version, sources)))
    subnet = network(str(settings.get("kube_pod_subnet") or ""))
    mask = node_cidr_mask_size(settings)
    for cidr in status.pod_cidrs:
        node_range = network(cidr)
        if subnet is None or node_range is None or node_range.version != subnet.version:
            continue
        if not node_range.subnet_of(subnet):  # type: ignore[arg-type]
            found.append(Drift(status.name, "pod-cidr", "podCIDR", "different", f"inside {subnet}", cidr))
        elif isinstance(mask, int) and node_range.version == 4 and node_range.prefixlen != mask:
            found.append(Drift(status.name, "pod-cidr", "podCIDR", "different", f"a /{mask} inside {subnet}", cidr))
    return found


def declared_exports(inventory: Inventory) -> list[NfsExport] | None:
    """The NFS exports of nfs_server hosts (``nfs_exports``), or None when none is declared."""
    exports = []
    for name in inventory.members(NFS_SERVER):
        host = inventory.hosts.get(name)
        entries = host.var("nfs_exports") if host else None
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not entry.get("path"):
                continue
            clients = [f"{c.get('host', '')}({c.get('options', '')})" if c.get("options") else str(c.get("host", ""))
                       for c in entry.get("clients") or [] if isinstance(c, dict)]
            exports.append(NfsExport(server=name, path=str(entry["path"]), clients=clients))
    return exports or None


def _kubeadm_pod_subnet(config: Mapping[str, Any] | None) -> str | None:
    if not config:
        return None
    text = (config.get("data") or {}).get("ClusterConfiguration")
    try:
        document = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        return None
    networking = document.get("networking") if isinstance(document, dict) else None
    subnet = networking.get("podSubnet") if isinstance(networking, dict) else None
    return str(subnet) if subnet else None


def _flannel_network(config: Mapping[str, Any] | None) -> str | None:
    text = ((config or {}).get("data") or {}).get("net-conf.json")
    try:
        document = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    network = document.get("Network") if isinstance(document, dict) else None
    return str(network) if network else None


def _calico_ranges(objects: ClusterObjects) -> list[str]:
    """The IPPools' CIDRs when there are IPPool objects, else the Installation's ipPools."""
    pools = [str((p.get("spec") or {}).get("cidr")) for p in objects.calico_pools if (p.get("spec") or {}).get("cidr")]
    if pools:
        return pools
    network = ((objects.calico_installation or {}).get("spec") or {}).get("calicoNetwork") or {}
    return [str(p["cidr"]) for p in network.get("ipPools") or [] if isinstance(p, dict) and p.get("cidr")]


def _daemonset_source(ds: Mapping[str, Any]) -> str:
    meta = ds.get("metadata") or {}
    status = ds.get("status") or {}
    where = f"DaemonSet {meta.get('namespace', '')}/{meta.get('name', '')}"
    if "desiredNumberScheduled" in status:
        return f"{where} {status.get('numberReady', 0)}/{status['desiredNumberScheduled']} ready"
    return where


def cni_status(expected: str, objects: ClusterObjects) -> CniStatus:
    """The pod network add-ons the cluster runs, from their DaemonSets and calico's Installation."""
    found: list[str] = []
    sources: list[str] = []
    for ds in objects.daemonsets:
        name = str((ds.get("metadata") or {}).get("name", ""))
        cni = "flannel" if "flannel" in name else "calico" if name == "calico-node" else None
        if cni is None:
            continue
        sources.append(_daemonset_source(ds))
        if cni not in found:
            found.append(cni)
    if objects.calico_installation is not None:
        sources.append("Installation default (operator.tigera.io)")
        if "calico" not in found:
            found.append("calico")
    if objects.flannel_config is not None and "flannel" not in found:
        meta = objects.flannel_config.get("metadata") or {}
        sources.append(f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}")
        found.append("flannel")
    return CniStatus(expected=expected, found=found, sources=sources)


def compare(inventory: Inventory, objects: ClusterObjects, through: str,
            sources: Sequence[str] = ("INVENTORY",)) -> Status:
    """The status of every inventory host and cluster node, and the cluster-wide settings, with all drift;
    ``sources``: the inventories, as the fixes name them."""
    settings = inventory.cluster
    hostvars = {name: host.variables for name, host in inventory.hosts.items()}
    names = [h.name for h in inventory.cluster_hosts()]
    desired = node_labels.nodes_meta(names, hostvars, inventory.groups)
    cluster_nodes = {str((n.get("metadata") or {}).get("name", "")): n for n in objects.nodes}
    groups = {CONTROL_PLANE: inventory.members(CONTROL_PLANE), "kube_node": inventory.members("kube_node")}
    kube_version = str(settings.get("kube_version") or "")
    components = versions.components_by_node(objects.control_plane_pods or [])

    statuses: list[NodeStatus] = []
    for name in [*names, *sorted(n for n in cluster_nodes if n not in names)]:
        node = cluster_nodes.get(name)
        status = NodeStatus(name=name, in_inventory=name in names, in_cluster=node is not None)
        if status.in_inventory:
            status.inventory_roles = [r for r, group in (("control_plane", CONTROL_PLANE), ("worker", "kube_node"))
                                      if name in groups[group]]
        if node is not None:
            labels = dict((node.get("metadata") or {}).get("labels") or {})
            status.labels = labels
            status.taints = _taint_texts(node)
            status.roles = cluster_roles(labels)
            status.kubelet_version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
            status.ready = ready_state(node)
            status.pod_cidrs = pod_cidrs(node)
            status.components = dict(components.get(name, {}))
        if node is not None and status.in_inventory:
            status.meta = meta_items(node, node_meta.Desired.from_params(desired[name]))
            status.drift = _node_drift(status, inventory, sources, versions.newest_apiserver(components))
        elif status.in_inventory:
            status.drift = [Drift(name, "node", name, "missing", "in the cluster", None)]
        else:
            status.drift = [Drift(name, "node", name, "extra", None, "in the cluster")]
        if node is not None:
            skew = versions.kubelet_skew(name, status.kubelet_version, components, kube_version, sources)
            status.drift += [Drift(name, "version", key, "different", expected, actual, fix)
                             for key, expected, actual, fix in skew]
        statuses.append(status)

    expected_cni = str(settings.get("kube_cni") or "")
    cni = cni_status(expected_cni, objects)
    subnet = str(settings.get("kube_pod_subnet") or "")
    ranges: dict[str, list[str]] = {}
    flannel_network = _flannel_network(objects.flannel_config)
    if flannel_network:
        ranges["flannel Network"] = [flannel_network]
    calico = _calico_ranges(objects)
    if calico:
        ranges["calico IPPool" if objects.calico_pools else "calico Installation ipPools"] = calico
    mask = node_cidr_mask_size(settings)
    pod_ranges = PodRanges(expected=subnet, node_mask=mask or 0,
                           cluster=_kubeadm_pod_subnet(objects.kubeadm_config), cni=ranges)

    drift: list[Drift] = []
    if cni.found != [expected_cni]:
        drift.append(Drift("cluster", "cni", "pod network", "missing" if not cni.found else "different",
                           expected_cni, ",".join(cni.found) or None))
    if pod_ranges.cluster is not None and not _same_range(pod_ranges.cluster, subnet):
        drift.append(Drift("cluster", "pod-subnet", "kubeadm podSubnet", "different", subnet, pod_ranges.cluster))
    for source, values in ranges.items():
        if len(values) != 1 or not _same_range(values[0], subnet):
            drift.append(Drift("cluster", "pod-subnet", source, "different", subnet, ",".join(values)))
    drift += [Drift("cluster", "version", key, "different", expected, actual, fix)
              for key, expected, actual, fix in versions.mixed_versions(components, kube_version, sources)]
    return Status(through=through, nodes=statuses, cni=cni, pod_ranges=pod_ranges,
                  nfs=declared_exports(inventory), drift=drift, kube_version=kube_version,
                  components_error=None if objects.control_plane_pods is not None
                  else objects.control_plane_pods_error or "the kube-system pods were not asked for")
