"""Filters that turn the inventory's labels, taints and msms profile into role inputs (logic: kubeboot.node_labels)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import node_labels


class FilterModule:
    """kubeboot node label and taint filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_node_meta": node_labels.node_meta,
            "kubeboot_nodes_meta": node_labels.nodes_meta,
            "kubeboot_registration_labels": node_labels.registration_labels,
            "kubeboot_taint_objects": node_labels.taint_objects,
            "kubeboot_msms_ports": node_labels.msms_ports,
        }
