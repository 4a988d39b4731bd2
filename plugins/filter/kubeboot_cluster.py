"""Filters that map the inventory contract onto role inputs; the logic lives in the kubeboot package."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import cluster


class FilterModule:
    """kubeboot cluster filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_cluster_hosts": cluster.cluster_hosts,
            "kubeboot_node_address": lambda name, hostvars: cluster.node_address(hostvars, name),
            "kubeboot_node_roles": cluster.node_roles,
            "kubeboot_package_repo_url": cluster.package_repo_url,
            "kubeboot_pause_image": cluster.pause_image,
            "kubeboot_minor": cluster.minor_of,
            "kubeboot_control_plane_endpoint": cluster.control_plane_endpoint,
        }
