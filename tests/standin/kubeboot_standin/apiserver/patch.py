"""JSON merge patch, JSON patch and a strategic merge patch for the fields kubectl patches."""

from __future__ import annotations

import copy
from typing import Any

# patchMergeKey of list fields in the built-in types (the subset kubectl's verbs touch).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "imagePullSecrets": "name",
    "addresses": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
}
# Lists merged as sets of scalars.
SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, list):
        key = MERGE_KEYS.get(field)
        if field in SET_LISTS and isinstance(target, list):
            return list(dict.fromkeys([*target, *patch]))
        if key and isinstance(target, list):
            out = copy.deepcopy(target)
            for item in patch:
                if not isinstance(item, dict):
                    continue
                directive = item.get("$patch")
                idx = next((i for i, t in enumerate(out) if isinstance(t, dict) and t.get(key) == item.get(key)), None)
                clean = {k: v for k, v in item.items() if k != "$patch"}
                if directive == "delete":
                    if idx is not None:
                        out.pop(idx)
                elif idx is None:
                    out.append(strategic_merge_patch({}, clean))
                else:
                    out[idx] = strategic_merge_patch(out[idx], clean)
            return out
        return [strategic_merge_patch({}, i) if isinstance(i, dict) else i for i in patch]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    merged: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            merged[name] = [x for x in merged.get(name, []) if x not in v]
            continue
        if v is None:
            merged.pop(k, None)
        else:
            res = strategic_merge_patch(merged.get(k), v, k)
            if res is None:
                merged.pop(k, None)
            else:
                merged[k] = res
    return merged


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(target)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ValueError(f"replace operation does not apply: doc is missing key: {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                if last not in parent:
                    raise ValueError(f"remove operation does not apply: doc is missing path: {op['path']}")
                del parent[last]
        elif kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ValueError(f"testing value {op['path']} failed")
        else:
            raise ValueError(f"unsupported operation {kind}")
    return doc
