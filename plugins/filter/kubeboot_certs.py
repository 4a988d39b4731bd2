"""Filters over `kubeadm certs check-expiration` (logic: kubeboot.certs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import certs


class FilterModule:
    """kubeboot certificate filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_cert_expiration": certs.parse_expiration,
            "kubeboot_certs_due": certs.due,
            "kubeboot_certs_summary": certs.summary,
        }
