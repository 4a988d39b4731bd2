"""Values derived from the inventory that the playbooks and the validator share (no live host needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeboot.inventory import defaults

# The sandbox (pause) image kubeadm expects for each supported minor (kubeadm's constants.PauseVersion).
PAUSE_VERSIONS = {"1.31": "3.10", "1.32": "3.10", "1.33": "3.10", "1.34": "3.10.1"}


minor_of = defaults.kube_minor


def node_address(hostvars: Mapping[str, Any], name: str) -> str:
    """The address a node is known by in the cluster: node_ip, else ansible_host, else its inventory name."""
    host = hostvars.get(name, {})
    return str(host.get("node_ip") or host.get("ansible_host") or name)


def cluster_hosts(names: Iterable[str], hostvars: Mapping[str, Any]) -> list[dict[str, str]]:
    """/etc/hosts entries ({name, address}) for every cluster node, in inventory order."""
    return [{"name": name, "address": node_address(hostvars, name)} for name in names]


def node_roles(name: str, groups: Mapping[str, Iterable[str]]) -> list[str]:
    """'control_plane' and/or 'worker' for a node, from the contract's groups."""
    roles = []
    if name in groups.get("kube_control_plane", []):
        roles.append("control_plane")
    if name in groups.get("kube_node", []):
        roles.append("worker")
    return roles


def package_repo_url(version: str, url: str = "") -> str:
    """The pkgs.k8s.io-style repository for a version's minor; an operator's URL (mirror) wins."""
    return defaults.package_repo_url({"kube_version": version, "kube_package_repo_url": url}).rstrip("/")


def pause_image(version: str, repository: str) -> str:
    """The sandbox image containerd must use so that kubeadm's preflight does not warn about it."""
    return f"{repository.rstrip('/')}/pause:{PAUSE_VERSIONS.get(minor_of(version), '3.10')}"


def control_plane_endpoint(endpoint: str, first_control_plane: str, hostvars: Mapping[str, Any], port: int) -> str:
    """kube_control_plane_endpoint, or the first control plane's node address and the API server port."""
    return defaults.control_plane_endpoint(
        {"kube_control_plane_endpoint": endpoint, "kube_apiserver_port": port},
        node_address(hostvars, first_control_plane),
    )
