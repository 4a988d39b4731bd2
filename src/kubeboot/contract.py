"""The inventory contract, in one typed place: every setting's name, type, default, allowed values, scope and meaning.

Everything else is made from this table: the defaults the vars plugin gives (plugins/vars/kubeboot_defaults.py), the
validator's type and enum checks (kubeboot.inventory.checks.check_types), which settings must agree across the
cluster (check_consistency), the known names behind the typo warnings, and the tables of README.md and
inventory/sample/group_vars/all/cluster.yml (`python -m kubeboot.contract --write` rewrites them; a unit test fails
when they drift).

Adding a setting: a Setting here, the playbook line that maps it onto the role input that uses it, and a test.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Inventory groups of the contract.
CONTROL_PLANE = "kube_control_plane"
WORKERS = "kube_node"
CLUSTER = "k8s_cluster"
NFS_SERVER = "nfs_server"
MSMS = "msms"
GROUPS = (CONTROL_PLANE, WORKERS, CLUSTER, NFS_SERVER, MSMS)

# Prefixes of the contract's variables: an unknown name with one of them is probably a typo.
PREFIXES = ("kube_", "flannel_", "calico_", "nfs_", "containerd_", "public_nic_", "node_", "msms_", "etcd_")

SUPPORTED_MINORS = ("1.31", "1.32", "1.33", "1.34")

Kind = Literal["str", "int", "float", "bool", "enum", "list", "dict", "duration"]
# cluster: one value on every cluster node (group_vars/all); node: a cluster-wide default that may differ per node
# (a mirror per site); host: set per host or group.
Scope = Literal["cluster", "node", "host"]

TRUE_STRINGS = ("true", "yes", "on", "1")
FALSE_STRINGS = ("false", "no", "off", "0")


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Setting:
    """One variable of the contract."""

    name: str
    kind: Kind
    default: Any
    description: str
    scope: Scope = "cluster"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None  # a float's granularity (its value a whole multiple of it)
    empty_ok: bool = False  # "" is allowed besides the kind (an unset optional value)
    # What the type error says (default: one made from the kind); an int's example in "(an integer such as N)".
    type_message: str = ""
    example: str = ""  # extra commented lines for the sample inventory (YAML, without the leading "# ")

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


SETTINGS: tuple[Setting, ...] = (
    # ---------------------------------------------------------------- Kubernetes
    Setting("kube_version", "str", "1.33.5",
            "Kubernetes version, a full patch version of a supported minor (1.31 to 1.34; kubeadm config API "
            "v1beta4)."),
    Setting("kube_pod_subnet", "str", "10.244.0.0/16",
            "Pod network (kubeadm podSubnet, flannel's Network, calico's IP pool). One range; must not overlap "
            "anything else."),
    Setting("kube_service_subnet", "str", "10.96.0.0/12",
            "Service network (kubeadm serviceSubnet). kube-apiserver accepts at most a /12 (IPv4) or /108 (IPv6). "
            "The cluster DNS service gets its 10th address."),
    Setting("kube_dns_domain", "str", "cluster.local", "Cluster DNS domain."),
    Setting("kube_control_plane_endpoint", "str", "",
            "Address clients and joining nodes use for the API server, host:port. Empty: the first control plane's "
            "node address and kube_apiserver_port, or with kube_control_plane_lb keepalived the VIP and "
            "kube_control_plane_lb_port. Required with kube_control_plane_lb external (your load balancer)."),
    Setting("kube_apiserver_port", "int", 6443, "Port the API server listens on (kubeadm localAPIEndpoint.bindPort).",
            minimum=1, maximum=65535, type_message="must be a port number between 1 and 65535"),
    # ---------------------------------------------------------------- highly available API endpoint
    Setting("kube_control_plane_lb", "enum", "none",
            "What keeps the API endpoint up: none (the first control plane's address, or kube_control_plane_endpoint "
            "as it is), keepalived (kube_control_plane_vip held by keepalived on the control planes, with haproxy on "
            "each balancing to every API server; the endpoint is VIP:kube_control_plane_lb_port) or external (your "
            "own load balancer at kube_control_plane_endpoint).", choices=("none", "keepalived", "external")),
    Setting("kube_control_plane_vip", "str", "",
            "With keepalived: the virtual IPv4 address of the API, free and in the control planes' subnet (outside "
            "the pod and service ranges)."),
    Setting("kube_control_plane_vip_interface", "str", "",
            "With keepalived: the NIC that carries the VIP. Empty: public_nic_name.", scope="node"),
    Setting("kube_control_plane_vip_router_id", "int", "",
            "With keepalived: the VRRP virtual router id (1 to 255), unique among the VRRP routers of the "
            "network. Empty: the VIP's last octet (255 when that is 0).", empty_ok=True, minimum=1, maximum=255,
            type_message="must be a VRRP router id between 1 and 255, or empty for the VIP's last octet"),
    Setting("kube_control_plane_vip_unicast", "bool", False,
            "With keepalived: send VRRP adverts to the other control planes' node addresses instead of multicast "
            "(for networks that drop multicast)."),
    Setting("kube_control_plane_vip_advert_interval", "float", 0.5,
            "With keepalived: seconds between two VRRP adverts (VRRPv3: 0.01 to 40.95 in steps of 0.01). A control "
            "plane that goes away silently (powered off) loses the VIP about three intervals after its last advert.",
            minimum=0.01, maximum=40.95, step=0.01,
            type_message="must be a number of seconds between 0.01 and 40.95 in steps of 0.01 (VRRPv3), such as 0.5"),
    Setting("kube_control_plane_lb_port", "int", 8443,
            "With keepalived: the port haproxy listens on (on the VIP and 127.0.0.1) on every control plane; the API "
            "servers keep kube_apiserver_port, which must differ.", minimum=1, maximum=65535,
            type_message="must be a port number between 1 and 65535"),
    Setting("kube_cni", "enum", "flannel", "Pod network add-on: flannel or calico.", choices=("flannel", "calico")),
    Setting("kube_proxy_mode", "enum", "iptables", "kube-proxy mode: iptables, ipvs or nftables.",
            choices=("iptables", "ipvs", "nftables")),
    Setting("kube_image_repository", "str", "registry.k8s.io",
            "Where the control-plane images come from: registry.k8s.io or a mirror of it (host[:port][/path], "
            "no scheme)."),
    Setting("kube_certificate_validity", "duration", "",
            "How long the certificates kubeadm issues are valid (kubeadm certificateValidityPeriod, a duration such "
            "as 8760h). Empty: kubeadm's 8760h (one year). Applies to new certificates and to renewals.",
            empty_ok=True),
    Setting("kube_ca_certificate_validity", "duration", "",
            "How long the certificate authorities kubeadm creates are valid (caCertificateValidityPeriod). Empty: "
            "kubeadm's 87600h (ten years). Set before the first init; must exceed kube_certificate_validity.",
            empty_ok=True),
    Setting("kube_certificate_warn_days", "int", 30,
            "Days before expiry from which `kubeboot status` marks a certificate and site.yml warns; playbooks/"
            "certs.yml renews a control plane's certificates when any is this close to expiry.",
            minimum=1, maximum=3650, type_message="must be a number of days between 1 and 3650"),
    Setting("kube_certificate_auto_renew", "bool", False,
            "Install a systemd timer on each control plane that renews its certificates monthly, as "
            "playbooks/certs.yml does."),
    Setting("kube_cluster_name", "str", "kubernetes",
            "Name of the cluster (kubeadm clusterName, a DNS-1123 label): the name in the kubeconfigs kubeadm "
            "writes, and the directory of its etcd backups under etcd_backup_dir. Set before the first init."),
    Setting("kube_node_cidr_mask_size", "int", "",
            "Prefix length of the pod range each node gets (the controller manager's --node-cidr-mask-size, "
            "flannel's SubnetLen). Empty: flannel_subnet_len when that is set, else 24 (IPv4) or 64 (IPv6).",
            empty_ok=True, type_message="must be a prefix length (an integer such as 24)"),
    # ---------------------------------------------------------------- etcd backups
    Setting("etcd_backup_dir", "str", "",
            "Directory on the controller that playbooks/etcd_backup.yml writes snapshots to, as "
            "`<kube_cluster_name>/<UTC time>.db` with a `.db.sha256` beside each (an absolute path). Empty: "
            "`etcd-backups` beside the inventory."),
    Setting("etcd_backup_keep", "int", 7,
            "How many snapshots are kept: the newest in etcd_backup_dir after each backup, and on each control "
            "plane by the backup timer.", minimum=1, maximum=10000,
            type_message="must be a number of snapshots between 1 and 10000"),
    Setting("etcd_backup_schedule", "str", "",
            "When each control plane saves a local etcd snapshot to /var/backups/kubeboot-etcd (a systemd OnCalendar "
            "expression such as `daily` or `*-*-* 02:30:00`). Empty: no timer (an installed one is removed)."),
    # ---------------------------------------------------------------- upgrades (playbooks/upgrade.yml)
    Setting("kube_upgrade_batch", "str", "1",
            "How many workers playbooks/upgrade.yml upgrades at a time: a number (1 or more) or a percentage of the "
            "workers such as `25%`. The control planes go one at a time."),
    Setting("kube_upgrade_drain_timeout", "int", 300,
            "Seconds `kubectl drain` may take on a node before playbooks/upgrade.yml stops, naming the pods (and "
            "their PodDisruptionBudgets) that block it and making the node schedulable again.",
            minimum=30, maximum=86400, type_message="must be a number of seconds between 30 and 86400"),
    Setting("kube_upgrade_etcd_backup", "bool", True,
            "Take an etcd snapshot (as playbooks/etcd_backup.yml does) before `kubeadm upgrade apply`."),
    # ---------------------------------------------------------------- software sources (may differ per node)
    Setting("containerd_registry_mirrors", "dict", {},
            "containerd registry mirrors: registry host -> list of mirror URLs, tried in order before the registry "
            "itself.", scope="node"),
    Setting("containerd_install_method", "enum", "distro",
            "Where containerd comes from: distro (the distribution's package), docker (Docker's containerd.io) or "
            "binary.", scope="node", choices=("distro", "docker", "binary")),
    Setting("containerd_restrict_oom_score_adj", "bool", False,
            "Keep containers' OOM scores at or above containerd's (the CRI plugin's restrict_oom_score_adj). Only "
            "for nodes where no process may lower an OOM score (containers without CAP_SYS_RESOURCE, such as "
            "sandbox nodes): runc fails every container there otherwise.", scope="node"),
    Setting("kube_install_method", "enum", "package",
            "How kubeadm, kubelet and kubectl are installed: package (a package repository) or binary (release "
            "downloads).", scope="node", choices=("package", "binary")),
    Setting("kube_package_repo_url", "str", "",
            "Package repository base for kube_install_method package. Empty: "
            "`https://pkgs.k8s.io/core:/stable:/v<minor>`.", scope="node"),
    Setting("kube_download_url", "str", "https://dl.k8s.io/release",
            "Release download base for kube_install_method binary (<base>/v<version>/bin/linux/<arch>/<binary>).",
            scope="node"),
    # ---------------------------------------------------------------- pod network
    Setting("flannel_backend", "enum", "vxlan", "flannel backend: vxlan, vxlan-directrouting or host-gw.",
            choices=("vxlan", "vxlan-directrouting", "host-gw")),
    Setting("flannel_subnet_len", "int", "",
            "flannel's name for kube_node_cidr_mask_size, kept as an alias: set either one (both set must be "
            "equal).", empty_ok=True,
            type_message="must be a prefix length (an integer such as 24)"),
    Setting("flannel_subnet_min", "str", "",
            "Optional first node range flannel hands out (an address inside kube_pod_subnet). Empty: the start of "
            "the range."),
    Setting("flannel_subnet_max", "str", "",
            "Optional last node range flannel hands out (an address inside kube_pod_subnet). Empty: the end of "
            "the range."),
    Setting("calico_block_size", "int", 26,
            "calico IPAM block size (prefix length of the blocks nodes take from the pool, 20 to 32 for IPv4).",
            type_message="must be a prefix length (an integer such as 26)"),
    Setting("calico_encapsulation", "enum", "VXLANCrossSubnet",
            "calico encapsulation: IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet or None.",
            choices=("IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None")),
    Setting("calico_nat_outgoing", "bool", True, "Masquerade traffic from pods to destinations outside the pool."),
    Setting("public_nic_name", "str", "eth0",
            "Name every node's public NIC gets (matched by public_nic_mac where that is set)."),
    # ---------------------------------------------------------------- NFS
    Setting("nfs_export_options", "str", "rw,sync,no_subtree_check,no_root_squash",
            "exports(5) options of a client (or an export's default client) that names none (no_root_squash: "
            "MongoDB's files keep their owner)."),
    Setting("nfs_allow_world_no_root_squash", "bool", False,
            "Allow no_root_squash for the client `*` (everyone). Refused unless set to true."),
    Setting("nfs_enable_v3", "bool", False,
            "Serve NFSv3 too (rpcbind, mountd on 20048). `false`: NFSv4 only (2049/tcp)."),
    Setting("nfs_volumes", "list", [],
            "PersistentVolumes for exports of NFS servers kubeboot does not manage (a NAS): `{name, server, path, "
            "capacity, access_mode, namespace, claim, mount_options}`; each gets a bound claim.",
            example="nfs_volumes:\n  - name: mongodb\n    server: 192.0.2.50\n    path: /nfs_mongodb/mongodb\n"
                    "    capacity: 20Gi\n    namespace: licode"),
    Setting("nfs_volume_capacity", "str", "10Gi", "Size of a volume and its claim unless the volume sets `capacity`."),
    Setting("nfs_volume_access_mode", "str", "ReadWriteOnce",
            "Access mode of a volume and its claim unless the volume sets `access_mode`."),
    Setting("nfs_volume_namespace", "str", "default",
            "Namespace of a volume's claim unless the volume sets `namespace` (created when missing)."),
    Setting("nfs_volume_mount_options", "list", ["hard", "nfsvers=4.2", "noatime"],
            "Mount options of a volume unless it sets `mount_options` (hard: MongoDB never sees a soft-mount I/O "
            "error)."),
    Setting("nfs_check_mounts", "bool", False,
            "Have every cluster node mount each volume once (and unmount it) to prove it can."),
    # ---------------------------------------------------------------- msms profile (cluster-wide part)
    Setting("msms_fixed_label", "str", "kubeboot.io/msms-fixed",
            "Label (value \"true\") of an msms host that sets msms_fixed."),
    Setting("msms_public_address_annotation", "str", "kubeboot.io/public-address",
            "Annotation carrying an msms host's public address (msms_public_address, else its node address)."),
    Setting("msms_rtp_port_range", "str", "10000-20000",
            "UDP port range (FIRST-LAST) for RTP, opened on msms hosts where a host firewall (firewalld or ufw) is "
            "active. Empty: none."),
    Setting("msms_namespaces", "list", ["msms"],
            "Namespaces the msms app runs in: each gets the msms-sa ServiceAccount, bound to a ClusterRole that "
            "reads nodes only."),
    # ---------------------------------------------------------------- per host or group
    Setting("ansible_host", "str", NO_DEFAULT, "How Ansible reaches the host; the node address unless `node_ip` is "
            "set.", scope="host"),
    Setting("node_ip", "str", NO_DEFAULT, "Optional: the address the kubelet advertises (must be unique, outside the "
            "pod and service ranges).", scope="host"),
    Setting("public_nic_mac", "str", NO_DEFAULT, "Optional: MAC of the NIC renamed to `public_nic_name` (unicast, "
            "unique).", scope="host"),
    Setting("node_group_labels", "dict", {}, "Labels of a group's nodes (meant for group_vars); merged beneath "
            "`node_labels`.", scope="host"),
    Setting("node_group_taints", "list", [], "Taints of a group's nodes (meant for group_vars); merged beneath "
            "`node_taints`.", scope="host"),
    Setting("node_labels", "dict", {},
            "Mapping of label key to value (Kubernetes syntax; values are strings). Labels a kubelet may not set on "
            "itself under the NodeRestriction admission plugin (`node-role.kubernetes.io/*`, "
            "`node-restriction.kubernetes.io/*`) are applied through the API after join; other "
            "`kubernetes.io`/`k8s.io` labels are refused.", scope="host"),
    Setting("node_taints", "list", [], "List of `key=value:Effect` or `key:Effect`, Effect one of NoSchedule, "
            "PreferNoSchedule, NoExecute.", scope="host"),
    Setting("msms_labels", "dict", {"app": "msms"}, "Labels of msms hosts (the msms profile), beneath the node_ "
            "scopes.", scope="host"),
    Setting("msms_taints", "list", ["app=msms:NoExecute"], "Taints of msms hosts (the msms profile), beneath the "
            "node_ scopes.", scope="host"),
    Setting("msms_fixed", "bool", False, "An msms host that is a fixed instance: labelled `msms_fixed_label: "
            "\"true\"`.", scope="host"),
    Setting("msms_public_address", "str", "", "An msms host's public address, published as the annotation "
            "`msms_public_address_annotation`. Empty: the node address.", scope="host"),
    Setting("nfs_exports", "list", [],
            "For `nfs_server` hosts: list of `{path, owner, group, mode, options, clients: [{host, options}], "
            "directories: [{path, owner, group, mode}], volume}`; `host` is `*`, an address, a CIDR network, a host "
            "name (wildcards allowed) or `@netgroup`; `options` as in exports(5). Without `clients`: every cluster "
            "node's address with the export's `options` (default `nfs_export_options`). `no_root_squash` for `*` "
            "needs `nfs_allow_world_no_root_squash: true`. `volume`: `{name, path, capacity, access_mode, namespace, "
            "claim, mount_options}` of its PersistentVolume, or `false` for none (see NFS volumes).", scope="host"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    """Every variable with a default, as the vars plugin gives it to the group `all` (a fresh copy)."""
    return {s.name: copy.deepcopy(s.default) for s in SETTINGS if s.has_default}


def names() -> frozenset[str]:
    """Every variable of the contract."""
    return frozenset(BY_NAME)


def scoped(*scopes: Scope) -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.scope in scopes)


def per_host() -> frozenset[str]:
    """Variables set per host or group (not required to agree across the cluster)."""
    return frozenset(s.name for s in scoped("host"))


def must_agree() -> tuple[str, ...]:
    """Variables that must have one value on every cluster node."""
    return tuple(s.name for s in scoped("cluster"))


# ---------------------------------------------------------------- the type rules


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE_STRINGS + FALSE_STRINGS:
        return value.lower() in TRUE_STRINGS
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any) -> float | None:
    """A Go duration (kubeadm's v1.Duration: 8760h, 2h30m, 90s) in seconds; None when it is not one."""
    if not isinstance(value, str) or not value or _DURATION_PART.sub("", value):
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))


