"""Filters over one package-database query, so that roles call the package manager only when something is missing
(logic in kubeboot.packages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeboot import packages


class FilterModule:
    """kubeboot package filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_packages_missing": packages.missing,
            "kubeboot_packages_not_held": packages.not_held,
            "kubeboot_packages_newer": packages.newer,
            "kubeboot_sections": packages.sections,
            "kubeboot_parts": packages.parts,
            "kubeboot_files_differ": packages.files_differ,
            "kubeboot_digests": packages.digests,
        }
