"""Action plugin: validate this run's inventory with kubeboot's validator, on the controller, before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

try:
    from kubeboot.errors import KubebootError
    from kubeboot.inventory.validate import has_errors, validate_sources
except ImportError:  # running from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kubeboot.errors import KubebootError
    from kubeboot.inventory.validate import has_errors, validate_sources

DOCUMENTATION = """
    name: kubeboot_validate
    short_description: Validate the inventory of the current run against the kubeboot contract
    description:
      - Reads the inventory sources of this run (C(ansible_inventory_sources)) as Ansible does and runs the same
        checks as C(kubeboot validate). Warnings are shown as warnings; any error fails the task with one line per
        error. Runs on the controller only and touches no host.
    options:
      sources:
        description: Inventory sources to check; default the sources of the current run.
        type: list
        elements: str
"""

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset({"sources"})

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        sources = self._task.args.get("sources") or task_vars.get("ansible_inventory_sources") or []
        if isinstance(sources, str):
            sources = [sources]
        sources = [str(s) for s in sources]
        try:
            _, findings = validate_sources(sources)
        except KubebootError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        errors = [f.line() for f in findings if f.level == "error"]
        warnings = [f.line() for f in findings if f.level == "warning"]
        for line in warnings:
            display.warning(line.removeprefix("WARNING "))
        result.update(changed=False, errors=errors, warnings_found=warnings, sources=sources)
        if has_errors(findings):
            result["failed"] = True
            result["msg"] = (f"the inventory has {len(errors)} error(s); fix them and run again "
                             f"(kubeboot validate -i {' -i '.join(sources)}):\n" + "\n".join(errors))
        else:
            result["msg"] = f"inventory valid ({len(warnings)} warning(s))"
        return result
