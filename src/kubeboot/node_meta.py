"""Declarative reconciling of a Node's labels, taints and annotations (the node_meta role's module).

Pure functions over the Node object as `kubectl get node -o json` returns it. Standard library only: the Ansible
module `kubeboot_node_meta` runs this file on the first control plane as its module_utils
(plugins/module_utils/kubeboot_node_meta.py is a link to it), where the kubeboot package is not installed.

What kubeboot set is recorded on the Node itself, in the annotations RECORD_LABELS, RECORD_TAINTS and
RECORD_ANNOTATIONS (comma-separated keys; taints as key:Effect). A reconcile adds what is missing, updates what
differs, removes what the record names and the inventory no longer lists, and never touches anything else.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_PREFIX = "kubeboot.io/managed-"
RECORD_LABELS = RECORD_PREFIX + "labels"
RECORD_TAINTS = RECORD_PREFIX + "taints"
RECORD_ANNOTATIONS = RECORD_PREFIX + "annotations"
RECORDS = (RECORD_LABELS, RECORD_TAINTS, RECORD_ANNOTATIONS)

Taint = dict[str, str]


def taint_id(taint: Mapping[str, Any]) -> str:
    """A taint's identity on a Node: its key and effect (the API server refuses two taints with both equal)."""
    return f"{taint.get('key', '')}:{taint.get('effect', '')}"


def parse_taint(text: str) -> Taint:
    """'key=value:Effect' or 'key:Effect' -> {key, value?, effect}; raises ValueError without an effect."""
    body, colon, effect = text.rpartition(":")
    if not colon or not body:
        raise ValueError(f"taint {text!r} must be key=value:Effect or key:Effect")
    key, _, value = body.partition("=")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}


def normal_taint(taint: Mapping[str, Any] | str) -> Taint:
    """A taint as the API returns it: key, effect and a value only when it is not empty."""
    if isinstance(taint, str):
        return parse_taint(taint)
    out = {"key": str(taint["key"]), "effect": str(taint["effect"])}
    if taint.get("value") not in (None, ""):
        out["value"] = str(taint["value"])
    return out


def taint_text(taint: Mapping[str, Any]) -> str:
    value = taint.get("value") or ""
    return f"{taint['key']}={value}:{taint['effect']}" if value else f"{taint['key']}:{taint['effect']}"


def _same_taint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return normal_taint(a) == normal_taint(b)


def _record(annotations: Mapping[str, str], name: str) -> list[str]:
    return [item for item in str(annotations.get(name, "")).split(",") if item]


@dataclass
class Desired:
    """What the inventory declares for one Node."""

    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Desired:
        taints: dict[str, Taint] = {}
        for item in params.get("taints") or []:
            taint = normal_taint(item)
            taints[taint_id(taint)] = taint  # a later entry with the same key and effect wins
        return cls(
            labels={str(k): "" if v is None else str(v) for k, v in (params.get("labels") or {}).items()},
            taints=list(taints.values()),
            annotations={str(k): "" if v is None else str(v) for k, v in (params.get("annotations") or {}).items()},
        )


@dataclass
class Plan:
    """The reconcile of one Node: its state before and after and the JSON patch between them."""

    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    ops: list[dict[str, Any]]

    @property
    def changed(self) -> bool:
        return bool(self.ops)

    def summary(self) -> list[str]:
        """One line per change, e.g. 'label app: "old" -> "msms"'."""
        lines = []
        for kind in ("labels", "annotations"):
            old, new = self.before[kind], self.after[kind]
            for key in sorted(set(old) | set(new)):
                if key in RECORDS or old.get(key) == new.get(key):
                    continue
                word = kind[:-1]
                if key not in old:
                    lines.append(f"{word} {key}={new[key]!r} added")
                elif key not in new:
                    lines.append(f"{word} {key}={old[key]!r} removed")
                else:
                    lines.append(f"{word} {key}: {old[key]!r} -> {new[key]!r}")
        old_taints = {taint_id(t): t for t in self.before["taints"]}
        new_taints = {taint_id(t): t for t in self.after["taints"]}
        for ident in sorted(set(old_taints) | set(new_taints)):
            if ident not in old_taints:
                lines.append(f"taint {taint_text(new_taints[ident])} added")
            elif ident not in new_taints:
                lines.append(f"taint {taint_text(old_taints[ident])} removed")
            elif not _same_taint(old_taints[ident], new_taints[ident]):
                lines.append(f"taint {taint_text(old_taints[ident])} -> {taint_text(new_taints[ident])}")
        return lines


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _reconcile_map(current: Mapping[str, str], desired: Mapping[str, str], managed: Iterable[str]) -> dict[str, str]:
    out = dict(current)
    for key in managed:
        if key not in desired:
            out.pop(key, None)
    out.update(desired)
    return out


