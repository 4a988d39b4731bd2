"""OpenAPI v3 documents, just enough for kubectl: the root index and one document per
group-version whose PATCH operations declare the fieldValidation parameter, so kubectl
uses server-side field validation (as against a real 1.33 server)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .protobuf import delimited

if TYPE_CHECKING:
    from .api import Api

QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gv_doc(api: Api, group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for r in api.resources():
        if (r.group, r.version) != (group, version):
            continue
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = f"/{_gv_path(group, version)}"
        item = f"{base}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else f"{base}/{r.plural}/{{name}}"
        params = [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for p in QUERY_PARAMS]
        op = {
            "operationId": f"patch{r.kind}",
            "parameters": params,
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK"}},
        }
        paths[item] = {"patch": op}
        name = f"{'.'.join(reversed(group.split('.'))) if group else 'io.k8s.api.core'}.{version}.{r.kind}"
        schemas[name] = {"type": "object", "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": api.version["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3(api: Api, path: str) -> dict[str, Any] | None:
    gvs = sorted({(r.group, r.version) for r in api.resources()})
    if path.rstrip("/") == "/openapi/v3":
        out = {}
        for g, v in gvs:
            digest = hashlib.sha512(json.dumps(_gv_doc(api, g, v), sort_keys=True).encode()).hexdigest().upper()
            out[_gv_path(g, v)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={digest}"}
        return {"paths": out}
    for g, v in gvs:
        if path == f"/openapi/v3/{_gv_path(g, v)}":
            return _gv_doc(api, g, v)
    return None


def openapi_v2_protobuf(version: str) -> bytes:
    """A minimal gnostic openapi_v2.Document (swagger, info, empty paths and definitions), the
    protobuf kubectl asks /openapi/v2 for. With no definitions, client-side validation has no
    schema to check and accepts the object, as kubectl does for kinds absent from the spec."""
    info = delimited(1, b"Kubernetes") + delimited(2, version.encode())
    return delimited(1, b"2.0") + delimited(2, info) + delimited(8, b"")
