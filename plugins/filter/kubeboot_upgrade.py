"""Filters of playbooks/upgrade.yml (logic: kubeboot.upgrade)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import upgrade


class FilterModule:
    """kubeboot upgrade filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_upgrade_preflight": upgrade.preflight,
            "kubeboot_upgrade_node_steps": upgrade.node_steps,
            "kubeboot_upgrade_drain_blockers": upgrade.drain_blockers,
            "kubeboot_upgrade_versions": upgrade.versions_report,
        }
