"""Filters for the keepalived VIP of the Kubernetes API; the logic lives in kubeboot.derived."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import derived


class FilterModule:
    """kubeboot VIP filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_vip_subnet_problem": derived.vip_subnet_problem,
        }
