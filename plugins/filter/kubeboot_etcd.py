"""Filters over kubeadm's etcd manifest and etcdctl's output (logic: kubeboot.etcd)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import etcd


class FilterModule:
    """kubeboot etcd filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_etcd_flags": etcd.manifest_flags,
            "kubeboot_etcd_member_add": etcd.member_add,
            "kubeboot_etcd_rejoin_manifest": etcd.rejoin_manifest,
            "kubeboot_etcd_snapshot_status": etcd.snapshot_status,
            "kubeboot_etcd_to_prune": etcd.to_prune,
            "kubeboot_etcd_member_names": etcd.member_names,
            "kubeboot_etcd_quorum_refusal": etcd.quorum_refusal,
        }