def _record_value(keys: Iterable[str]) -> str:
    return ",".join(sorted(set(keys)))


def _map_ops(section: str, old: Mapping[str, str], new: Mapping[str, str], exists: bool) -> list[dict[str, Any]]:
    if old == new:
        return []
    if not exists:
        return [{"op": "add", "path": _pointer("metadata", section), "value": dict(new)}]
    ops: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            ops.append({"op": "remove", "path": _pointer("metadata", section, key)})
        elif old.get(key) != new[key]:
            ops.append({"op": "add", "path": _pointer("metadata", section, key), "value": new[key]})
    return ops


def plan(node: Mapping[str, Any], desired: Desired) -> Plan:
    """Compare a Node (as the API returns it) with what the inventory declares."""
    meta = node.get("metadata") or {}
    name = str(meta.get("name", ""))
    labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    taints: list[dict[str, Any]] = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]

    new_labels = _reconcile_map(labels, desired.labels, _record(annotations, RECORD_LABELS))
    new_annotations = _reconcile_map(annotations, desired.annotations, _record(annotations, RECORD_ANNOTATIONS))

    wanted = {taint_id(t): t for t in desired.taints}
    drop = set(_record(annotations, RECORD_TAINTS)) - set(wanted)
    new_taints: list[dict[str, Any]] = []
    for taint in taints:
        ident = taint_id(taint)
        if ident in drop:
            continue
        if ident in wanted:
            want = wanted.pop(ident)
            # Keep the API's own fields (timeAdded) when the taint is already what the inventory says.
            new_taints.append(taint if _same_taint(taint, want) else normal_taint(want))
            continue
        new_taints.append(taint)
    new_taints += [normal_taint(t) for t in wanted.values()]

    records = {
        RECORD_LABELS: _record_value(desired.labels),
        RECORD_TAINTS: _record_value(taint_id(t) for t in desired.taints),
        RECORD_ANNOTATIONS: _record_value(desired.annotations),
    }
    for record, value in records.items():
        if value:
            new_annotations[record] = value
        else:
            new_annotations.pop(record, None)

    ops = _map_ops("labels", labels, new_labels, "labels" in meta and meta["labels"] is not None)
    ops += _map_ops("annotations", annotations, new_annotations,
                    "annotations" in meta and meta["annotations"] is not None)
    if new_taints != taints:
        current = (node.get("spec") or {}).get("taints")
        if current:
            # The test makes the patch fail, rather than overwrite, when someone changed the taints meanwhile.
            ops.append({"op": "test", "path": "/spec/taints", "value": current})
            ops.append({"op": "replace", "path": "/spec/taints", "value": new_taints} if new_taints
                       else {"op": "remove", "path": "/spec/taints"})
        else:
            if "spec" not in node:
                ops.append({"op": "add", "path": "/spec", "value": {}})
            ops.append({"op": "add", "path": "/spec/taints", "value": new_taints})

    before = {"labels": labels, "taints": taints, "annotations": annotations}
    after = {"labels": new_labels, "taints": new_taints, "annotations": new_annotations}
    return Plan(name=name, before=before, after=after, ops=ops)


def apply_ops(node: Mapping[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The Node after a plan's JSON patch (for tests and for showing the result of a check-mode run)."""
    doc = copy.deepcopy(dict(node))
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[part]
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[last]
        elif op["op"] == "test" and parent.get(last) != op["value"]:
            raise ValueError(f"test of {op['path']} failed")
    return doc


def diff_text(state: Mapping[str, Any]) -> str:
    """The part of a Node the reconcile looks at, as stable text for Ansible's --diff."""
    shown = {
        "labels": dict(sorted(state["labels"].items())),
        "taints": [taint_text(t) for t in state["taints"]],
        "annotations": {k: v for k, v in sorted(state["annotations"].items())},
    }
    return json.dumps(shown, indent=2) + "\n"
