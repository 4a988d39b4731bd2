"""Validate inventory sources: load them as Ansible does, then run every check (used by the CLI and site.yml)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from kubeboot.inventory import checks, load
from kubeboot.inventory.model import Finding, Inventory

# The roles of this checkout (when kubeboot runs from one): their inputs are known variable names too.
ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"


def role_variables(roles_dir: Path = ROLES_DIR) -> frozenset[str]:
    """Names of every role input (defaults/main.yml) in roles_dir; none when there is no such directory."""
    names: set[str] = set()
    for defaults in sorted(roles_dir.glob("*/defaults/main.yml")) if roles_dir.is_dir() else []:
        try:
            data = yaml.safe_load(defaults.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            names.update(str(k) for k in data)
    return frozenset(names)


def validate_inventory(inventory: Inventory) -> list[Finding]:
    return checks.validate(inventory, checks.known_variables(role_variables()))


def validate_sources(sources: Sequence[str]) -> tuple[Inventory, list[Finding]]:
    """Load the sources (UsageError when they cannot be read) and return the inventory and every finding."""
    inventory = load.load(sources)
    return inventory, validate_inventory(inventory)


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.level == "error" for f in findings)
