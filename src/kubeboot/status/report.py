"""How `kubeboot status` looks: tables for people, a JSON document for scripts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubeboot.status.certificates import NodeCertificates, Row, days
from kubeboot.status.compare import Drift, NodeStatus, Status
from kubeboot.status.endpoint import Endpoint, fix
from kubeboot.status.remote import EXIT_UNREACHABLE
from kubeboot.status.versions import COMPONENTS

EXIT_OK = 0
EXIT_DRIFT = 3


def exit_code(status: Status) -> int:
    """4 when a node's certificates or API endpoint could not be read, 3 for drift (the API endpoint's problems
    included) or a certificate close to expiry, else 0."""
    if any(n.errors for n in status.certificates) or (status.endpoint is not None and status.endpoint.errors):
        return EXIT_UNREACHABLE
    if status.all_drift or any(n.marked(status.certificate_warn_days) for n in status.certificates):
        return EXIT_DRIFT
    return EXIT_OK


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _value(value: str | None) -> str:
    if value is None:
        return "-"
    return value if value else '""'


def _node_row(node: NodeStatus) -> tuple[str, ...]:
    if not node.in_cluster:
        where = "not in the cluster"
    elif not node.in_inventory:
        where = "not in the inventory"
    else:
        where = f"{len(node.drift)} drift" if node.drift else "ok"
    return (node.name, ",".join(node.roles) or ("<none>" if node.in_cluster else "-"),
            node.kubelet_version or "-", node.ready or "-", ",".join(node.pod_cidrs) or "-", where)


def _cluster_line(drift: list[Drift], kind: str, key: str | None = None) -> str:
    found = [d for d in drift if d.kind == kind and (key is None or d.key == key)]
    return "  DRIFT" if found else ""


def table(status: Status) -> str:
    """Nodes, their managed labels and taints, the pod network, NFS and the drift, as text."""
    lines = [f"cluster read through {status.through}", ""]
    lines += _columns([("NODE", "ROLES", "VERSION", "READY", "POD CIDRS", "STATUS"),
                       *[_node_row(n) for n in status.nodes]])
    lines += component_lines(status)

    meta_rows: list[tuple[str, ...]] = [("NODE", "KIND", "KEY", "INVENTORY", "CLUSTER", "STATE")]
    for node in status.nodes:
        meta_rows += [(node.name, item.kind, item.key, _value(item.expected), _value(item.actual),
                       item.state if item.state == "ok" else f"{item.state.upper()}") for item in node.meta]
    lines += ["", "Labels, taints and annotations kubeboot manages (inventory vs cluster):"]
    lines += ["  (none declared)"] if len(meta_rows) == 1 else _columns(meta_rows)

    if status.missing:
        lines += ["", f"Inventory hosts missing from the cluster: {', '.join(status.missing)}"]
    if status.extra:
        lines += ["", f"Cluster nodes not in the inventory: {', '.join(status.extra)}"]

    cni, ranges = status.cni, status.pod_ranges
    lines += ["", "Pod network:",
              f"  CNI: {', '.join(cni.found) or 'none found'} (inventory: {cni.expected})"
              + _cluster_line(status.drift, "cni")]
    lines += [f"    from {source}" for source in cni.sources]
    lines.append(f"  kube_pod_subnet: {ranges.expected} (node ranges /{ranges.node_mask})")
    lines.append(f"  kubeadm podSubnet: {ranges.cluster or 'not found'}"
                 + _cluster_line(status.drift, "pod-subnet", "kubeadm podSubnet"))
    lines += [f"  {source}: {', '.join(values)}" + _cluster_line(status.drift, "pod-subnet", source)
              for source, values in ranges.cni.items()]

    lines += ["", "NFS exports (declared in the inventory):"]
    if status.nfs is None:
        lines.append("  not declared")
    else:
        lines += [f"  {e.server}:{e.path} {' '.join(e.clients) or '(no clients listed)'}" for e in status.nfs]

    if status.endpoint is not None:
        lines += endpoint_lines(status.endpoint)
    lines += certificate_lines(status)

    drift = status.all_drift
    lines.append("")
    if drift:
        lines.append(f"DRIFT ({len(drift)}):")
        lines += [f"  {d.line()}" for d in drift]
    else:
        lines.append("no drift: the cluster is as the inventory declares")
    if status.certificate_warnings:
        lines += ["", *status.certificate_warnings]
    return "\n".join(lines)


def component_lines(status: Status) -> list[str]:
    """Each control plane's components at the image tag of its mirror pod, against kube_version."""
    wanted = f"v{status.kube_version.lstrip('v')}" if status.kube_version else "not set"
    lines = ["", f"Control-plane components (kube-system mirror pods; kube_version {wanted}):"]
    if status.components_error is not None:
        return [*lines, f"  not read: {status.components_error}"]
    shown = [n for n in status.nodes if n.components or (n.in_cluster and "control-plane" in n.roles)]
    if not shown:
        return [*lines, "  none found (no kube-system pod labelled tier=control-plane)"]
    rows: list[tuple[str, ...]] = [("NODE", *(c.removeprefix("kube-").upper() for c in COMPONENTS))]
    rows += [(n.name, *(_value(n.components.get(c)) for c in COMPONENTS)) for n in shown]
    return [*lines, *[f"  {line}" for line in _columns(rows)]]


