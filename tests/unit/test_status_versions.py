"""`kubeboot status`: each node's versions (the kubelet, and on a control plane its components from the kube-system
mirror pods) and the version skew, against the inventory's kube_version, on kubectl JSON as a kubeadm cluster
prints it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeboot.cli import main
from kubeboot.inventory.load import load
from kubeboot.status import remote, report
from kubeboot.status.compare import ClusterObjects, Drift, compare, objects_from_json
from tests.unit.test_discover_ssh import FakeSshd
from tests.unit.test_status import (
    FLANNEL_DS,
    KUBE_PROXY_DS,
    canned,
    flannel_config,
    kubeadm_config,
    node_json,
    node_list,
    script_output,
    write_inventory,
)

ETCD_133 = "3.5.21-0"  # the etcd kubeadm 1.33 deploys
ETCD_132 = "3.5.16-0"  # and kubeadm 1.32's
INVENTORY = "inventory/lab/hosts.yml"
UPGRADE = f"ansible-playbook -i {INVENTORY} playbooks/upgrade.yml"

HOSTS_YML = {"all": {
    "vars": {"ansible_user": "root", "kube_version": "1.33.1"},
    "children": {
        "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "10.213.17.11"},
                                         "cp2": {"ansible_host": "10.213.17.12"}}},
        "kube_node": {"hosts": {"worker1": {"ansible_host": "10.213.17.13"},
                                "worker2": {"ansible_host": "10.213.17.14"}}},
    },
}}


def mirror_pod(component: str, node: str, tag: str) -> dict[str, Any]:
    """A control plane's static pod as `kubectl get pods -n kube-system -o json` prints its mirror pod (kubeadm's
    labels, the kubelet's mirror annotations, owned by the node)."""
    image = f"registry.k8s.io/{component}:{tag}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "annotations": {"kubernetes.io/config.hash": f"{component}{node}hash",
                            "kubernetes.io/config.mirror": f"{component}{node}hash",
                            "kubernetes.io/config.seen": "2026-11-23T14:02:05.118374016Z",
                            "kubernetes.io/config.source": "file"},
            "creationTimestamp": "2026-11-23T14:02:40Z",
            "labels": {"component": component, "tier": "control-plane"},
            "name": f"{component}-{node}", "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "v1", "controller": True, "kind": "Node", "name": node,
                                 "uid": f"5f0e8c2a-{node}"}],
        },
        "spec": {
            "containers": [{"command": [component], "image": image, "imagePullPolicy": "IfNotPresent",
                            "name": component}],
            "hostNetwork": True, "nodeName": node, "priorityClassName": "system-node-critical",
        },
        "status": {"containerStatuses": [{"image": image, "name": component, "ready": True,
                                          "started": True}],
                   "phase": "Running"},
    }


