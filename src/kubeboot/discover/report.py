"""How discover's results look: a table for people, a JSON document for scripts, one line per failed host."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kubeboot.discover.facts import HostFacts
from kubeboot.discover.run import DiscoverResult, HostReport


def _size(kb: int) -> str:
    gib = kb / 1024 / 1024
    return f"{gib:.1f}G" if gib >= 1 else f"{kb // 1024}M"


def _k8s(facts: HostFacts) -> str:
    names = [p for p in ("kubeadm", "kubelet", "kubectl") if p in facts.packages]
    return ",".join(f"{p} {facts.packages[p]}" for p in names) or "-"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def error_lines(result: DiscoverResult) -> list[str]:
    """One line per host that was not done: ``TARGET: message``."""
    return [f"{report.label} ({report.target.spec}): {report.error}" if report.label != report.target.spec
            else f"{report.target.spec}: {report.error}" for report in result.hosts if report.error]


def table(result: DiscoverResult, *, writing: bool) -> str:
    """The hosts table and, under it, every host's interfaces."""
    rows: list[tuple[str, ...]] = [("NAME", "HOST", "OS", "KERNEL", "CPU", "MEM", "SWAP", "PUBLIC NIC", "NODE IP",
                                    "RUNTIME", "KUBERNETES", "HOST_VARS" if writing else "STATUS")]
    for report in result.hosts:
        facts = report.facts
        if facts is None:
            rows.append((report.name or "-", report.target.spec, *["-"] * 9, f"error ({report.error_kind})"))
            continue
        nic = report.choice.interface if report.choice else None
        status = (report.host_vars or "error") if writing else "ok"
        if report.error:
            status = f"error ({report.error_kind})"
        rows.append((
            report.name or "-", report.target.spec, f"{facts.os.id} {facts.os.version_id}".strip(), facts.kernel,
            str(facts.cpus), _size(facts.memory_kb),
            _size(facts.swap_total_kb) if facts.swap_total_kb else "off",
            f"{nic.name} {nic.hw_mac}" if nic else "?",
            report.choice.node_ip or "-" if report.choice else "-",
            facts.container_runtime or "-", _k8s(facts), status,
        ))
    lines = _columns(rows)
    nic_rows: list[tuple[str, ...]] = [("NAME", "INTERFACE", "KIND", "STATE", "MAC", "ADDRESSES")]
    for report in result.hosts:
        if report.facts is None:
            continue
        public = report.choice.interface.name if report.choice and report.choice.interface else None
        routes = {r.interface for r in report.facts.default_routes}
        for nic in report.facts.interfaces:
            if nic.is_loopback:
                continue
            marks = [m for m, on in (("public", nic.name == public), ("default route", nic.name in routes),
                                     ("ssh", report.facts.ssh_interface is nic)) if on]
            kind = nic.kind or nic.link_type
            if nic.parent:
                kind += f" on {nic.parent}"
            if nic.master:
                kind += f" in {nic.master}"
            addresses = " ".join(a.cidr for a in nic.addresses if a.scope != "link") or "-"
            nic_rows.append((report.label, nic.name + (f" ({', '.join(marks)})" if marks else ""), kind,
                             nic.operstate.lower(), nic.mac or "-", addresses))
    if len(nic_rows) > 1:
        lines += ["", *_columns(nic_rows)]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """Tuples as lists, so the document equals its own JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _facts_json(facts: HostFacts) -> dict[str, Any]:
    data: dict[str, Any] = _plain(asdict(facts))
    data["ssh_interface"] = facts.ssh_interface.name if facts.ssh_interface else None
    data["container_runtime"] = facts.container_runtime
    return data


def to_json(result: DiscoverResult) -> dict[str, Any]:
    """A document for scripts: per host ok/error, facts, the public NIC choice and host_vars written."""
    hosts = []
    for report in result.hosts:
        hosts.append(host_json(report))
    done = sum(1 for h in result.hosts if h.ok)
    return {
        "hosts": hosts,
        "summary": {"hosts": len(result.hosts), "ok": done, "failed": len(result.hosts) - done},
        "accepted_host_keys": result.accepted_host_keys,
        "exit_code": result.exit_code,
    }


def host_json(report: HostReport) -> dict[str, Any]:
    choice = report.choice
    return {
        "target": report.target.spec,
        "host": report.target.host,
        "name": report.name,
        "ok": report.ok,
        "error": report.error,
        "error_kind": report.error_kind,
        "seconds": round(report.seconds, 3),
        "facts": _facts_json(report.facts) if report.facts else None,
        "public_nic": None if choice is None else {
            "interface": choice.interface.name if choice.interface else None,
            "mac": choice.interface.hw_mac if choice.interface else None,
            "node_ip": choice.node_ip,
            "reason": choice.reason,
        },
        "host_vars": None if report.plan is None else {
            "path": str(report.plan.path),
            "status": report.host_vars or report.plan.status,
            "values": report.values(),
            "changes": [{"key": c.key, "old": c.old, "new": c.new} for c in report.plan.changes],
        },
    }
