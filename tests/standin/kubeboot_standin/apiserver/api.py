"""The REST semantics: routing of resource paths, CRUD, list filters, tables, watch."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from . import patch as patchlib
from .authz import Attributes, User, authorize
from .resources import BUILTIN, Resource, crd_resources, resource_list
from .store import Conflict, Key, Obj, Store, now_rfc3339


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def qualified(r: Resource) -> str:
    return f"{r.plural}.{r.group}" if r.group else r.plural


def not_found(r: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(r)} "{name}" not found', {"name": name, "group": r.group, "kind": r.plural}
    )


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    user: User


@dataclass
class Target:
    res: Resource
    namespace: str
    name: str
    subresource: str


class Api:
    def __init__(self, store: Store, version: dict[str, str], address: str) -> None:
        self.store = store
        self.version = version
        self.address = address
        self.hooks: list[Any] = []  # callables(event, res, obj) run after writes (controllers)

    # ---- resource registry ----
    def resources(self) -> list[Resource]:
        out = list(BUILTIN)
        for crd in self.store.list("apiextensions.k8s.io", "customresourcedefinitions"):
            out += crd_resources(crd)
        return out

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        return next((r for r in self.resources() if (r.group, r.version, r.plural) == (group, version, plural)), None)

    # ---- discovery ----
    def discovery(self, path: str) -> Obj | None:
        res = self.resources()
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}],
            }
        if path == "/api/v1":
            return resource_list("v1", [r for r in res if r.group == ""])
        groups: dict[str, list[str]] = {}
        for r in res:
            if r.group:
                versions = groups.setdefault(r.group, [])
                if r.version not in versions:
                    versions.append(r.version)
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups.items()
                ],
            }
        m = re.fullmatch(r"/apis/([^/]+)(?:/([^/]+))?", path)
        if m and m.group(1) in groups:
            g, v = m.group(1), m.group(2)
            if v is None:
                vs = groups[g]
                return {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{x}", "version": x} for x in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
            if v in groups[g]:
                return resource_list(f"{g}/{v}", [r for r in res if r.group == g and r.version == v])
        return None

    # ---- routing ----
    def parse(self, path: str) -> Target | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[0] == "namespaces" and len(rest) == 2:
            r = self.find(group, version, "namespaces")
            return Target(r, "", rest[1], "") if r else None
        r = self.find(group, version, rest[0])
        if r is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace = ""
        return Target(r, namespace if r.namespaced else "", name, sub)

    @staticmethod
    def verb(method: str, t: Target, query: dict[str, str]) -> str:
        if method == "GET":
            if not t.name:
                return "watch" if query.get("watch") in ("true", "1") else "list"
            return "get"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method, method.lower())

    def check(self, req: Request, t: Target, verb: str) -> None:
        attrs = Attributes(verb, t.res.group, t.res.plural, t.subresource, t.namespace, t.name)
        if not authorize(self.store, req.user, attrs):
            res = f"{t.res.plural}/{t.subresource}" if t.subresource else t.res.plural
            scope = f' in the namespace "{t.namespace}"' if t.namespace else " at the cluster scope"
            raise ApiError(
                403,
                "Forbidden",
                f"{qualified(t.res).replace(t.res.plural, res, 1)} {json.dumps(t.name) + ' ' if t.name else ''}"
                f'is forbidden: User "{req.user.name}" cannot {verb} resource "{res}" in API group '
                f'"{t.res.group}"{scope}',
                {"name": t.name, "group": t.res.group, "kind": t.res.plural},
            )

    def key(self, t: Target, name: str | None = None) -> Key:
        return (t.res.group, t.res.plural, t.namespace, name if name is not None else t.name)

    # ---- verbs ----
    def get(self, t: Target) -> Obj:
        obj = self.store.get(self.key(t))
        if obj is None:
            raise not_found(t.res, t.name)
        return obj

    def list(self, t: Target, query: dict[str, str]) -> Obj:
        items = self.store.list(t.res.group, t.res.plural, t.namespace if t.res.namespaced and t.namespace else None)
        items = [
            o
            for o in items
            if match_labels(o, query.get("labelSelector", "")) and match_fields(o, query.get("fieldSelector", ""))
        ]
        return {
            "kind": f"{t.res.kind}List",
            "apiVersion": t.res.group_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    def _ensure_namespace(self, t: Target) -> None:
        if t.res.namespaced and t.namespace and self.store.get(("", "namespaces", "", t.namespace)) is None:
            raise ApiError(
                404, "NotFound", f'namespaces "{t.namespace}" not found', {"name": t.namespace, "kind": "namespaces"}
            )

    def create(self, t: Target, obj: Obj, req: Request | None = None) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not isinstance(obj, dict) or obj.get("kind") not in (t.res.kind, None):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) does not match "
                f"the expected API version ({t.res.group_version})",
            )
        obj["apiVersion"], obj["kind"] = t.res.group_version, t.res.kind
        if meta.get("namespace") and t.namespace and meta["namespace"] != t.namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if t.res.namespaced:
            meta["namespace"] = t.namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                import secrets

                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
                )
            else:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{t.res.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                    {"kind": t.res.kind},
                )
        self._ensure_namespace(t)
        self.validate(t, obj)
        if t.res.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        for hook in self.hooks:
            hook("precreate", t.res, obj, req)
        try:
            out = self.store.create(self.key(t, meta["name"]), obj)
        except Conflict:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{qualified(t.res)} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": t.res.group, "kind": t.res.plural},
            ) from None
        self.after("create", t.res, out)
        return out

    def validate(self, t: Target, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if t.res.kind in ("Namespace", "Node", "Pod", "Secret", "ConfigMap") and not re.fullmatch(
            r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name
        ):
            raise ApiError(
                422,
                "Invalid",
                f'{t.res.kind} "{name}" is invalid: metadata.name: Invalid value: '
                f'"{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                {"name": name, "kind": t.res.kind},
            )
        if t.res.kind == "Node":
            for taint in obj.get("spec", {}).get("taints") or []:
                if taint.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                    raise ApiError(
                        422,
                        "Invalid",
                        f'Node "{name}" is invalid: spec.taints[0].effect: Unsupported value: "{taint.get("effect")}"',
                        {"name": name, "kind": "Node"},
                    )

    def update(self, t: Target, obj: Obj, old: Obj | None = None) -> Obj:
        old = old if old is not None else self.get(t)
        obj["apiVersion"], obj["kind"] = t.res.group_version, t.res.kind
        meta = obj.setdefault("metadata", {})
        if meta.get("name", t.name) != t.name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        meta["name"] = t.name
        if t.res.namespaced:
            meta["namespace"] = t.namespace
        if "status" in t.res.subresources:
            if t.subresource == "status":
                new_status = obj.get("status")
                obj = copy.deepcopy(old)
                if new_status is not None:
                    obj["status"] = new_status
                obj["metadata"]["resourceVersion"] = meta.get("resourceVersion", old["metadata"]["resourceVersion"])
            elif "status" in old:
                obj["status"] = old["status"]
            else:
                obj.pop("status", None)
        self.validate(t, obj)
        if t.res.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        try:
            out = self.store.update(self.key(t), obj, obj["metadata"].get("resourceVersion"))
        except Conflict as exc:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {qualified(t.res)} "{t.name}": {exc}',
                {"name": t.name, "group": t.res.group, "kind": t.res.plural},
            ) from None
        except KeyError:
            raise not_found(t.res, t.name) from None
        self.after("update", t.res, out)
        return out

    def patch(self, t: Target, ctype: str, body: Any, dry_run: bool = False) -> Obj:
        """Apply a patch; with dry_run (dryRun=All) the patched object is validated and returned, not stored."""
        old = self.get(t)
        ctype = ctype.split(";", maxsplit=1)[0].strip()
        try:
            if ctype == "application/json-patch+json":
                new = patchlib.json_patch(old, body)
            elif ctype == "application/merge-patch+json" or (
                ctype == "application/strategic-merge-patch+json" and t.res.crd
            ):
                if ctype != "application/merge-patch+json":
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"strategic merge patch is not supported for custom resources; use merge patch: {ctype}",
                    )
                new = patchlib.merge_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
                new = patchlib.strategic_merge_patch(old, body)
            elif ctype == "application/apply-patch+yaml":
                new = patchlib.merge_patch(old, body)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - "
                    f"accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/apply-patch+yaml ({ctype})",
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        if dry_run:
            self.validate(t, new)
            return new
        return self.update(t, new, old)

    def delete(self, t: Target) -> Obj:
        old = self.store.get(self.key(t))
        if old is None:
            raise not_found(t.res, t.name)
        if t.res.kind == "Namespace" and t.name in ("default", "kube-system", "kube-public"):
            raise ApiError(403, "Forbidden", f'namespaces "{t.name}" is forbidden: this namespace may not be deleted')
        self.store.delete(self.key(t))
        if t.res.kind == "Namespace":
            for k in [k for k in list(self.store.objects) if k[2] == t.name]:
                self.store.delete(k)
        if t.res.kind == "CustomResourceDefinition":
            spec = old.get("spec", {})
            for k in [
                k
                for k in list(self.store.objects)
                if k[0] == spec.get("group") and k[1] == spec.get("names", {}).get("plural")
            ]:
                self.store.delete(k)
        self.after("delete", t.res, old)
        return old

    def after(self, event: str, res: Resource, obj: Obj) -> None:
        for hook in self.hooks:
            hook(event, res, obj, None)


# ---- selectors ----
_SEL = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(\S*)\s*$")
_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(sel: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def match_labels(obj: Obj, sel: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in _split_selector(sel):
        m = _SET.match(term)
        if m:
            values = [v.strip() for v in m.group(3).split(",")]
            present = m.group(1) in labels and labels[m.group(1)] in values
            if present != (m.group(2) == "in"):
                return False
            continue
        m = _SEL.match(term)
        if m:
            if (labels.get(m.group(1)) == m.group(3)) != (m.group(2) != "!="):
                return False
            continue
        t = term.strip()
        if t.startswith("!"):
            if t[1:] in labels:
                return False
        elif t not in labels:
            return False
    return True


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def match_fields(obj: Obj, sel: str) -> bool:
    for term in _split_selector(sel):
        m = _SEL.match(term)
        if not m:
            continue
        if (_field(obj, m.group(1)) == m.group(3)) != (m.group(2) != "!="):
            return False
    return True


def parse_query(qs: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}


# ---- tables (what `kubectl get` prints) ----
def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    then = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    s = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def node_status(o: Obj) -> str:
    conds = {c.get("type"): c.get("status") for c in o.get("status", {}).get("conditions") or []}
    st = {"True": "Ready", "False": "NotReady"}.get(conds.get("Ready", ""), "Unknown")
    if o.get("spec", {}).get("unschedulable"):
        st += ",SchedulingDisabled"
    return st


def to_table(res: Resource, objs: list[Obj], list_meta: Obj) -> Obj:
    def col(name: str, typ: str = "string", fmt: str = "") -> Obj:
        return {"name": name, "type": typ, "format": fmt, "description": "", "priority": 0}

    if res.kind == "Node":
        cols = [col("Name", fmt="name"), col("Status"), col("Roles"), col("Age"), col("Version")]

        def cells(o: Obj) -> list[Any]:
            roles = sorted(
                k.split("/", 1)[1]
                for k in (o["metadata"].get("labels") or {})
                if k.startswith("node-role.kubernetes.io/")
            )
            return [
                o["metadata"]["name"],
                node_status(o),
                ",".join(roles) or "<none>",
                age(o["metadata"].get("creationTimestamp")),
                o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
            ]
    elif res.kind == "Pod":
        cols = [col("Name", fmt="name"), col("Ready"), col("Status"), col("Restarts", "string"), col("Age")]

        def cells(o: Obj) -> list[Any]:
            n = len(o.get("spec", {}).get("containers") or [])
            ready = sum(1 for c in o.get("status", {}).get("containerStatuses") or [] if c.get("ready"))
            return [
                o["metadata"]["name"],
                f"{ready}/{n}",
                o.get("status", {}).get("phase", "Pending"),
                "0",
                age(o["metadata"].get("creationTimestamp")),
            ]
    elif res.kind == "Namespace":
        cols = [col("Name", fmt="name"), col("Status"), col("Age")]

        def cells(o: Obj) -> list[Any]:
            return [
                o["metadata"]["name"],
                o.get("status", {}).get("phase", "Active"),
                age(o["metadata"].get("creationTimestamp")),
            ]
    elif res.kind == "PodDisruptionBudget":
        cols = [col("Name", fmt="name"), col("Min Available"), col("Max Unavailable"),
                col("Allowed Disruptions", "integer"), col("Age")]

        def cells(o: Obj) -> list[Any]:
            spec = o.get("spec") or {}
            return [
                o["metadata"]["name"],
                "N/A" if spec.get("minAvailable") is None else str(spec["minAvailable"]),
                "N/A" if spec.get("maxUnavailable") is None else str(spec["maxUnavailable"]),
                (o.get("status") or {}).get("disruptionsAllowed", 0),
                age(o["metadata"].get("creationTimestamp")),
            ]
    elif res.kind == "CustomResourceDefinition":
        cols = [col("Name", fmt="name"), col("Created At", "date")]

        def cells(o: Obj) -> list[Any]:
            return [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]
    else:
        cols = [col("Name", fmt="name"), col("Age")]

        def cells(o: Obj) -> list[Any]:
            return [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))]

    rows = [
        {
            "cells": cells(o),
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
        }
        for o in objs
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": cols,
        "rows": rows,
    }


def now() -> str:
    return now_rfc3339()
