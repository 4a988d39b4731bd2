"""The API server stand-in's DaemonSet controller: one pod per node the template selects and tolerates, bound with
spec.nodeName; pods of a node or DaemonSet that is gone are deleted; the DaemonSet's status counts them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeboot_standin.apiserver.api import Api
from kubeboot_standin.apiserver.controllers import Controllers, daemon_pod_fits, tolerates
from kubeboot_standin.apiserver.store import Store

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
MSMS_TAINT = {"key": "dedicated", "value": "msms", "effect": "NoExecute"}


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def daemonset(name: str, tolerations: list[dict[str, str]], selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"tolerations": tolerations, "containers": [{"name": "c", "image": "registry.k8s.io/x"}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def test_tolerations_match_taints_as_the_scheduler_does() -> None:
    assert tolerates([{"operator": "Exists"}], MSMS_TAINT)
    assert tolerates([{"operator": "Exists", "effect": "NoSchedule"}], CONTROL_PLANE_TAINT)
    assert not tolerates([{"operator": "Exists", "effect": "NoSchedule"}], MSMS_TAINT)
    assert tolerates([{"key": "dedicated", "operator": "Equal", "value": "msms"}], MSMS_TAINT)
    assert not tolerates([{"key": "dedicated", "operator": "Equal", "value": "db"}], MSMS_TAINT)


def test_a_daemon_pod_fits_by_node_selector_and_tolerated_taints() -> None:
    everywhere = daemonset("kube-proxy", [{"operator": "Exists"}])
    no_schedule = daemonset("flannel", [{"operator": "Exists", "effect": "NoSchedule"}])
    only_msms = daemonset("agent", [], {"tier": "media"})
    assert daemon_pod_fits(everywhere, node("cp1", taints=[CONTROL_PLANE_TAINT]))
    assert daemon_pod_fits(no_schedule, node("cp1", taints=[CONTROL_PLANE_TAINT]))
    assert not daemon_pod_fits(no_schedule, node("m1", taints=[MSMS_TAINT]))
    assert daemon_pod_fits(only_msms, node("w1", {"tier": "media"}))
    assert not daemon_pod_fits(only_msms, node("w2"))
    # the controller's own tolerations: a NotReady node still gets the pod
    assert daemon_pod_fits(only_msms, node("w1", {"tier": "media"},
                                           [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]))


def test_the_controller_keeps_one_pod_per_fitting_node(tmp_path: Path) -> None:
    api = Api(Store(None), {"gitVersion": "v1.33.1"}, "127.0.0.1")
    ctl = Controllers(api, tmp_path / "kube-controller-manager.yaml")
    for n in (node("cp1", taints=[CONTROL_PLANE_TAINT]), node("w1"), node("w2")):
        api.store.create(("", "nodes", "", n["metadata"]["name"]), n)
    api.store.create(("apps", "daemonsets", "kube-system", "flannel"),
                     daemonset("flannel", [{"operator": "Exists", "effect": "NoSchedule"}]))
    api.store.create(("apps", "daemonsets", "kube-system", "workers"), daemonset("workers", []))

    def bound() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in api.store.list("", "pods"):
            out.setdefault(p["metadata"]["ownerReferences"][0]["name"], []).append(p["spec"]["nodeName"])
        return {k: sorted(v) for k, v in out.items()}

    ctl.sync_daemonsets()
    assert bound() == {"flannel": ["cp1", "w1", "w2"], "workers": ["w1", "w2"]}
    names = sorted(p["metadata"]["name"] for p in api.store.list("", "pods"))
    ctl.sync_daemonsets()  # nothing to do
    assert sorted(p["metadata"]["name"] for p in api.store.list("", "pods")) == names
    status = api.store.get(("apps", "daemonsets", "kube-system", "flannel"))["status"]  # type: ignore[index]
    assert (status["desiredNumberScheduled"], status["numberReady"]) == (3, 0)
    api.store.delete(("", "nodes", "", "w2"))
    api.store.delete(("apps", "daemonsets", "kube-system", "workers"))
    ctl.sync_daemonsets()
    assert bound() == {"flannel": ["cp1", "w1"]}
