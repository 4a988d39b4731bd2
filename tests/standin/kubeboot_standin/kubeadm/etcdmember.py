"""Stacked etcd membership, as kubeadm manages it: a joining control plane adds itself as a member (through the
members already there) before its etcd starts; `kubeadm reset` on a control plane removes its member first.
Only on nodes: where the tests simulate a node on the host no etcd runs and these do nothing."""

from __future__ import annotations

from typing import Any

import yaml

from .. import paths
from ..client import Client
from ..etcd import Etcd, EtcdError
from .common import klog_warning, wait_for
from .files import say


def client(cs_certificates_dir: str, endpoints: list[str]) -> Etcd:
    pki = cs_certificates_dir
    return Etcd(
        endpoints,
        str(paths.host(f"{pki}/etcd/ca.crt")),
        str(paths.host(f"{pki}/apiserver-etcd-client.crt")),
        str(paths.host(f"{pki}/apiserver-etcd-client.key")),
    )


def enabled() -> bool:
    return not paths.simulated()


def cluster_endpoints(admin: Client) -> list[str]:
    """The client URLs of the etcd members: every control-plane Node's InternalIP."""
    nodes = admin.get("/api/v1/nodes?labelSelector=node-role.kubernetes.io/control-plane").get("items") or []
    out = []
    for n in nodes:
        for a in (n.get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP":
                out.append(f"https://{a['address']}:2379")
    return out


def add_member(etcd: Etcd, node: str, address: str) -> list[tuple[str, str]]:
    """Add this node (its peer URL) as a learner, as kubeadm 1.33 does (EtcdLearnerMode), unless it is a member
    already; the initial cluster its etcd starts with."""
    peer = f"https://{address}:2380"
    members = etcd.members()
    if not any(peer in (m.get("peerURLs") or []) for m in members):
        members = etcd.member_add([peer], learner=True).get("members") or []
        say("[etcd] Announced new etcd member joining to the existing etcd cluster")
    out = []
    for m in members:
        urls = m.get("peerURLs") or []
        name = node if peer in urls else m.get("name") or ""
        if name and urls:
            out.append((name, urls[0]))
    return out


def join_local(etcd: Etcd, certificates_dir: str, address: str, timeout: float) -> None:
    """Wait for this node's etcd, then promote it from learner to voting member once it has caught up (etcd
    refuses the promotion until then)."""
    say("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s")
    local = client(certificates_dir, ["https://127.0.0.1:2379"])
    wait_for("the local etcd member", local.status, timeout)
    peer = f"https://{address}:2380"

    def promoted() -> bool:
        mine = next((m for m in etcd.members() if peer in (m.get("peerURLs") or [])), None)
        if mine is None:
            raise EtcdError(f"{peer} is not a member")
        if mine.get("isLearner"):
            etcd.member_promote(str(mine["ID"]))
        return True

    wait_for("the promotion of the etcd learner", promoted, timeout)


def manifest_flags() -> dict[str, str]:
    try:
        pod: dict[str, Any] = yaml.safe_load(paths.host(f"{paths.MANIFESTS}/etcd.yaml").read_text())
        cmd = pod["spec"]["containers"][0]["command"]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return {}
    flags = {}
    for a in cmd[1:]:
        k, _, v = str(a).lstrip("-").partition("=")
        flags[k] = v
    return flags


def remove_local_member(certificates_dir: str) -> None:
    """kubeadm reset's remove-etcd-member: this node leaves the etcd cluster when others remain."""
    flags = manifest_flags()
    peer = flags.get("initial-advertise-peer-urls", "")
    if not enabled() or not peer:
        return
    local = client(certificates_dir, ["https://127.0.0.1:2379"])
    try:
        members = local.members()
        mine = next((m for m in members if peer in (m.get("peerURLs") or [])), None)
        if mine is None or len(members) < 2:
            return
        # etcd refuses to remove a member while the cluster is not yet healthy without it (a member that joined
        # within 5 s): retried, as kubeadm does.
        def removed() -> bool:
            local.member_remove(str(mine["ID"]))
            return True

        wait_for("the removal of the etcd member", removed, 30)
        say(f"[reset] Removed etcd member {flags.get('name', '')} ({peer}) from the etcd cluster")
    except (EtcdError, RuntimeError) as exc:
        klog_warning(
            f"[reset] Failed to remove etcd member: {exc}, please manually remove this etcd member using etcdctl"
        )
