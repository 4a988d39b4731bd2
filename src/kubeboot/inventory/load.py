"""Read an inventory exactly as Ansible does (InventoryManager, VariableManager, DataLoader, Templar).

Everything Ansible-specific lives here; the result is plain data (kubeboot.inventory.model) for the checks.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubeboot import contract
from kubeboot.contract import PREFIXES
from kubeboot.errors import UsageError
from kubeboot.inventory.model import Host, Inventory, error

# Variables resolved (templated) for the checks besides the contract's own and the prefixed ones.
EXTRA_VARIABLES = ("ansible_host",)


def plain(value: Any) -> Any:
    """Ansible's tagged and lazy containers as plain Python values (str, int, bool, float, list, dict, None)."""
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def wanted(name: str, known: frozenset[str]) -> bool:
    return name in known or name in EXTRA_VARIABLES or name.startswith(PREFIXES)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Capture what Ansible prints (warnings about unparsable sources) so failures become one line of ours."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(buffer):
        yield buffer


def _reason(source: str, captured: str) -> str:
    """The parse error of the plugin that fits the file (yaml for .yml/.yaml, ini otherwise) from Ansible's output."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", captured)
    reasons = dict(re.findall(r"Failed to parse inventory with '(\w+)' plugin: ([^\n]+)", text))
    plugin = "yaml" if source.endswith((".yml", ".yaml", ".json")) else "ini"
    reason = reasons.get(plugin) or next(iter(reasons.values()), "")
    return reason.strip() or "no inventory plugin (yaml, ini) could read it"


def check_sources(sources: Sequence[str]) -> list[str]:
    if not sources:
        raise UsageError("no inventory given: pass -i INVENTORY (a hosts.yml, an INI file or a directory)")
    paths = []
    for source in sources:
        if not Path(source).exists():
            raise UsageError(f"inventory {source} does not exist: pass the path of a hosts.yml, INI file or directory")
        paths.append(os.path.abspath(source))
    return paths


def load(sources: Sequence[str]) -> Inventory:
    """Parse the inventory sources with Ansible and resolve every host's variables, defaults beneath."""
    paths = check_sources(sources)
    from ansible.errors import AnsibleError  # noqa: PLC0415 - Ansible is imported only when an inventory is read
    from ansible.inventory.manager import InventoryManager  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415
    from ansible.template import Templar  # noqa: PLC0415
    from ansible.vars.manager import VariableManager  # noqa: PLC0415

    class StrictInventoryManager(InventoryManager):  # type: ignore[misc]
        """Refuses a source no inventory plugin could parse instead of warning and going on without it."""

        def parse_source(self, source: str, cache: bool = False) -> bool:
            with _quiet() as captured:
                parsed = bool(super().parse_source(source, cache=cache))
            if not parsed:
                raise UsageError(f"inventory {source} cannot be parsed: {_reason(source, captured.getvalue())}")
            return parsed

    loader = DataLoader()
    try:
        manager = StrictInventoryManager(loader=loader, sources=paths)
        variables = VariableManager(loader=loader, inventory=manager)
        # The inventory's variables only: no group_vars/host_vars next to a playbook or the current directory.
        variables.safe_basedir = False
    except AnsibleError as exc:
        raise UsageError(f"inventory {', '.join(sources)} cannot be read: {_first_line(exc)}") from exc

    known = contract.names()
    defaults = contract.defaults()
    result = Inventory()
    for name, members in manager.get_groups_dict().items():
        result.groups[str(name)] = [str(m) for m in members]
    for host in manager.get_hosts():
        try:
            raw = variables.get_vars(host=host, include_hostvars=False)
        except AnsibleError as exc:
            raise UsageError(f"inventory {', '.join(sources)}: variables of {host.name}: {_first_line(exc)}") from exc
        merged: dict[str, Any] = dict(defaults)
        templar = Templar(loader=loader, variables=raw)
        for key in raw:
            if not wanted(str(key), known):
                continue
            try:
                merged[str(key)] = plain(templar.template(raw[key]))
            except Exception as exc:  # any templating failure becomes a finding
                result.load_findings.append(error(host.name, str(key), None,
                                                  f"cannot be templated: {_first_line(exc)}; fix the expression"))
        groups = tuple(sorted(str(g.name) for g in host.get_groups() if g.name != "all"))
        result.hosts[str(host.name)] = Host(name=str(host.name), groups=groups, variables=merged)
    result.cluster = cluster_settings(result)
    return result


def cluster_settings(inventory: Inventory) -> dict[str, Any]:
    """Cluster-wide settings: those of the first control plane (else the first cluster host, else defaults)."""
    candidates = [inventory.hosts[n] for n in inventory.members("kube_control_plane") if n in inventory.hosts]
    candidates += inventory.cluster_hosts() + list(inventory.hosts.values())
    if not candidates:
        return contract.defaults()
    per_host = contract.per_host()
    return {k: v for k, v in candidates[0].variables.items() if k not in per_host}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
