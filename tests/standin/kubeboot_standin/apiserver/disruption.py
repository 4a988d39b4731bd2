"""PodDisruptionBudgets (policy/v1) and the pods' eviction subresource, as kube-apiserver and the disruption
controller behave for `kubectl drain`.

There is no disruption controller loop: a PDB's status is computed from the pods when it is read (get, list) and
when an eviction checks it, which is what the controller would have written once it observed them. Evictions are
serialized (one lock), so concurrent ones (kubectl drain evicts a node's pods in parallel) see each other's deletions,
as the real API server's resourceVersion check on the PDB makes them do.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import Any

from .api import Api, ApiError, Target, not_found

Obj = dict[str, Any]
PDB_KEY = ("policy", "poddisruptionbudgets")
_LOCK = threading.Lock()


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector: None matches nothing, {} everything (policy/v1)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with roundUp, as the disruption controller calls it."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def pdb_pods(api: Api, pdb: Obj) -> list[Obj]:
    ns = pdb["metadata"].get("namespace", "")
    sel = (pdb.get("spec") or {}).get("selector")
    return [
        p
        for p in api.store.list("", "pods", ns)
        if not p["metadata"].get("deletionTimestamp") and selector_matches(sel, p["metadata"].get("labels") or {})
    ]


def pdb_status(api: Api, pdb: Obj) -> Obj:
    """What the disruption controller writes: expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed
    (pods without a controller count as they are; a maxUnavailable budget counts the pods it selects)."""
    spec = pdb.get("spec") or {}
    pods = pdb_pods(api, pdb)
    expected = len(pods)
    healthy = sum(1 for p in pods if pod_ready(p))
    if spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    elif spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected)
    else:
        desired = 0  # neither field (policy/v1 defaults none): nothing is required
    allowed = max(0, healthy - desired)
    gen = int(pdb["metadata"].get("generation") or 1)
    ts = pdb["metadata"].get("creationTimestamp")
    return {
        "observedGeneration": gen,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True" if allowed > 0 else "False",
                "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                "message": "",
                "observedGeneration": gen,
                "lastTransitionTime": ts,
            }
        ],
    }


def with_status(api: Api, pdb: Obj) -> Obj:
    out = copy.deepcopy(pdb)
    out["status"] = pdb_status(api, pdb)
    return out


def evict(api: Api, t: Target, body: Obj, dry_run: bool) -> Obj:
    """POST pods/<name>/eviction (policy/v1 Eviction): delete the pod unless its budget forbids it (429)."""
    if body.get("kind") not in (None, "Eviction"):
        raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {body.get('kind')}")
    name = (body.get("metadata") or {}).get("name") or t.name
    if name != t.name:
        raise ApiError(400, "BadRequest", f"name in URL does not match name in Eviction object: {name}")
    if (body.get("deleteOptions") or {}).get("dryRun"):
        dry_run = True
    pod_target = Target(t.res, t.namespace, t.name, "")
    with _LOCK:
        pod = api.store.get(api.key(pod_target))
        if pod is None:
            raise not_found(t.res, t.name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get("deletionTimestamp"):
            labels = pod["metadata"].get("labels") or {}
            pdbs = [
                p
                for p in api.store.list(*PDB_KEY, t.namespace)
                if selector_matches((p.get("spec") or {}).get("selector"), labels)
            ]
            if len(pdbs) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )
            if pdbs:
                check_budget(api, pdbs[0], pod)
        if not dry_run:
            api.delete(pod_target)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def check_budget(api: Api, pdb: Obj, pod: Obj) -> None:
    st = pdb_status(api, pdb)
    policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
    if not pod_ready(pod) and (
        policy == "AlwaysAllow" or (st["currentHealthy"] >= st["desiredHealthy"] and st["desiredHealthy"] > 0)
    ):
        return  # an unhealthy pod of a budget that holds
    if st["disruptionsAllowed"] > 0:
        return
    err = ApiError(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": f"The disruption budget {pdb['metadata']['name']} needs {st['desiredHealthy']} "
                    f"healthy pods and has {st['currentHealthy']} currently",
                }
            ]
        },
    )
    raise err
