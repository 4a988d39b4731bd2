"""What each Node should carry, from the inventory: labels, taints, annotations, and what the kubelet may register.

Scopes are merged in this order, a later one winning per label key (per key and effect for taints):
1. the msms profile, for hosts in the msms group: msms_labels, msms_taints, msms_fixed_label: "true" when the host
   sets msms_fixed, and the annotation msms_public_address_annotation = msms_public_address (else the node address);
2. node_group_labels / node_group_taints (meant for group_vars);
3. node_labels / node_taints (meant for host_vars or the host's line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeboot import derived
from kubeboot.contract import MSMS
from kubeboot.inventory import syntax

SCOPES = (("node_group_labels", "node_group_taints"), ("node_labels", "node_taints"))


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")


def _merge_taints(taints: dict[str, dict[str, str]], items: Iterable[Any]) -> None:
    for item in items or []:
        key, value, effect = syntax.parse_taint(str(item))
        taint = {"key": key, "effect": effect, **({"value": value} if value else {})}
        taints[f"{key}:{effect}"] = taint


def node_meta(name: str, hostvars: Mapping[str, Any], groups: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """{labels, taints (key[=value]:Effect strings), annotations} the inventory declares for one node."""
    host = hostvars.get(name, {})
    labels: dict[str, str] = {}
    taints: dict[str, dict[str, str]] = {}
    annotations: dict[str, str] = {}
    if name in list(groups.get(MSMS, [])):
        labels.update({str(k): str(v) for k, v in (derived.setting(host, "msms_labels") or {}).items()})
        _merge_taints(taints, derived.setting(host, "msms_taints"))
        if _truthy(derived.setting(host, "msms_fixed")):
            labels[str(derived.setting(host, "msms_fixed_label"))] = "true"
        address = str(derived.setting(host, "msms_public_address") or "") or derived.host_address(hostvars, name)
        annotations[str(derived.setting(host, "msms_public_address_annotation"))] = address
    for label_var, taint_var in SCOPES:
        labels.update({str(k): str(v) for k, v in (derived.setting(host, label_var) or {}).items()})
        _merge_taints(taints, derived.setting(host, taint_var))
    texts = [f"{t['key']}={t['value']}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
             for t in taints.values()]
    return {"labels": labels, "taints": texts, "annotations": annotations}


def nodes_meta(names: Iterable[str], hostvars: Mapping[str, Any],
               groups: Mapping[str, Iterable[str]]) -> dict[str, dict[str, Any]]:
    """node_meta of every node named, keyed by node name."""
    return {name: node_meta(name, hostvars, groups) for name in names}


def registration_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    """Labels for the kubelet's --node-labels: only those NodeRestriction lets a kubelet set on its own Node."""
    return {str(k): str(v) for k, v in sorted(labels.items())
            if syntax.kubelet_may_set(str(k)) and not syntax.applied_through_api(str(k))}


def taint_objects(taints: Iterable[str]) -> list[dict[str, str]]:
    """kubeadm nodeRegistration.taints from key[=value]:Effect strings."""
    out = []
    for text in taints:
        key, value, effect = syntax.parse_taint(str(text))
        out.append({"key": key, **({"value": value} if value else {}), "effect": effect})
    return out


def msms_ports(port_range: str) -> list[dict[str, str]]:
    """The RTP port range of msms hosts as os_prep firewall entries (UDP)."""
    text = str(port_range or "").strip()
    return [{"port": text, "proto": "udp", "purpose": "msms RTP"}] if text else []
