"""playbooks/upgrade.yml's decisions (kubeboot.upgrade): the preflight refusals, each node's steps left, the pods
that block a drain, the versions report."""

from __future__ import annotations

from typing import Any

import pytest

from kubeboot import upgrade


def node(name: str, kubelet: str = "v1.32.5", ready: bool = True, unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"nodeInfo": {"kubeletVersion": kubelet},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def static_pod(component: str, node_name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{component}-{node_name}", "namespace": "kube-system",
                         "labels": {"component": component, "tier": "control-plane"}},
            "spec": {"nodeName": node_name,
                     "containers": [{"name": component, "image": f"registry.k8s.io/{component}:{version}"}]}}


def nodes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items)}


CLUSTER = nodes(node("cp1"), node("w1"), node("w2"))
PODS = {"items": [static_pod(c, "cp1", "v1.32.5") for c in upgrade.COMPONENTS]
        + [{"metadata": {"name": "kube-proxy-x", "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"nodeName": "w1", "containers": [{"image": "registry.k8s.io/kube-proxy:v1.32.5"}]}}]}


def preflight(target: str, cluster: dict[str, Any] = CLUSTER, pods: dict[str, Any] = PODS,
              inventory: tuple[str, ...] = ("cp1", "w1", "w2")) -> list[str]:
    return upgrade.preflight(target, cluster, pods, inventory, "cp1")


@pytest.mark.parametrize("target", ["1.33.1", "v1.33.1", "1.32.5", "1.32.9"])
def test_the_next_minor_or_a_patch_of_the_same_passes(target: str) -> None:
    assert preflight(target) == []


def test_skipping_a_minor_is_refused() -> None:
    assert preflight("1.34.0") == [
        "cp1: kube_version = 1.34.0 skips a minor: the API servers run v1.32.5; upgrade one minor at a time "
        "(first to the latest 1.33.x)"]


def test_a_downgrade_is_refused() -> None:
    assert preflight("1.32.1") == [
        "cp1: kube_version = 1.32.1 is older than the cluster's API server (v1.32.5); downgrades are not supported: "
        "give a version at or above it"]


@pytest.mark.parametrize("target", ["1.33", "latest", "1.33.1-1.1"])
def test_a_target_that_is_not_a_patch_version_is_refused(target: str) -> None:
    assert preflight(target)[0].startswith(f"cp1: kube_version = {target!r} is not a full patch version")


def test_a_node_not_ready_and_a_node_missing_are_named() -> None:
    problems = preflight("1.33.1", nodes(node("cp1"), node("w1", ready=False)))
    assert problems == [
        "w1: is not Ready; every node must be Ready before an upgrade (kubectl describe node w1)",
        "w2: is not a node of the cluster (kubectl get nodes); join it with site.yml first, or leave it out of the "
        "inventory"]


def test_a_kubelet_newer_than_the_api_servers_is_refused() -> None:
    problems = preflight("1.33.1", nodes(node("cp1"), node("w1", kubelet="v1.33.1"), node("w2")))
    assert problems == ["w1: its kubelet (v1.33.1) is newer than the API servers (v1.32.5); kubeadm supports no "
                        "such skew: reinstall the kubelet at v1.32.5"]


def test_a_resumed_upgrade_passes_with_the_api_servers_at_two_versions() -> None:
    pods = {"items": [static_pod("kube-apiserver", "cp1", "v1.33.1"), static_pod("kube-apiserver", "cp2", "v1.32.5")]}
    cluster = nodes(node("cp1", kubelet="v1.33.1"), node("cp2"), node("w1"))
    assert upgrade.preflight("1.33.1", cluster, pods, ["cp1", "cp2", "w1"], "cp1") == []


def test_without_api_server_pods_the_preflight_says_the_cluster_must_run() -> None:
    assert "no kube-apiserver static pod" in preflight("1.33.1", pods={"items": []})[0]


LOCAL_132 = {"kubeadm": "v1.32.5", "kubelet": "Kubernetes v1.32.5", "kubectl": "v1.32.5",
             "apiserver": "registry.k8s.io/kube-apiserver:v1.32.5", "cordoned": "", "applied": ""}
LOCAL_133 = {"kubeadm": "v1.33.1", "kubelet": "Kubernetes v1.33.1", "kubectl": "v1.33.1",
             "apiserver": "registry.k8s.io/kube-apiserver:v1.33.1", "cordoned": "", "applied": ""}


def steps(local: dict[str, Any], reported: str, role: str, **extra: Any) -> dict[str, Any]:
    return upgrade.node_steps("1.33.1", {**local, **extra}, node("x", kubelet=reported), role)


def test_a_first_control_plane_at_the_old_version_does_everything() -> None:
    got = steps(LOCAL_132, "v1.32.5", "first")
    assert {k: got[k] for k in ("kubeadm", "apply", "node", "drain", "packages", "restart", "uncordon", "done")} == {
        "kubeadm": True, "apply": True, "node": False, "drain": True, "packages": True, "restart": True,
        "uncordon": True, "done": False}
    assert got["summary"] == ("kubeadm v1.32.5, control plane v1.32.5, kubelet v1.32.5, kubectl v1.32.5 -> v1.33.1")


def test_a_node_at_the_target_has_nothing_left() -> None:
    got = steps(LOCAL_133, "v1.33.1", "first", applied="v1.33.1")
    assert got["done"] and not any(got[k] for k in ("kubeadm", "apply", "drain", "packages", "restart", "uncordon"))
    assert got["summary"] == "at v1.33.1"


def test_apply_is_not_repeated_where_the_cluster_runs_the_target() -> None:
    """A run that stopped after `kubeadm upgrade apply` finished, before the kubelet: the re-run goes on from the
    drain (the marker), or, without the marker, from what the cluster says (kubeadm-config and kube-proxy)."""
    local = {**LOCAL_132, "kubeadm": "v1.33.1", "apiserver": "registry.k8s.io/kube-apiserver:v1.33.1"}
    for extra in ({"applied": "v1.33.1"},
                  {"cluster": "v1.33.1", "proxy": "registry.k8s.io/kube-proxy:v1.33.1"}):
        got = steps(local, "v1.32.5", "first", **extra)
        assert not got["apply"] and not got["kubeadm"] and got["drain"] and got["packages"] and got["restart"]


def test_an_apply_that_stopped_after_the_manifests_runs_again() -> None:
    local = {**LOCAL_132, "kubeadm": "v1.33.1", "apiserver": "registry.k8s.io/kube-apiserver:v1.33.1"}
    got = steps(local, "v1.32.5", "first", cluster="v1.33.1", proxy="registry.k8s.io/kube-proxy:v1.32.5")
    assert got["apply"]
    assert "kubeadm upgrade apply unfinished" in got["summary"]


def test_another_control_plane_runs_upgrade_node_until_its_manifests_are_at_the_target() -> None:
    assert steps(LOCAL_132, "v1.32.5", "control_plane")["node"]
    upgraded = {**LOCAL_132, "kubeadm": "v1.33.1", "apiserver": "registry.k8s.io/kube-apiserver:v1.33.1"}
    got = steps(upgraded, "v1.32.5", "control_plane")
    assert not got["node"] and not got["apply"] and got["packages"]


def test_a_worker_runs_upgrade_node_until_its_kubelet_package_is_at_the_target() -> None:
    worker = {**LOCAL_132, "apiserver": ""}
    got = steps(worker, "v1.32.5", "worker")
    assert got["node"] and got["packages"] and not got["apply"]
    restarted_only = steps({**LOCAL_133, "apiserver": ""}, "v1.32.5", "worker")
    assert not restarted_only["node"] and not restarted_only["packages"] and restarted_only["restart"]
    assert restarted_only["summary"] == "running kubelet v1.32.5 -> v1.33.1"


def test_a_node_left_cordoned_by_a_stopped_run_is_uncordoned() -> None:
    got = steps(LOCAL_133, "v1.33.1", "worker", apiserver="", cordoned="v1.33.1")
    assert got["done"] and got["uncordon"] and not got["drain"]


DRAIN_OUTPUT = """node/w1 cordoned
evicting pod default/web-1
error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
error when evicting pods/"db-0" -n "data" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
There are pending pods in node "w1" when an error occurred: error when evicting pods/"web-1" -n "default": global timeout reached: 30s
"""  # noqa: E501


def test_the_pods_that_block_a_drain_are_named_with_their_budgets() -> None:
    pods = {"items": [{"metadata": {"namespace": "default", "name": "web-1", "labels": {"app": "web"}}},
                      {"metadata": {"namespace": "data", "name": "db-0", "labels": {"app": "db", "tier": "x"}}}]}
    pdbs = {"items": [
        {"metadata": {"namespace": "default", "name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}},
         "status": {"disruptionsAllowed": 0}},
        {"metadata": {"namespace": "default", "name": "other"}, "spec": {"selector": {"matchLabels": {"app": "x"}}},
         "status": {"disruptionsAllowed": 0}},
        {"metadata": {"namespace": "data", "name": "db"},
         "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}},
         "status": {"disruptionsAllowed": 0}},
    ]}
    assert upgrade.drain_blockers(DRAIN_OUTPUT, pods, pdbs) == (
        "default/web-1 (PodDisruptionBudget default/web: 0 disruptions allowed), "
        "data/db-0 (PodDisruptionBudget data/db: 0 disruptions allowed)")


def test_a_drain_that_failed_otherwise_names_no_pod() -> None:
    assert upgrade.drain_blockers("error: node w9 not found", {"items": []}, {"items": []}) == ""


def test_the_versions_report_lists_every_node_and_what_is_behind() -> None:
    cluster = nodes(node("cp1", kubelet="v1.33.1"), node("w1", kubelet="v1.32.5"))
    pods = {"items": [static_pod(c, "cp1", "v1.33.1") for c in upgrade.COMPONENTS[:2]]
            + [static_pod("kube-scheduler", "cp1", "v1.32.5")]}
    local = {"cp1": {"kubeadm": "v1.33.1", "kubectl": "v1.33.1"}, "w1": {"kubeadm": "v1.33.1", "kubectl": "v1.32.5"}}
    report = upgrade.versions_report("1.33.1", cluster, pods, local)
    assert report["lines"] == [
        "cp1: kubelet v1.33.1, kubeadm v1.33.1, kubectl v1.33.1; kube-apiserver v1.33.1, "
        "kube-controller-manager v1.33.1, kube-scheduler v1.32.5",
        "w1: kubelet v1.32.5, kubeadm v1.33.1, kubectl v1.32.5"]
    assert report["behind"] == ["cp1: kube-scheduler runs v1.32.5", "w1: kubelet runs v1.32.5",
                                "w1: kubectl is v1.32.5"]
    done = upgrade.versions_report("1.33.1", nodes(node("cp1", kubelet="v1.33.1")),
                                   {"items": [static_pod(c, "cp1", "v1.33.1") for c in upgrade.COMPONENTS]},
                                   {"cp1": {"kubeadm": "v1.33.1", "kubectl": "v1.33.1"}})
    assert done["behind"] == []


def test_the_versions_report_has_kube_proxy_from_its_daemonset() -> None:
    cluster = nodes(node("cp1", kubelet="v1.33.1"))
    pods = {"items": [static_pod(c, "cp1", "v1.33.1") for c in upgrade.COMPONENTS]}
    local = {"cp1": {"kubeadm": "v1.33.1", "kubectl": "v1.33.1"}}
    proxy = {"items": [{"metadata": {"name": "kube-proxy"}, "spec": {"template": {"spec": {"containers": [
        {"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.32.5"}]}}}}]}
    report = upgrade.versions_report("1.33.1", cluster, pods, local, proxy)
    assert report["lines"][0] == "cluster: kube-proxy v1.32.5"
    assert report["behind"] == ["cluster: kube-proxy runs v1.32.5"]


def test_a_package_left_unheld_is_held_again_without_any_other_step() -> None:
    """A node powered off between kubeadm's install and its hold: at the target, nothing to drain, kubeadm to hold."""
    got = steps({**LOCAL_133, "apiserver": "", "unheld": "kubeadm "}, "v1.33.1", "worker")
    assert got["done"] and not got["drain"] and got["hold"] == ["kubeadm"]
    assert got["summary"] == "at v1.33.1; not held: kubeadm"
    assert steps({**LOCAL_133, "apiserver": ""}, "v1.33.1", "worker")["hold"] == []
