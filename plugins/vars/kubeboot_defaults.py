"""Vars plugin: the cluster-wide defaults of the kubeboot inventory contract, beneath everything an operator sets."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ansible import context
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

try:
    from kubeboot.contract import defaults as cluster_defaults
except ImportError:  # running from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kubeboot.contract import defaults as cluster_defaults

DOCUMENTATION = """
    name: kubeboot_defaults
    short_description: Cluster-wide defaults of the kubeboot inventory contract
    description:
      - Gives the group C(all) every cluster-wide variable of the contract with its default, read from the kubeboot
        package's typed contract (C(kubeboot/contract.py)), for the directories of the inventory sources only.
      - >-
        Runs before C(host_group_vars) (list it first in C(vars_plugins_enabled)), so C(group_vars/all) of the
        inventory overrides a default; keys set in the inventory file's own group variables (the vars of C(all)
        or of any other group) are left out, because plugin variables would otherwise rank above them.
    requirements:
      - the kubeboot package (installed, or the src/ directory of this checkout)
"""


def _inventory_dirs() -> set[str] | None:
    """Directories of this run's inventory sources; None when not run from an Ansible CLI (then: every path)."""
    sources = context.CLIARGS.get("inventory") if context.CLIARGS else None
    if not sources:
        return None
    dirs = set()
    for source in sources:
        if "," in source and not os.path.exists(source):
            continue
        real = os.path.realpath(source)
        dirs.add(real if os.path.isdir(real) else os.path.dirname(real))
    return dirs


def _set_in_inventory_files(group: Group) -> set[str]:
    """Variables set in the inventory files' own group vars (not group_vars/): the group and its descendants."""
    names = set(group.vars)
    for child in group.get_descendants():
        names.update(child.vars)
    return names


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True
    is_stateless = True

    def get_vars(self, loader: Any, path: str, entities: Any, cache: bool = True) -> dict[str, Any]:
        super().get_vars(loader, path, entities)
        dirs = _inventory_dirs()
        if dirs is not None and os.path.realpath(path) not in dirs:
            return {}
        data: dict[str, Any] = {}
        for entity in entities if isinstance(entities, list) else [entities]:
            if isinstance(entity, Group) and entity.name == "all":
                taken = _set_in_inventory_files(entity)
                data.update({k: v for k, v in cluster_defaults().items() if k not in taken})
        return data