def control_plane_pods(tags: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The kube-system pods labelled tier=control-plane: node -> (Kubernetes version, etcd version)."""
    pods = []
    for node, (kube, etcd) in tags.items():
        pods += [mirror_pod(c, node, kube) for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
        pods.append(mirror_pod("etcd", node, etcd))
    return node_list(*pods)


def cluster_nodes(kubelets: dict[str, str]) -> list[dict[str, Any]]:
    return [node_json(name, index=i, control_plane=name.startswith("cp"), version=version)
            for i, (name, version) in enumerate(kubelets.items(), start=1)]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(yaml.safe_dump(HOSTS_YML))
    return load([str(path)])


def objects(kubelets: dict[str, str], pods: dict[str, Any] | None, **kwargs: Any) -> ClusterObjects:
    return objects_from_json(node_list(*cluster_nodes(kubelets)), daemonsets=node_list(FLANNEL_DS, KUBE_PROXY_DS),
                             kubeadm_config=kubeadm_config(), flannel_config=flannel_config(),
                             control_plane_pods=pods, **kwargs)


def version_drift(drift: list[Drift]) -> list[tuple[str, str, str | None, str | None]]:
    return [(d.node, d.key, d.expected, d.actual) for d in drift if d.kind == "version"]


def test_a_cluster_at_one_version_shows_every_component_and_has_no_drift(inventory: Any) -> None:
    pods = control_plane_pods({"cp1": ("v1.33.1", ETCD_133), "cp2": ("v1.33.1", ETCD_133)})
    status = compare(inventory, objects(dict.fromkeys(("cp1", "cp2", "worker1", "worker2"), "v1.33.1"), pods),
                     "cp1", [INVENTORY])
    assert status.all_drift == []
    assert report.exit_code(status) == 0
    cp1, cp2, worker1, _ = status.nodes
    assert cp1.components == {"kube-apiserver": "v1.33.1", "kube-controller-manager": "v1.33.1",
                              "kube-scheduler": "v1.33.1", "etcd": ETCD_133}
    assert cp2.components == cp1.components and worker1.components == {}
    assert status.components_error is None
    text = report.table(status)
    assert ("Control-plane components (kube-system mirror pods; kube_version v1.33.1):\n"
            "  NODE  APISERVER  CONTROLLER-MANAGER  SCHEDULER  ETCD\n"
            "  cp1   v1.33.1    v1.33.1             v1.33.1    3.5.21-0\n"
            "  cp2   v1.33.1    v1.33.1             v1.33.1    3.5.21-0\n\n") in text
    assert "no drift" in text
    document = report.to_json(status)
    assert document["nodes"][1]["components"]["kube-scheduler"] == "v1.33.1"
    assert document["nodes"][2]["components"] == {}
    assert (document["kube_version"], document["components_error"], document["drift"]) == ("1.33.1", None, [])


def test_a_half_done_upgrade_says_which_control_plane_runs_what_and_to_run_upgrade_yml(inventory: Any) -> None:
    # upgrade.yml stopped after cp1: cp1 and its kubelet at v1.33.1, cp2 and the workers still at v1.32.5.
    pods = control_plane_pods({"cp1": ("v1.33.1", ETCD_133), "cp2": ("v1.32.5", ETCD_132)})
    kubelets = {"cp1": "v1.33.1", "cp2": "v1.32.5", "worker1": "v1.32.5", "worker2": "v1.32.5"}
    status = compare(inventory, objects(kubelets, pods), "cp1", [INVENTORY])
    assert version_drift(status.all_drift) == [
        ("cp1", "kubelet skew", "not newer than v1.32.5 (the oldest kube-apiserver, on cp2)", "v1.33.1"),
        ("cp2", "kubelet", "v1.33.1", "v1.32.5"),
        ("cp2", "kube-apiserver", "v1.33.1", "v1.32.5"),
        ("cp2", "kube-controller-manager", "v1.33.1", "v1.32.5"),
        ("cp2", "kube-scheduler", "v1.33.1", "v1.32.5"),
        ("worker1", "kubelet", "v1.33.1", "v1.32.5"),
        ("worker2", "kubelet", "v1.33.1", "v1.32.5"),
        ("cluster", "control-plane components", "v1.33.1 on every control plane", "cp1 v1.33.1; cp2 v1.32.5"),
        ("cluster", "etcd", "one version on every control plane", f"cp1 {ETCD_133}; cp2 {ETCD_132}"),
    ]
    assert report.exit_code(status) == 3
    # Every version line says what to do: the upgrade playbook with the inventory status was given.
    assert all(f"`{UPGRADE}`" in d.line() for d in status.all_drift if d.kind == "version")
    lines = [d.line() for d in status.all_drift]
    assert (f'cluster: version control-plane components different: expected "v1.33.1 on every control plane", '
            f'actual "cp1 v1.33.1; cp2 v1.32.5": a half-done upgrade: run `{UPGRADE}` (kube_version 1.33.1); it '
            "continues where it stopped") in lines
    assert (f'cp2: version kube-apiserver different: expected "v1.33.1", actual "v1.32.5": run `{UPGRADE}` to '
            "bring it to kube_version 1.33.1") in lines
    assert lines[0] == (f'cp1: version kubelet skew different: expected "not newer than v1.32.5 (the oldest '
                        f'kube-apiserver, on cp2)", actual "v1.33.1": a half-done upgrade, the control planes go '
                        f"first: run `{UPGRADE}` (kube_version 1.33.1) to finish it")
    text = report.table(status)
    assert "  cp1   v1.33.1    v1.33.1             v1.33.1    3.5.21-0\n" in text
    assert "  cp2   v1.32.5    v1.32.5             v1.32.5    3.5.16-0\n" in text
    assert "DRIFT (9):" in text
    document = report.to_json(status)
    assert document["nodes"][1]["components"]["kube-apiserver"] == "v1.32.5"
    assert document["drift"][-2]["fix"].startswith("a half-done upgrade: run")
    assert document["drift"][-2]["actual"] == "cp1 v1.33.1; cp2 v1.32.5"


def test_a_control_plane_caught_between_its_components_names_each(inventory: Any) -> None:
    # kubeadm upgrade apply stopped on cp1 after the API server: the others still at v1.32.5.
    pods = control_plane_pods({"cp1": ("v1.32.5", ETCD_132), "cp2": ("v1.32.5", ETCD_132)})
    pods["items"][0]["spec"]["containers"][0]["image"] = "registry.k8s.io/kube-apiserver:v1.33.1"
    status = compare(inventory, objects(dict.fromkeys(("cp1", "cp2", "worker1", "worker2"), "v1.32.5"), pods),
                     "cp1", [INVENTORY])
    mixed = [d for d in status.drift if d.key == "control-plane components"]
    assert [d.actual for d in mixed] == ["cp1 kube-apiserver v1.33.1, kube-controller-manager v1.32.5, "
                                         "kube-scheduler v1.32.5; cp2 v1.32.5"]
    assert not [d for d in status.drift if d.key == "etcd"]


def test_a_kubelet_newer_than_an_api_server_is_drift_even_at_kube_version(inventory: Any, tmp_path: Path) -> None:
    # worker1's kubelet was installed at v1.33.1 by hand while the control planes run v1.32.5.
    pods = control_plane_pods({"cp1": ("v1.32.5", ETCD_132), "cp2": ("v1.32.5", ETCD_132)})
    kubelets = {"cp1": "v1.32.5", "cp2": "v1.32.5", "worker1": "v1.33.1", "worker2": "v1.32.5"}
    status = compare(inventory, objects(kubelets, pods), "cp1", [INVENTORY])
    drift = status.nodes[2].drift
    assert [(d.key, d.expected, d.actual) for d in drift] == [
        ("kubelet skew", "not newer than v1.32.5 (the oldest kube-apiserver, on cp1)", "v1.33.1")]
    assert drift[0].fix == (f"no API server runs 1.33 yet and `{UPGRADE}` refuses this skew: reinstall the kubelet "
                            f"on worker1 at v1.32.5, then run it (kube_version 1.33.1)")
    # The control planes are behind kube_version: each component says so, the upgrade is the fix.
    assert ("cp1", "kube-apiserver", "v1.33.1", "v1.32.5") in version_drift(status.all_drift)
    assert not [d for d in status.drift if d.kind == "version"]  # one version across the control planes
    # The same kubelet against an inventory still at 1.32.5: newer than kube_version too, and not the cluster's
    # fault (no API server is that new).
    older = copy.deepcopy(HOSTS_YML)
    older["all"]["vars"]["kube_version"] = "1.32.5"
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(older))
    status = compare(load([str(path)]), objects(kubelets, pods), "cp1", [INVENTORY])
    assert [(d.key, d.fix) for d in status.nodes[2].drift] == [
        ("kubelet", "the kubelet is newer than kube_version and than every API server: reinstall it on worker1 "
                    "at v1.32.5 (downgrades are not supported)"),
        ("kubelet skew", f"no API server runs 1.33 yet and `{UPGRADE}` refuses this skew: reinstall the kubelet "
                         "on worker1 at v1.32.5, then run it (kube_version 1.32.5)")]
    assert [d for d in status.all_drift if d.node != "worker1"] == []


def test_a_kubelet_four_minors_older_than_the_api_servers_is_drift_three_is_not(inventory: Any) -> None:
    pods = control_plane_pods({"cp1": ("v1.33.1", ETCD_133), "cp2": ("v1.33.1", ETCD_133)})
    kubelets = {"cp1": "v1.33.1", "cp2": "v1.33.2", "worker1": "v1.29.15", "worker2": "v1.30.14"}
    status = compare(inventory, objects(kubelets, pods), "cp1", [INVENTORY])
    assert version_drift(status.all_drift) == [
        ("cp2", "kubelet", "v1.33.1", "v1.33.2"),  # a patch newer than the API servers: no skew, only the version
        ("worker1", "kubelet", "v1.33.1", "v1.29.15"),
        ("worker1", "kubelet skew", "1.30 or newer (3 minors at most below v1.33.1, the oldest kube-apiserver, "
                                    "on cp1)", "v1.29.15"),
        ("worker2", "kubelet", "v1.33.1", "v1.30.14"),  # 3 minors older: supported, only behind kube_version
    ]
    assert status.nodes[1].drift[0].fix == ("the kubelet is newer than kube_version and than every API server: "
                                            "reinstall it on cp2 at v1.33.1 (downgrades are not supported)")
    skew = status.nodes[2].drift[1]
    assert skew.fix == (f"a kubelet is supported up to 3 minors older than the API server: run `{UPGRADE}` "
                        "(kube_version 1.33.1) to upgrade the kubelet on worker1")
    assert report.to_json(status)["nodes"][2]["drift"][1]["fix"] == skew.fix


def test_components_newer_than_kube_version_point_at_the_inventory(inventory: Any) -> None:
    pods = control_plane_pods({"cp1": ("v1.34.0", "3.6.4-0"), "cp2": ("v1.34.0", "3.6.4-0")})
    status = compare(inventory, objects(dict.fromkeys(("cp1", "cp2", "worker1", "worker2"), "v1.34.0"), pods),
                     "cp1", [INVENTORY])
    fixes = {d.fix for d in status.all_drift}
    assert fixes == {"the cluster is newer than the inventory: set kube_version to 1.34.0 in the inventory "
                     "(downgrades are not supported)"}
    assert len(status.all_drift) == 4 + 2 * 3  # each kubelet, each control plane's three components


def test_control_plane_pods_not_read_leave_the_rest_alone(inventory: Any) -> None:
    kubelets = dict.fromkeys(("cp1", "cp2", "worker1", "worker2"), "v1.33.1")
    status = compare(inventory, objects(kubelets, None, control_plane_pods_error="`kubectl get ...` failed: "
                                        "Forbidden"), "cp1", [INVENTORY])
    assert status.all_drift == [] and status.components_error == "`kubectl get ...` failed: Forbidden"
    assert all(n.components == {} for n in status.nodes)
    text = report.table(status)
    assert "Control-plane components (kube-system mirror pods; kube_version v1.33.1):\n  not read: `kubectl get " \
           "...` failed: Forbidden\n" in text
    assert report.to_json(status)["components_error"] == "`kubectl get ...` failed: Forbidden"
    none = compare(inventory, objects(kubelets, node_list()), "cp1", [INVENTORY])
    assert none.components_error is None
    assert [n.components for n in none.nodes] == [{}, {}, {}, {}]
    assert "  NODE  APISERVER" in report.table(none) and "  cp2   -" in report.table(none)


CONN = remote.connection("cp1", {"ansible_host": "10.213.17.11", "ansible_user": "root"}, known_hosts=None,
                         accept_new=False, timeout=5)


def with_pods(output: str, stdout: str, rc: int = 0, err: str = "") -> str:
    """The status script's output with the control-plane-pods query's sections added before the end."""
    section = script_output({"control-plane-pods": (stdout, rc, err)})
    body = section[section.index("\n@@kubeboot control-plane-pods@@"):section.index("\n@@kubeboot end@@")]
    end = output.index("\n@@kubeboot end@@")
    return output[:end] + body + output[end:]


def test_the_script_reads_the_mirror_pods_and_a_failure_there_is_not_fatal() -> None:
    assert ("q control-plane-pods --namespace kube-system pods --selector tier=control-plane"
            in remote.STATUS_SCRIPT.splitlines())
    nodes = cluster_nodes({"cp1": "v1.33.1"})
    pods = control_plane_pods({"cp1": ("v1.33.1", ETCD_133)})
    found = remote.parse_output(CONN, with_pods(canned(nodes), json.dumps(pods, indent=4)))
    assert found.control_plane_pods is not None
    assert [p["metadata"]["name"] for p in found.control_plane_pods] == [
        "kube-apiserver-cp1", "kube-controller-manager-cp1", "kube-scheduler-cp1", "etcd-cp1"]
    forbidden = ('Error from server (Forbidden): pods is forbidden: User "kubernetes-admin" cannot list resource '
                 '"pods" in API group "" in the namespace "kube-system"')
    failed = remote.parse_output(CONN, with_pods(canned(nodes), "", 1, forbidden))
    assert failed.control_plane_pods is None and [n["metadata"]["name"] for n in failed.nodes] == ["cp1"]
    assert failed.control_plane_pods_error == (
        "`kubectl get --namespace kube-system pods --selector tier=control-plane` failed: " + forbidden)
    assert failed.flannel_config is not None
    missing = remote.parse_output(CONN, canned(nodes))  # an older script's output: no such section
    assert missing.control_plane_pods is None and "was not run" in missing.control_plane_pods_error


@pytest.fixture
def sshd() -> Any:
    server = FakeSshd()
    server.start()
    yield server
    server.stop()


def test_the_command_shows_the_components_and_names_the_inventory_in_the_fix(
        tmp_path: Path, sshd: FakeSshd, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.test_status import converged_nodes

    hosts = write_inventory(tmp_path, sshd)  # test_status's inventory: cp1 and two workers at kube_version 1.33.5
    pods = control_plane_pods({"cp1": ("v1.33.5", ETCD_133)})
    sshd.output = with_pods(canned(converged_nodes()), json.dumps(pods))
    assert main(["status", "-i", str(hosts), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["nodes"][0]["components"]["etcd"] == ETCD_133 and document["components_error"] is None

    pods["items"][2]["spec"]["containers"][0]["image"] = "registry.k8s.io/kube-scheduler:v1.33.4"
    sshd.output = with_pods(canned(converged_nodes()), json.dumps(pods))
    assert main(["status", "-i", str(hosts)]) == 3
    out = capsys.readouterr().out
    assert "  cp1   v1.33.5    v1.33.5             v1.33.4    3.5.21-0\n" in out
    assert (f'  cp1: version kube-scheduler different: expected "v1.33.5", actual "v1.33.4": run `ansible-playbook '
            f'-i {hosts} playbooks/upgrade.yml` to bring it to kube_version 1.33.5\n') in out