def type_problem(item: Setting, value: Any) -> str | None:
    """What is wrong with a value for its setting's kind, choices and range (None: nothing)."""
    if item.empty_ok and value in ("", None):
        return None
    if item.kind == "enum":
        if value in item.choices:
            return None
        lowered = {a.lower(): a for a in item.choices}
        near = difflib.get_close_matches(str(value).lower(), list(lowered), n=1, cutoff=0.6)
        hint = f" (did you mean {lowered[near[0]]}?)" if near else ""
        return f"must be one of {', '.join(item.choices)}{hint}"
    if item.kind == "bool":
        return None if as_bool(value) is not None else "must be true or false"
    if item.kind == "int":
        number = as_int(value)
        low = item.minimum if item.minimum is not None else -(2**63)
        high = item.maximum if item.maximum is not None else 2**63
        if number is None or not low <= number <= high:
            return item.type_message or f"must be an integer between {low} and {high}"
        return None
    if item.kind == "float":
        real = as_float(value)
        low = item.minimum if item.minimum is not None else float("-inf")
        high = item.maximum if item.maximum is not None else float("inf")
        off_step = item.step is not None and real is not None and abs(real / item.step - round(real / item.step)) > 1e-6
        if real is None or not low <= real <= high or off_step:
            return item.type_message or f"must be a number between {low} and {high}"
        return None
    if item.kind == "str":
        return None if isinstance(value, str) else (item.type_message or "must be a string")
    if item.kind == "duration":
        seconds = duration_seconds(value)
        if seconds is None or seconds <= 0:
            return item.type_message or "must be a positive duration such as 8760h, 720h or 2h30m"
        return None
    if item.kind == "list":
        return None if isinstance(value, list) else (item.type_message or "must be a list")
    if item.kind == "dict":
        return None if isinstance(value, dict) else (item.type_message or "must be a mapping")
    return None


