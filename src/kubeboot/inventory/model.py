"""Plain data the checks work on: no Ansible objects, so every check is testable without Ansible."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: where (host or "all"), which variable, its value and what to do about it."""

    level: Level
    host: str
    variable: str
    value: Any
    message: str

    def line(self) -> str:
        shown = "" if self.value is None else f" = {json.dumps(self.value, default=str)}"
        return f"{self.level.upper()} {self.host}: {self.variable}{shown}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "host": self.host, "variable": self.variable, "value": self.value,
                "message": self.message}


def error(host: str, variable: str, value: Any, message: str) -> Finding:
    return Finding("error", host, variable, value, message)


def warning(host: str, variable: str, value: Any, message: str) -> Finding:
    return Finding("warning", host, variable, value, message)


@dataclass
class Host:
    """One inventory host: its groups and its variables as Ansible resolves them, defaults beneath."""

    name: str
    groups: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)

    def var(self, name: str, default: Any = None) -> Any:
        return self.variables.get(name, default)


@dataclass
class Inventory:
    """The whole inventory: hosts in inventory order, group memberships and the cluster-wide settings."""

    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    load_findings: list[Finding] = field(default_factory=list)

    def members(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    def cluster_hosts(self) -> list[Host]:
        """Hosts of k8s_cluster, or of its two parts when k8s_cluster is missing."""
        names = self.members("k8s_cluster") or [
            *self.members("kube_control_plane"),
            *[n for n in self.members("kube_node") if n not in self.members("kube_control_plane")],
        ]
        return [self.hosts[n] for n in names if n in self.hosts]
