"""kubeadm upgrade plan / apply / node against the stand-in: a cluster made by the 1.32 packages ("nodes" as temp
roots on loopback), upgraded to 1.33 the way kubeadm documents it, with the real kubectl watching."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubeboot_standin import paths
from nodesim import Node
from test_kubeadm_flow import Env, start_cluster, wait

OLD = "v1.32.5"
NEW = paths.DEFAULT_VERSION  # v1.33.1
CNI = '{"cniVersion": "1.0.0", "name": "test", "plugins": [{"type": "bridge"}]}\n'


def network(node: Node, ready: bool) -> None:
    """A CNI configuration makes the node's kubelet report Ready (none: NotReady, "cni plugin not initialized")."""
    conf = node.root / "etc/cni/net.d/10-test.conflist"
    if ready:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CNI)
    else:
        conf.unlink(missing_ok=True)


def old_node(node: Node) -> None:
    """A node of the 1.32 packages, with a network (Ready)."""
    node.version = OLD
    network(node, True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    nodes: list[Node] = []
    try:
        e = start_cluster(tmp_path_factory, "standin-upgrade", nodes, old_node)
        assert f"[init] Using Kubernetes version: {OLD}" in e.init_out
        wait(lambda: kubelet_versions(e) == {"cp1": OLD, "w1": OLD})
        yield e
    finally:
        for n in nodes:
            n.stop()


def kubelet_versions(e: Env) -> dict[str, str]:
    """The nodes' kubelet versions ({} while the API server restarts with its kubelet)."""
    got = e.kubectl("get", "nodes", "-o", "json", check=False)
    if got.returncode != 0:
        return {}
    items = json.loads(got.stdout)["items"]
    return {n["metadata"]["name"]: n["status"].get("nodeInfo", {}).get("kubeletVersion", "") for n in items}


def server_version(e: Env) -> str:
    got = e.kubectl("version", "-o", "json", check=False)
    return str(json.loads(got.stdout).get("serverVersion", {}).get("gitVersion", "")) if got.stdout else ""


def image_tag(node: Node, component: str) -> str:
    pod = yaml.safe_load((node.root / f"etc/kubernetes/manifests/{component}.yaml").read_text())
    return str(pod["spec"]["containers"][0]["image"]).rpartition(":")[2]


def cluster_config_version(e: Env) -> str:
    cm = json.loads(e.kubectl("get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
    return str(yaml.safe_load(cm["data"]["ClusterConfiguration"])["kubernetesVersion"])


def fault(node: Node, phase: str) -> Path:
    f = node.root / "etc/kubeboot-standin/faults/upgrade"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(phase + "\n")
    return f


def test_1_the_old_minor_reports_its_version_everywhere(env: Env) -> None:
    assert server_version(env) == OLD
    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert image_tag(env.cp, c) == OLD
    assert cluster_config_version(env) == OLD
    assert env.cp.kubeadm("version", "-o", "short").stdout == f"{OLD}\n"
    ds = json.loads(env.kubectl("get", "ds", "-n", "kube-system", "kube-proxy", "-o", "json").stdout)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f"/kube-proxy:{OLD}")
    up_to_date = env.cp.kubeadm("upgrade", "plan")
    assert up_to_date.returncode == 0, up_to_date.stderr
    assert "Awesome, you're up-to-date! Enjoy!" in up_to_date.stdout


def test_2_plan_with_the_new_kubeadm(env: Env) -> None:
    out = env.cp.kubeadm("upgrade", "plan", version=NEW)
    assert out.returncode == 0, out.stderr
    assert f"[upgrade/versions] Cluster version: {OLD}" in out.stdout
    assert f"[upgrade/versions] kubeadm version: {NEW}" in out.stdout
    assert f"[upgrade/versions] Target version: {NEW}" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["kubelet", "cp1", OLD, NEW] in rows and ["kubelet", "w1", OLD, NEW] in rows
    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert [c, "cp1", OLD, NEW] in rows
    assert ["kube-proxy", OLD.lstrip("v"), NEW] in rows
    assert (
        "You can now apply the upgrade by executing the following command:\n\n"
        f"\tkubeadm upgrade apply {NEW}\n" in out.stdout
    )


@pytest.mark.parametrize(
    ("kubeadm_version", "target", "message"),
    [
        (NEW, "v1.32.0", 'Specified version to upgrade to "v1.32.0" is lower than the cluster version "v1.32.5". '
         "Downgrades are not supported yet"),
        (NEW, "v1.32.0", f"Kubeadm version {NEW} can only be used to upgrade to Kubernetes version 1.33"),
        (NEW, "v1.34.0", 'Specified version to upgrade to "v1.34.0" is higher than the kubeadm version "v1.33.1". '
         "Upgrade kubeadm first using the tool you used to install kubeadm"),
        (OLD, NEW, f'Specified version to upgrade to "{NEW}" is higher than the kubeadm version "{OLD}"'),
        (OLD, "v1.31.9", 'Specified version to upgrade to "v1.31.9" is lower than the cluster version'),
    ],
)
def test_3_bad_targets_refused_before_any_change(env: Env, kubeadm_version: str, target: str, message: str) -> None:
    out = env.cp.kubeadm("upgrade", "apply", target, "--yes", version=kubeadm_version)
    assert out.returncode == 1
    assert "error execution phase preflight: [upgrade/version] FATAL: the version argument is invalid" in out.stderr
    assert message in out.stderr, out.stderr
    assert image_tag(env.cp, "kube-apiserver") == OLD
    assert server_version(env) == OLD
    assert cluster_config_version(env) == OLD


def test_3_a_minor_skipped_is_refused(env: Env) -> None:
    out = env.cp.kubeadm("upgrade", "apply", "v1.34.0", "--yes", version="v1.34.0")
    assert out.returncode == 1
    assert (
        'Specified version to upgrade to "v1.34.0" is too high; kubeadm can upgrade only 1 minor version at a time'
        in out.stderr
    ), out.stderr
    assert image_tag(env.cp, "kube-apiserver") == OLD


def node_ready(e: Env, name: str) -> bool:
    got = e.kubectl("get", "node", name, "-o", "json", check=False)
    conds = json.loads(got.stdout).get("status", {}).get("conditions", []) if got.returncode == 0 else []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_3_a_control_plane_not_ready_is_refused(env: Env) -> None:
    network(env.cp, False)
    try:
        wait(lambda: not node_ready(env, "cp1"), 30)
        out = env.cp.kubeadm("upgrade", "apply", NEW, "--yes", version=NEW)
        assert out.returncode == 1
        assert "error execution phase preflight: [upgrade/health] FATAL: [preflight] Some fatal errors occurred:" in (
            out.stderr
        )
        assert (
            "[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [cp1]" in out.stderr
        ), out.stderr
        assert image_tag(env.cp, "kube-apiserver") == OLD
        plan = env.cp.kubeadm("upgrade", "plan", version=NEW)
        assert plan.returncode == 1 and "[ERROR ControlPlaneNodesReady]" in plan.stderr
        ignored = env.cp.kubeadm(
            "upgrade", "plan", "--ignore-preflight-errors=ControlPlaneNodesReady", version=NEW
        )
        assert ignored.returncode == 0, ignored.stderr
        assert "[WARNING ControlPlaneNodesReady]: there are NotReady control-planes" in ignored.stderr
    finally:
        network(env.cp, True)
    wait(lambda: node_ready(env, "cp1"), 30)


def test_4_apply_asks_first(env: Env) -> None:
    out = env.cp.kubeadm("upgrade", "apply", NEW, version=NEW, stdin="n\n")
    assert out.returncode == 1
    assert "[upgrade] Are you sure you want to proceed? [y/N]: " in out.stdout
    assert "won't proceed; the user didn't answer (Y|y) in order to continue" in out.stderr
    assert image_tag(env.cp, "kube-apiserver") == OLD


def test_5_a_fault_in_the_control_plane_phase_changes_nothing(env: Env) -> None:
    marker = fault(env.cp, "control-plane")
    out = env.cp.kubeadm("upgrade", "apply", NEW, "--yes", version=NEW)
    assert out.returncode == 1
    assert "error execution phase control-plane: fault injected by marker: phase control-plane failed" in out.stderr
    assert not marker.exists()
    assert image_tag(env.cp, "kube-apiserver") == OLD
    assert server_version(env) == OLD


def test_6_a_fault_after_the_control_plane_leaves_it_half_applied_and_a_rerun_finishes(env: Env) -> None:
    fault(env.cp, "upload-config")
    out = env.cp.kubeadm("upgrade", "apply", NEW, "--yes", version=NEW)
    assert out.returncode == 1
    assert "error execution phase upload-config/kubeadm: fault injected by marker" in out.stderr, out.stderr
    assert '[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!' in out.stdout
    # The kubelet restarted the API server of the rewritten manifest: it reports the new version.
    assert server_version(env) == NEW
    assert image_tag(env.cp, "kube-scheduler") == NEW
    assert cluster_config_version(env) == OLD
    backups = list((env.cp.root / "etc/kubernetes/tmp").glob("kubeadm-backup-manifests-*/kube-apiserver.yaml"))
    assert backups and f"kube-apiserver:{OLD}" in backups[0].read_text()
    again = env.cp.kubeadm("upgrade", "apply", NEW, "--yes", version=NEW)
    assert again.returncode == 0, again.stderr
    assert f"[upgrade/versions] Cluster version: {NEW}" in again.stdout
    assert "Current and new manifests of kube-apiserver are equal, skipping upgrade" in again.stdout
    assert f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{NEW}".' in again.stdout
    assert cluster_config_version(env) == NEW
    ds = json.loads(env.kubectl("get", "ds", "-n", "kube-system", "kube-proxy", "-o", "json").stdout)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f"/kube-proxy:{NEW}")
    # The kubelets are not upgraded by kubeadm.
    assert kubelet_versions(env) == {"cp1": OLD, "w1": OLD}


def test_7_upgrade_node_on_a_worker_then_its_kubelet(env: Env) -> None:
    w1 = env.w1
    out = w1.kubeadm("upgrade", "node", version=NEW)
    assert out.returncode == 0, out.stderr
    assert "[upgrade/control-plane] Skipping phase. Not a control plane node." in out.stdout
    assert "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!" in out.stdout
    assert "[upgrade] The upgrade for this node was successfully completed!" in out.stdout
    assert list((w1.root / "etc/kubernetes/tmp").glob("kubeadm-kubelet-config-*/config.yaml"))
    assert "staticPodPath: /etc/kubernetes/manifests" in (w1.root / "var/lib/kubelet/config.yaml").read_text()
    assert not (w1.root / "etc/kubernetes/manifests/kube-apiserver.yaml").exists()
    # The package upgrade: the restarted kubelet reports its new version.
    w1.version = NEW
    w1.restart_kubelet()
    wait(lambda: kubelet_versions(env)["w1"] == NEW, 60)


def test_8_upgrade_node_on_a_control_plane_rewrites_what_is_behind(env: Env) -> None:
    cp = env.cp
    sched = cp.root / "etc/kubernetes/manifests/kube-scheduler.yaml"
    sched.write_text(sched.read_text().replace(f"kube-scheduler:{NEW}", f"kube-scheduler:{OLD}"))
    marker = fault(cp, "kubelet-config")
    out = cp.kubeadm("upgrade", "node", version=NEW)
    assert out.returncode == 1
    assert "error execution phase kubelet-config: fault injected by marker" in out.stderr
    assert not marker.exists()
    assert image_tag(cp, "kube-scheduler") == NEW  # the control-plane phase ran before the fault
    out = cp.kubeadm("upgrade", "node", version=NEW)
    assert out.returncode == 0, out.stderr
    assert f'Upgrading your Static Pod-hosted control plane instance to version "{NEW}"' in out.stdout
    assert "Current and new manifests of kube-scheduler are equal, skipping upgrade" in out.stdout
    cp.version = NEW
    cp.restart_kubelet()
    wait(lambda: kubelet_versions(env) == {"cp1": NEW, "w1": NEW}, 60)
    wait(lambda: server_version(env) == NEW, 60)
    plan = cp.kubeadm("upgrade", "plan")
    assert plan.returncode == 0, plan.stderr
    assert "Awesome, you're up-to-date! Enjoy!" in plan.stdout
    # A second apply of the same version changes nothing.
    again = cp.kubeadm("upgrade", "apply", NEW, "--yes")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("are equal, skipping upgrade") == 3