# ---------------------------------------------------------------- what the documentation shows


def _shown_default(item: Setting, *, quote_versions: bool = False) -> str:
    """The default as YAML in flow style; "" for an empty string, and a version-like string quoted on request (so
    that an operator who uncomments it keeps a string)."""
    import yaml  # noqa: PLC0415 - only the renderers need it

    if item.default == "":
        return '""'
    if quote_versions and isinstance(item.default, str) and re.fullmatch(r"[\d.]+", item.default):
        return f'"{item.default}"'
    text: str = yaml.safe_dump(item.default, default_flow_style=True, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def readme_cluster_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for item in scoped("cluster", "node"):
        lines.append(f"| `{item.name}` | `{_shown_default(item)}` | {item.description} |")
    return "\n".join(lines)


def readme_host_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for item in scoped("host"):
        shown = f"`{_shown_default(item)}`" if item.has_default else "(unset)"
        lines.append(f"| `{item.name}` | {shown} | {item.description} |")
    return "\n".join(lines)


def _comment(text: str, width: int = 116) -> list[str]:
    words = re.sub(r"`", "", text).split()
    lines: list[str] = []
    current = "#"
    for word in words:
        if len(current) + 1 + len(word) > width:
            lines.append(current)
            current = "#"
        current += " " + word
    lines.append(current)
    return lines


SAMPLE_HEADER = """\
---
# Cluster-wide settings (group_vars/all). Every variable of the contract is listed with its default, commented out:
# uncomment and change what your cluster needs. Unset variables take the default shown (from the contract,
# src/kubeboot/contract.py, given to every host by the kubeboot_defaults vars plugin).
# Check the result with `kubeboot validate -i INVENTORY` and `kubeboot plan -i INVENTORY`.
# This file is written by `python -m kubeboot.contract --write`: change the contract, not this list."""

# The pod network's manifest pins are role inputs of the cni role (not contract settings), shown after kube_cni.
SAMPLE_CNI_PINS = """\
# The pod network's upstream manifest is downloaded from a pinned release URL (or your mirror of it) and must match
# a checksum you set: sha256:<digest> or sha256:<URL of a .sha256 file>. The one for the chosen kube_cni is required;
# site.yml stops before touching any host while it is empty.
# cni_flannel_manifest_url: https://github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml
# cni_flannel_manifest_checksum: sha256:<digest of that file>
# cni_calico_operator_manifest_url: >-
#   https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/tigera-operator.yaml
# cni_calico_operator_manifest_checksum: sha256:<digest of that file>"""


def sample_group_vars() -> str:
    """inventory/sample/group_vars/all/cluster.yml: every cluster-wide setting with its default, commented out."""
    blocks = [SAMPLE_HEADER]
    for item in scoped("cluster", "node"):
        lines = _comment(item.description)
        if item.example:
            lines += [f"# {line}" for line in item.example.splitlines()]
        lines.append(f"# {item.name}: {_shown_default(item, quote_versions=True)}")
        blocks.append("\n".join(lines))
        if item.name == "kube_cni":
            blocks.append(SAMPLE_CNI_PINS)
    blocks.append("\n".join([
        *_comment("Per host or group (host_vars/, group_vars/<group>/, or the host's line in hosts.yml): "
                  + ", ".join(s.name for s in scoped("host"))
                  + ". README.md, section Inventory, describes each."),
    ]))
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------- keeping README.md and the sample in step

REPO_FILES = {
    "README.md": (("<!-- contract:cluster -->", "<!-- /contract:cluster -->", readme_cluster_table),
                  ("<!-- contract:host -->", "<!-- /contract:host -->", readme_host_table)),
}
SAMPLE_PATH = "inventory/sample/group_vars/all/cluster.yml"


def render_between(text: str, start: str, end: str, body: str) -> str:
    before, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"markers {start} ... {end} not found")
    _, _, after = rest.partition(end)
    return f"{before}{start}\n{body}\n{end}{after}"


def rendered(root: Path) -> dict[Path, str]:
    """Each documentation file as the contract makes it."""
    result: dict[Path, str] = {}
    for relative, parts in REPO_FILES.items():
        path = root / relative
        text = path.read_text(encoding="utf-8")
        for start, end, make in parts:
            text = render_between(text, start, end, make())
        result[path] = text
    result[root / SAMPLE_PATH] = sample_group_vars()
    return result


def main(argv: Iterable[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(__file__).resolve().parents[2]
    if args not in ([], ["--write"], ["--check"]):
        print("usage: python -m kubeboot.contract [--write | --check]", file=sys.stderr)
        return 2
    made = rendered(root)
    if args == ["--write"]:
        for path, text in made.items():
            path.write_text(text, encoding="utf-8")
        return 0
    stale = [path for path, text in made.items() if path.read_text(encoding="utf-8") != text]
    for path in stale:
        print(f"{path.relative_to(root)} differs from the contract: run python -m kubeboot.contract --write",
              file=sys.stderr)
    if not args:
        print(readme_cluster_table())
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
