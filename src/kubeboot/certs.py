"""A control plane's certificates as `kubeadm certs check-expiration` reports them, and which are due for renewal.

kubeadm prints two tables (certificates and kubeconfigs, then certificate authorities); each row's EXPIRES column
(`Aug 19, 2026 09:03 UTC`) is what counts, the RESIDUAL TIME column being rounded. A file kubeadm expects but does
not find is a `!MISSING! <name>` row.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

EXPIRES_FORMAT = "%b %d, %Y %H:%M UTC"
_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<expires>[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC)\s+(?P<residual>\S+)\s+"
                  r"(?P<rest>.*?)\s*$")
_MISSING = re.compile(r"^!MISSING!\s+(?P<name>\S+)")


def parse_expiration(output: str, now: dt.datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Both tables of `kubeadm certs check-expiration`: {"certificates": [...], "authorities": [...]}, each row
    {name, expires (ISO 8601), days_left (float; negative once expired), authority ("" for an authority),
    externally_managed, missing}."""
    current = now or dt.datetime.now(dt.UTC)
    out: dict[str, list[dict[str, Any]]] = {"certificates": [], "authorities": []}
    table = ""
    for line in output.splitlines():
        if line.startswith("CERTIFICATE AUTHORITY"):
            table = "authorities"
            continue
        if line.startswith("CERTIFICATE "):
            table = "certificates"
            continue
        if not table or not line.strip():
            continue
        missing = _MISSING.match(line)
        if missing:
            out[table].append({"name": missing["name"], "expires": "", "days_left": None, "authority": "",
                               "externally_managed": False, "missing": True})
            continue
        row = _ROW.match(line)
        if not row:
            continue
        expires = dt.datetime.strptime(row["expires"], EXPIRES_FORMAT).replace(tzinfo=dt.UTC)
        rest = row["rest"].split()
        authority = rest[0] if table == "certificates" and len(rest) > 1 else ""
        out[table].append({
            "name": row["name"],
            "expires": expires.isoformat(),
            "days_left": round((expires - current).total_seconds() / 86400, 3),
            "authority": authority,
            "externally_managed": bool(rest) and rest[-1] == "yes",
            "missing": False,
        })
    return out


def due(report: dict[str, list[dict[str, Any]]], warn_days: int | str) -> list[str]:
    """The certificates (not the authorities, which kubeadm does not renew) expiring within warn_days, or expired;
    externally managed ones are the operator's."""
    limit = float(warn_days)
    return [c["name"] for c in report.get("certificates", [])
            if not c["missing"] and not c["externally_managed"] and c["days_left"] is not None
            and c["days_left"] < limit]


def summary(report: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One line per certificate and authority: `name: N days left (expires ...)`."""
    lines = []
    for kind in ("certificates", "authorities"):
        for c in report.get(kind, []):
            if c["missing"]:
                lines.append(f"{c['name']}: missing")
            else:
                lines.append(f"{c['name']}: {c['days_left']:.1f} days left (expires {c['expires']})")
    return lines
