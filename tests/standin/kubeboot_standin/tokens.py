"""Bootstrap tokens: format, Secrets in kube-system, `kubeadm token list` output."""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
from typing import Any

from .config import parse_duration

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_USAGES = ["signing", "authentication"]


def generate() -> str:
    return "".join(secrets.choice(CHARS) for _ in range(6)) + "." + "".join(secrets.choice(CHARS) for _ in range(16))


def parse(token: str) -> tuple[str, str]:
    m = TOKEN_RE.match(token)
    if not m:
        raise ValueError(
            f'the bootstrap token "{token}" was not of the form "\\A([a-z0-9]{{6}})\\.([a-z0-9]{{16}})\\z"'
        )
    return m.group(1), m.group(2)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str | None) -> str:
    return base64.b64decode(s or "").decode()


def secret(
    token: str,
    ttl: str = "24h0m0s",
    description: str = "",
    usages: list[str] | None = None,
    groups: list[str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    tid, tsecret = parse(token)
    data = {"token-id": _b64(tid), "token-secret": _b64(tsecret)}
    if description:
        data["description"] = _b64(description)
    seconds = parse_duration(ttl) if ttl else 0
    if seconds > 0:
        exp = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=seconds)
        data["expiration"] = _b64(exp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for u in usages if usages is not None else DEFAULT_USAGES:
        data[f"usage-bootstrap-{u}"] = _b64("true")
    groups = groups if groups is not None else [DEFAULT_GROUP]
    if groups:
        data["auth-extra-groups"] = _b64(",".join(groups))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
        "data": data,
    }


def _human(delta: dt.timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def list_table(items: list[dict[str, Any]], now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    rows = [("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")]
    for s in items:
        if s.get("type") != "bootstrap.kubernetes.io/token":
            continue
        d = s.get("data") or {}
        token = f"{_unb64(d.get('token-id'))}.{_unb64(d.get('token-secret'))}"
        exp = _unb64(d.get("expiration"))
        if exp:
            when = dt.datetime.fromisoformat(exp.replace("Z", "+00:00"))
            if when < now:
                continue
            ttl = _human(when - now)
        else:
            ttl, exp = "<forever>", "<never>"
        usages = ",".join(
            sorted(
                k[len("usage-bootstrap-") :]
                for k, v in d.items()
                if k.startswith("usage-bootstrap-") and _unb64(v) == "true"
            )
        )
        rows.append(
            (token, ttl, exp, usages, _unb64(d.get("description")) or "<none>", _unb64(d.get("auth-extra-groups")))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows) + "\n"