def _expires(row: Row) -> str:
    if not row.expires:
        return "-"
    return dt.datetime.fromisoformat(row.expires).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _vip_holder(api: Endpoint) -> str:
    holders = api.holders
    if not holders:
        return "nobody  PROBLEM"
    if len(holders) > 1:
        return f"{', '.join(holders)}  PROBLEM: split brain"
    return holders[0]


def endpoint_lines(api: Endpoint) -> list[str]:
    """Who holds the VIP, then each control plane's keepalived and haproxy and haproxy's backends, then what is
    wrong with the fix."""
    lines = ["", f"API endpoint {api.endpoint} (kube_control_plane_lb keepalived):",
             f"  VIP {api.vip} held by: {_vip_holder(api)}"]
    if not api.nodes:
        lines.append("  no control plane read")
    for node in api.nodes:
        if node.holds_vip is None and not node.services and node.servers is None:
            lines.append(f"  {node.where}: not read: {'; '.join(node.errors)}")
            continue
        vip = {True: "holds the VIP", False: "does not hold the VIP", None: "VIP not known"}[node.holds_vip]
        services = ", ".join(f"{unit} {node.services.get(unit) or 'not known'}" for unit in ("keepalived", "haproxy"))
        lines.append(f"  {node.where}: {vip}; {services}")
        if node.servers:
            rows: list[tuple[str, ...]] = [("BACKEND", "STATUS", "CHECK", "SINCE")]
            rows += [(s.name, s.status, s.check or "-", "-" if s.lastchg is None else f"{s.lastchg} s")
                     for s in node.servers]
            lines += [f"    {line}" for line in _columns(rows)]
        elif node.servers == []:
            lines.append("    haproxy has no backend kube_apiserver server")
        elif not node.errors:
            lines.append("    backends not read: haproxy does not run")
        lines += [f"    not read: {error}" for error in node.errors]
    lines += [f"  {d.line()}: {fix(d)}" for d in api.problems()]
    return lines


def certificate_lines(status: Status) -> list[str]:
    """Each node's certificates with their days left and state; a node not read says why, in one line."""
    warn_days = status.certificate_warn_days
    lines = ["", f"Certificates (whole days left; marked within kube_certificate_warn_days = {warn_days} days of "
                 "expiry):"]
    if not status.certificates:
        lines.append("  none read")
    for node in status.certificates:
        role = "control plane" if node.control_plane else "worker"
        if not node.rows:
            lines.append(f"  {node.where}, {role}: not read: {'; '.join(node.errors)}")
            continue
        lines.append(f"  {node.where}, {role}:")
        rows: list[tuple[str, ...]] = [("NAME", "KIND", "EXPIRES", "DAYS LEFT", "STATE")]
        rows += [(r.name, r.kind, _expires(r), days(r), r.state(warn_days)) for r in node.rows]
        lines += [f"    {line}" for line in _columns(rows)]
        lines += [f"    not read: {error}" for error in node.errors]
    return lines


def certificates_json(node: NodeCertificates | None, warn_days: int) -> dict[str, Any] | None:
    if node is None:
        return None
    return {"where": node.where, "control_plane": node.control_plane, "read": not node.errors,
            "errors": node.errors, "items": [r.as_dict(warn_days) for r in node.rows]}


def node_json(node: NodeStatus, certificates: dict[str, Any] | None = None) -> dict[str, Any]:
    """One node; ``certificates`` is None for a node whose certificates were not looked at (not in the inventory,
    or not in the cluster)."""
    return {
        "name": node.name,
        "in_inventory": node.in_inventory,
        "in_cluster": node.in_cluster,
        "inventory_roles": node.inventory_roles,
        "roles": node.roles,
        "kubelet_version": node.kubelet_version,
        "components": node.components,
        "ready": node.ready,
        "pod_cidrs": node.pod_cidrs,
        "managed": [{"kind": i.kind, "key": i.key, "expected": i.expected, "actual": i.actual, "state": i.state}
                    for i in node.meta],
        "labels": node.labels,
        "taints": node.taints,
        "drift": [d.as_dict() for d in node.drift],
        "certificates": certificates,
    }


def to_json(status: Status) -> dict[str, Any]:
    """A document for scripts; ``drift`` lists every difference, per node and cluster-wide."""
    ranges = status.pod_ranges
    read = {c.name: c for c in status.certificates}
    return {
        "through": status.through,
        "nodes": [node_json(n, certificates_json(read.get(n.name), status.certificate_warn_days))
                  for n in status.nodes],
        "kube_version": status.kube_version,
        "components_error": status.components_error,
        "missing_from_cluster": status.missing,
        "not_in_inventory": status.extra,
        "cni": {"expected": status.cni.expected, "found": status.cni.found, "sources": status.cni.sources},
        "pod_ranges": {"kube_pod_subnet": ranges.expected, "kube_node_cidr_mask_size": ranges.node_mask,
                       "kubeadm_pod_subnet": ranges.cluster, "cni": ranges.cni},
        "nfs_exports": None if status.nfs is None else [
            {"server": e.server, "path": e.path, "clients": e.clients} for e in status.nfs],
        "drift": [d.as_dict() for d in status.all_drift],
        "certificate_warn_days": status.certificate_warn_days,
        "warnings": status.certificate_warnings,
        "endpoint": None if status.endpoint is None else status.endpoint.as_dict(),
        "exit_code": exit_code(status),
    }
