"""Filters that map the inventory's NFS declarations onto the nfs_server, nfs_client and nfs_volumes roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import nfs


class FilterModule:
    """kubeboot NFS filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_nfs_server_exports": nfs.server_exports,
            "kubeboot_nfs_cluster_addresses": nfs.cluster_addresses,
            "kubeboot_nfs_volumes": nfs.volumes,
            "kubeboot_nfs_in_use": nfs.in_use,
        }
