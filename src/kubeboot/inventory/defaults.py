"""The cluster-wide defaults of the inventory contract (data/cluster_defaults.yml) and the values derived from them."""

from __future__ import annotations

import copy
import ipaddress
from functools import cache
from importlib import resources
from typing import Any

import yaml

DEFAULTS_RESOURCE = "cluster_defaults.yml"

# Inventory groups of the contract.
CONTROL_PLANE = "kube_control_plane"
WORKERS = "kube_node"
CLUSTER = "k8s_cluster"
NFS_SERVER = "nfs_server"
MSMS = "msms"
GROUPS = (CONTROL_PLANE, WORKERS, CLUSTER, NFS_SERVER, MSMS)

# Variables set per host or group (not required to agree across the cluster).
PER_HOST_VARIABLES = frozenset({
    "ansible_host", "node_ip", "public_nic_mac", "node_labels", "node_taints", "node_group_labels",
    "node_group_taints", "msms_labels", "msms_taints", "msms_fixed", "msms_public_address", "nfs_exports",
})

# Cluster-wide variables that may still differ between nodes: how each node gets its software (a mirror per site,
# a mix of package and binary installs) and its registry mirrors. Everything else must agree across the cluster.
NODE_LOCAL_SETTINGS = frozenset({
    "kube_install_method", "kube_package_repo_url", "kube_download_url", "containerd_install_method",
    "containerd_registry_mirrors",
})

# Prefixes of the contract's variables: an unknown name with one of them is probably a typo.
PREFIXES = ("kube_", "flannel_", "calico_", "nfs_", "containerd_", "public_nic_", "node_", "msms_")

DEFAULT_PACKAGE_REPO = "https://pkgs.k8s.io/core:/stable:/v{minor}"


@cache
def _load() -> dict[str, Any]:
    text = resources.files("kubeboot").joinpath("data", DEFAULTS_RESOURCE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{DEFAULTS_RESOURCE} must hold a mapping")
    return data


def cluster_defaults() -> dict[str, Any]:
    """Every cluster-wide variable of the contract with its default (a fresh copy)."""
    return copy.deepcopy(_load())


def contract_variables() -> frozenset[str]:
    """Names of every variable of the contract: the cluster-wide ones and the per-host ones."""
    return frozenset(_load()) | PER_HOST_VARIABLES


def kube_minor(version: str) -> str:
    """'1.33.5' -> '1.33'."""
    return ".".join(str(version).lstrip("v").split(".")[:2])


def package_repo_url(variables: dict[str, Any]) -> str:
    """kube_package_repo_url, or the pkgs.k8s.io repository of the version's minor when it is empty."""
    url = str(variables.get("kube_package_repo_url") or "")
    return url or DEFAULT_PACKAGE_REPO.format(minor=kube_minor(str(variables.get("kube_version", ""))))


def control_plane_endpoint(variables: dict[str, Any], first_control_plane_address: str | None) -> str:
    """kube_control_plane_endpoint, or the first control plane's node address and the API server port."""
    endpoint = str(variables.get("kube_control_plane_endpoint") or "")
    if endpoint or not first_control_plane_address:
        return endpoint
    port = variables.get("kube_apiserver_port", 6443)
    try:
        if ipaddress.ip_address(first_control_plane_address).version == 6:
            return f"[{first_control_plane_address}]:{port}"
    except ValueError:
        pass
    return f"{first_control_plane_address}:{port}"


def cluster_dns_address(service_subnet: str) -> str:
    """The cluster DNS service address: the 10th address of the service range."""
    return str(ipaddress.ip_network(service_subnet).network_address + 10)
