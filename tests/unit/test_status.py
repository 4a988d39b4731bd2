"""`kubeboot status`: the comparison of kubectl's JSON with the inventory, the output parsing, the connection the
inventory gives, and the whole command against an in-process SSH server (no root, no nodes)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeboot.cli import main
from kubeboot.inventory.load import load
from kubeboot.node_meta import RECORD_ANNOTATIONS, RECORD_LABELS, RECORD_TAINTS
from kubeboot.status import remote, report
from kubeboot.status.compare import ClusterObjects, Drift, compare, objects_from_json
from tests.unit.test_discover_ssh import FakeSshd, _key_file, _known, _line
from tests.unit.test_status_certs import certificate_sections, check_expiration, healthy, healthy_sections, kubelet_pem

REPO = Path(__file__).resolve().parents[2]


def node_json(name: str, *, index: int, labels: dict[str, str] | None = None,
              taints: list[dict[str, str]] | None = None, annotations: dict[str, str] | None = None,
              control_plane: bool = False, version: str = "v1.33.5", ready: str = "True",
              pod_cidr: str | None = None) -> dict[str, Any]:
    """A Node as `kubectl get nodes -o json` prints it for a kubeadm 1.33 node (managedFields left out, as kubectl
    does by default)."""
    cidr = pod_cidr or f"10.244.{index}.0/24"
    all_labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if control_plane:
        all_labels |= {"node-role.kubernetes.io/control-plane": "",
                       "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    all_labels |= labels or {}
    all_annotations = {"flannel.alpha.coreos.com/backend-data": f'{{"VNI":1,"VtepMAC":"6a:1c:1f:0e:88:0{index}"}}',
                       "flannel.alpha.coreos.com/backend-type": "vxlan",
                       "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                       "flannel.alpha.coreos.com/public-ip": f"10.213.17.{10 + index}",
                       "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                       "node.alpha.kubernetes.io/ttl": "0",
                       "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                       **(annotations or {})}
    node_taints = list(taints or [])
    if control_plane:
        node_taints.append({"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"})
    spec: dict[str, Any] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if node_taints:
        spec["taints"] = node_taints
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"annotations": all_annotations, "creationTimestamp": "2026-11-23T14:02:11Z",
                     "labels": all_labels, "name": name, "resourceVersion": str(1000 + index),
                     "uid": f"5f0e8c2a-6b1d-4c3e-9a7f-00000000000{index}"},
        "spec": spec,
        "status": {
            "addresses": [{"address": f"10.213.17.{10 + index}", "type": "InternalIP"},
                          {"address": name, "type": "Hostname"}],
            "conditions": [
                {"lastHeartbeatTime": "2026-11-23T15:40:02Z", "lastTransitionTime": "2026-11-23T14:02:11Z",
                 "message": "kubelet has sufficient memory available", "reason": "KubeletHasSufficientMemory",
                 "status": "False", "type": "MemoryPressure"},
                {"lastHeartbeatTime": "2026-11-23T15:40:02Z", "lastTransitionTime": "2026-11-23T14:03:40Z",
                 "message": "kubelet is posting ready status", "reason": "KubeletReady", "status": ready,
                 "type": "Ready"},
            ],
            "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.6.20",
                         "kernelVersion": "6.1.0-27-amd64", "kubeProxyVersion": version, "kubeletVersion": version,
                         "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)"},
        },
    }


def node_list(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": list(nodes), "kind": "List", "metadata": {"resourceVersion": ""}}


FLANNEL_DS = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"labels": {"app": "flannel", "k8s-app": "flannel", "tier": "node"}, "name": "kube-flannel-ds",
                 "namespace": "kube-flannel"},
    "spec": {"selector": {"matchLabels": {"app": "flannel"}}},
    "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 3,
               "numberMisscheduled": 0, "numberReady": 3, "observedGeneration": 1, "updatedNumberScheduled": 3},
}
KUBE_PROXY_DS = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"labels": {"k8s-app": "kube-proxy"}, "name": "kube-proxy", "namespace": "kube-system"},
    "status": {"desiredNumberScheduled": 3, "numberReady": 3},
}
CALICO_DS = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "calico-node", "namespace": "calico-system"},
    "status": {"desiredNumberScheduled": 3, "numberReady": 2},
}


def kubeadm_config(pod_subnet: str = "10.244.0.0/16") -> dict[str, Any]:
    cluster_configuration = {
        "apiServer": {}, "apiVersion": "kubeadm.k8s.io/v1beta4", "caCertificateValidityPeriod": "87600h0m0s",
        "certificateValidityPeriod": "8760h0m0s", "certificatesDir": "/etc/kubernetes/pki",
        "clusterName": "kubernetes", "controlPlaneEndpoint": "10.213.17.11:6443",
        "controllerManager": {"extraArgs": [{"name": "node-cidr-mask-size", "value": "24"}]},
        "dns": {}, "encryptionAlgorithm": "RSA-2048", "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
        "imageRepository": "registry.k8s.io", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.33.5",
        "networking": {"dnsDomain": "cluster.local", "podSubnet": pod_subnet, "serviceSubnet": "10.96.0.0/12"},
        "proxy": {}, "scheduler": {},
    }
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"ClusterConfiguration": yaml.safe_dump(cluster_configuration)},
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"}}


def flannel_config(network: str = "10.244.0.0/16") -> dict[str, Any]:
    net_conf = json.dumps({"Network": network, "EnableNFTables": False, "Backend": {"Type": "vxlan"}}, indent=2)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"cni-conf.json": '{"name": "cbr0", "cniVersion": "0.3.1"}', "net-conf.json": net_conf},
            "metadata": {"labels": {"app": "flannel"}, "name": "kube-flannel-cfg", "namespace": "kube-flannel"}}


def records(labels: str = "", taints: str = "", annotations: str = "") -> dict[str, str]:
    found = {RECORD_LABELS: labels, RECORD_TAINTS: taints, RECORD_ANNOTATIONS: annotations}
    return {k: v for k, v in found.items() if v}


HOSTS_YML = {"all": {
    "vars": {"ansible_user": "root", "kube_version": "1.33.5"},
    "children": {
        "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "10.213.17.11",
                                                 "node_labels": {"tenancy-tenant3": "master"}}}},
        "kube_node": {"hosts": {
            "worker1": {"ansible_host": "10.213.17.12",
                        "node_labels": {"disktype": "ssd", "node-role.kubernetes.io/storage": ""},
                        "node_taints": ["dedicated=master:NoSchedule", "example.com/gpu:PreferNoSchedule"]},
            "worker2": {"ansible_host": "10.213.17.13", "msms_fixed": True, "msms_public_address": "203.0.113.7"},
        }},
        "msms": {"hosts": {"worker2": None}, "vars": {"node_group_labels": {"tier": "media"}}},
    },
}}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(yaml.safe_dump(HOSTS_YML))
    return load([str(path)])


def converged_nodes() -> list[dict[str, Any]]:
    """The nodes after site.yml converged the inventory above (what the sandbox test sees)."""
    return [
        node_json("cp1", index=1, control_plane=True, labels={"tenancy-tenant3": "master"},
                  annotations=records(labels="tenancy-tenant3")),
        node_json("worker1", index=2, labels={"disktype": "ssd", "node-role.kubernetes.io/storage": ""},
                  taints=[{"effect": "NoSchedule", "key": "dedicated", "value": "master"},
                          {"effect": "PreferNoSchedule", "key": "example.com/gpu"}],
                  annotations=records(labels="disktype,node-role.kubernetes.io/storage",
                                      taints="dedicated:NoSchedule,example.com/gpu:PreferNoSchedule")),
        node_json("worker2", index=3,
                  labels={"app": "msms", "kubeboot.io/msms-fixed": "true", "tier": "media"},
                  taints=[{"effect": "NoExecute", "key": "app", "value": "msms"}],
                  annotations={"kubeboot.io/public-address": "203.0.113.7",
                               **records(labels="app,kubeboot.io/msms-fixed,tier", taints="app:NoExecute",
                                         annotations="kubeboot.io/public-address")}),
    ]


def objects(nodes: list[dict[str, Any]], **kwargs: Any) -> ClusterObjects:
    documents = {"daemonsets": node_list(FLANNEL_DS, KUBE_PROXY_DS), "kubeadm_config": kubeadm_config(),
                 "flannel_config": flannel_config(), **kwargs}
    return objects_from_json(node_list(*nodes), **documents)


def by_node(drift: list[Drift], name: str) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(d.kind, d.key, d.state, d.expected, d.actual) for d in drift if d.node == name]


def test_a_converged_cluster_has_no_drift(inventory: Any) -> None:
    status = compare(inventory, objects(converged_nodes()), "cp1")
    assert status.all_drift == []
    assert report.exit_code(status) == 0
    assert [n.name for n in status.nodes] == ["cp1", "worker1", "worker2"]
    cp1, worker1, worker2 = status.nodes
    assert (cp1.roles, cp1.kubelet_version, cp1.ready, cp1.pod_cidrs) == (
        ["control-plane"], "v1.33.5", "True", ["10.244.1.0/24"])
    assert worker1.roles == ["storage"]
    assert [(i.kind, i.key, i.expected, i.state) for i in worker2.meta] == [
        ("label", "app", "msms", "ok"), ("label", "kubeboot.io/msms-fixed", "true", "ok"),
        ("label", "tier", "media", "ok"), ("annotation", "kubeboot.io/public-address", "203.0.113.7", "ok"),
        ("taint", "app:NoExecute", "app=msms:NoExecute", "ok")]
    # kubeadm's control-plane taint is not kubeboot's: not listed, not drift.
    assert [i.key for i in cp1.meta] == ["tenancy-tenant3"]
    assert status.cni.found == ["flannel"]
    assert status.cni.sources == ["DaemonSet kube-flannel/kube-flannel-ds 3/3 ready"]
    assert (status.pod_ranges.cluster, status.pod_ranges.cni) == ("10.244.0.0/16",
                                                                  {"flannel Network": ["10.244.0.0/16"]})
    assert status.nfs is None
    text = report.table(status)
    assert "no drift" in text and "NFS exports (declared in the inventory):\n  not declared" in text


def test_a_label_changed_by_hand_and_a_removed_taint_are_drift(inventory: Any) -> None:
    nodes = converged_nodes()
    worker1 = nodes[1]
    worker1["metadata"]["labels"]["disktype"] = "hdd"  # kubectl label --overwrite node worker1 disktype=hdd
    worker1["spec"]["taints"] = [t for t in worker1["spec"]["taints"] if t["key"] != "dedicated"]
    worker1["metadata"]["labels"]["owner"] = "ops"  # a hand label kubeboot does not manage: not drift
    status = compare(inventory, objects(nodes), "cp1")
    assert by_node(status.all_drift, "worker1") == [
        ("label", "disktype", "different", "ssd", "hdd"),
        ("taint", "dedicated:NoSchedule", "missing", "dedicated=master:NoSchedule", None),
    ]
    assert report.exit_code(status) == report.EXIT_DRIFT == 3
    lines = [d.line() for d in status.all_drift]
    assert lines == ['worker1: label disktype different: expected "ssd", actual "hdd"',
                     'worker1: taint dedicated:NoSchedule missing: expected "dedicated=master:NoSchedule", '
                     'actual (none)']
    document = report.to_json(status)
    assert document["exit_code"] == 3
    assert document["drift"][0] == {"node": "worker1", "kind": "label", "key": "disktype", "state": "different",
                                    "expected": "ssd", "actual": "hdd"}
    assert document["nodes"][1]["labels"]["owner"] == "ops"
    table = report.table(status)
    assert "worker1  label       disktype" in table and "DIFFERENT" in table
    assert "worker1  1 drift" not in table and "2 drift" in table


def test_managed_labels_and_taints_the_inventory_dropped_are_extra(inventory: Any) -> None:
    nodes = converged_nodes()
    cp1 = nodes[0]
    # An earlier run managed `zone` and a taint; the inventory no longer lists them.
    cp1["metadata"]["labels"]["zone"] = "a"
    cp1["spec"]["taints"].insert(0, {"effect": "NoExecute", "key": "maintenance"})
    cp1["metadata"]["annotations"] |= records(labels="tenancy-tenant3,zone", taints="maintenance:NoExecute")
    # A taint whose value differs.
    nodes[2]["spec"]["taints"] = [{"effect": "NoExecute", "key": "app", "value": "other"}]
    status = compare(inventory, objects(nodes), "cp1")
    assert by_node(status.all_drift, "cp1") == [
        ("label", "zone", "extra", None, "a"),
        ("taint", "maintenance:NoExecute", "extra", None, "maintenance:NoExecute"),
    ]
    assert by_node(status.all_drift, "worker2") == [
        ("taint", "app:NoExecute", "different", "app=msms:NoExecute", "app=other:NoExecute")]


def test_missing_and_unknown_nodes_roles_versions_and_pod_cidrs(inventory: Any) -> None:
    nodes = converged_nodes()
    stray = node_json("worker9", index=9, version="v1.32.9")
    nodes[1]["status"]["nodeInfo"]["kubeletVersion"] = "v1.33.4"
    nodes[1]["spec"]["podCIDR"] = "10.99.2.0/24"
    nodes[1]["spec"]["podCIDRs"] = ["10.99.2.0/24"]
    del nodes[0]["metadata"]["labels"]["node-role.kubernetes.io/control-plane"]
    status = compare(inventory, objects([nodes[0], nodes[1], stray]), "cp1")
    assert status.missing == ["worker2"] and status.extra == ["worker9"]
    assert by_node(status.all_drift, "worker2") == [("node", "worker2", "missing", "in the cluster", None)]
    assert by_node(status.all_drift, "worker9") == [("node", "worker9", "extra", None, "in the cluster")]
    assert by_node(status.all_drift, "cp1") == [("role", "control-plane", "missing", "control-plane", None)]
    assert by_node(status.all_drift, "worker1") == [
        ("version", "kubelet", "different", "v1.33.5", "v1.33.4"),
        ("pod-cidr", "podCIDR", "different", "inside 10.244.0.0/16", "10.99.2.0/24"),
    ]
    stray_status = status.nodes[-1]
    assert (stray_status.meta, stray_status.kubelet_version) == ([], "v1.32.9")
    table = report.table(status)
    assert "Inventory hosts missing from the cluster: worker2" in table
    assert "Cluster nodes not in the inventory: worker9" in table
    assert "worker2  -" in table and "not in the cluster" in table


def test_cni_and_pod_subnet_drift(inventory: Any) -> None:
    status = compare(inventory, objects(converged_nodes(), kubeadm_config=kubeadm_config("10.32.0.0/16"),
                                        flannel_config=flannel_config("10.32.0.0/16")), "cp1")
    assert by_node(status.all_drift, "cluster") == [
        ("pod-subnet", "kubeadm podSubnet", "different", "10.244.0.0/16", "10.32.0.0/16"),
        ("pod-subnet", "flannel Network", "different", "10.244.0.0/16", "10.32.0.0/16"),
    ]
    installation = {"apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
                    "spec": {"calicoNetwork": {"ipPools": [{"name": "default-ipv4-ippool", "cidr": "10.244.0.0/16",
                                                            "blockSize": 26}]}}}
    calico = compare(inventory, objects(converged_nodes(), daemonsets=node_list(CALICO_DS, KUBE_PROXY_DS),
                                        flannel_config=None, calico_installation=installation), "cp1")
    assert calico.cni.found == ["calico"]
    assert calico.cni.sources == ["DaemonSet calico-system/calico-node 2/3 ready",
                                  "Installation default (operator.tigera.io)"]
    assert calico.pod_ranges.cni == {"calico Installation ipPools": ["10.244.0.0/16"]}
    assert by_node(calico.all_drift, "cluster") == [("cni", "pod network", "different", "flannel", "calico")]
    pools = node_list({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                       "metadata": {"name": "default-ipv4-ippool"}, "spec": {"cidr": "10.245.0.0/16"}})
    pooled = compare(inventory, objects(converged_nodes(), daemonsets=node_list(CALICO_DS), flannel_config=None,
                                        calico_installation=installation, calico_pools=pools), "cp1")
    assert pooled.pod_ranges.cni == {"calico IPPool": ["10.245.0.0/16"]}
    assert ("pod-subnet", "calico IPPool", "different", "10.244.0.0/16", "10.245.0.0/16") in by_node(
        pooled.all_drift, "cluster")
    none = compare(inventory, objects(converged_nodes(), daemonsets=node_list(KUBE_PROXY_DS), flannel_config=None),
                   "cp1")
    assert by_node(none.all_drift, "cluster") == [("cni", "pod network", "missing", "flannel", None)]


def test_nfs_exports_the_inventory_declares_are_shown(tmp_path: Path) -> None:
    data = copy.deepcopy(HOSTS_YML)
    data["all"]["children"]["nfs_server"] = {"hosts": {"nfs1": {"ansible_host": "10.213.17.40", "nfs_exports": [
        {"path": "/srv/nfs/mongodb",
         "clients": [{"host": "10.213.17.0/24", "options": "rw,sync,no_subtree_check,no_root_squash"}]},
        {"path": "/srv/nfs/media", "clients": [{"host": "10.213.17.13", "options": "rw,sync,no_subtree_check"},
                                               {"host": "*.example.org", "options": "ro,sync,no_subtree_check"}]},
    ]}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    status = compare(load([str(path)]), objects(converged_nodes()), "cp1")
    assert [(e.server, e.path, e.clients) for e in status.nfs or []] == [
        ("nfs1", "/srv/nfs/mongodb", ["10.213.17.0/24(rw,sync,no_subtree_check,no_root_squash)"]),
        ("nfs1", "/srv/nfs/media", ["10.213.17.13(rw,sync,no_subtree_check)",
                                    "*.example.org(ro,sync,no_subtree_check)"]),
    ]
    assert "nfs1:/srv/nfs/mongodb 10.213.17.0/24(rw,sync,no_subtree_check,no_root_squash)" in report.table(status)
    assert report.to_json(status)["nfs_exports"][1]["path"] == "/srv/nfs/media"
    # nfs1 is not a cluster node: neither missing from the cluster nor drift.
    assert status.all_drift == [] and "nfs1" not in [n.name for n in status.nodes]


def test_the_sample_inventory_against_bare_nodes_names_every_declared_label_and_taint() -> None:
    sample = load([str(REPO / "inventory/sample/hosts.yml")])
    nodes = [node_json(name, index=i, control_plane=name == "cp1") for i, name in
             enumerate(("cp1", "worker1", "worker2", "msms1"), 1)]
    status = compare(sample, objects(nodes), "cp1")
    assert ("label", "disktype", "missing", "ssd", None) in by_node(status.all_drift, "worker2")
    assert ("taint", "app:NoExecute", "missing", "app=msms:NoExecute", None) in by_node(status.all_drift, "msms1")
    assert ("taint", "dedicated:NoSchedule", "missing", "dedicated=msms:NoSchedule", None) in by_node(
        status.all_drift, "msms1")
    assert ("annotation", "kubeboot.io/public-address", "missing", "192.0.2.31", None) in by_node(
        status.all_drift, "msms1")
    assert by_node(status.all_drift, "worker1") == []


def script_output(sections: dict[str, tuple[str, int, str]], preflight: str = "ok", certificates: str = "") -> str:
    """What STATUS_SCRIPT prints: each query's stdout, exit status and last stderr lines, then the certificates."""
    out = f"motd line\n\n@@kubeboot preflight@@\n{preflight}\n"
    for name, (stdout, rc, err) in sections.items():
        out += f"\n@@kubeboot {name}@@\n{stdout}\n@@kubeboot {name}.rc@@\n{rc}\n\n@@kubeboot {name}.err@@\n{err}\n"
    return out + certificates + "\n@@kubeboot end@@\n"


NOT_FOUND = 'Error from server (NotFound): configmaps "kube-flannel-cfg" not found'
NO_TYPE = 'error: the server doesn\'t have a resource type "installations"'


def canned(nodes: list[dict[str, Any]], certificates: str | None = None) -> str:
    """The status script's output; the certificates those of a control plane a year from expiry unless given."""
    if certificates is None:
        certificates = healthy_sections("cp1", True, dt.datetime.now(dt.UTC))
    return script_output({
        "nodes": (json.dumps(node_list(*nodes), indent=4), 0, ""),
        "daemonsets": (json.dumps(node_list(FLANNEL_DS, KUBE_PROXY_DS), indent=4), 0, ""),
        "kubeadm-config": (json.dumps(kubeadm_config(), indent=4), 0, ""),
        "flannel-config": (json.dumps(flannel_config(), indent=4), 0, ""),
        "flannel-config-old": ("", 1, NOT_FOUND),
        "calico-installation": ("", 1, NO_TYPE),
        "calico-pools": ("", 1, NO_TYPE.replace("installations", "ippools")),
    }, certificates=certificates)


CONN = remote.connection("cp1", {"ansible_host": "10.213.17.11", "ansible_user": "root"}, known_hosts=None,
                         accept_new=False, timeout=5)


def test_parse_output_reads_every_query_and_skips_the_optional_ones_that_failed() -> None:
    found = remote.parse_output(CONN, canned(converged_nodes()))
    assert [n["metadata"]["name"] for n in found.nodes] == ["cp1", "worker1", "worker2"]
    assert [d["metadata"]["name"] for d in found.daemonsets] == ["kube-flannel-ds", "kube-proxy"]
    assert found.flannel_config is not None and found.calico_installation is None and found.calico_pools == []
    assert set(remote.QUERIES[i][0] for i in range(len(remote.QUERIES))) <= set(
        line.split()[1] for line in remote.STATUS_SCRIPT.splitlines() if line.startswith("q "))


@pytest.mark.parametrize(("output", "expected"), [
    (script_output({}, "no-kubeconfig"), "/etc/kubernetes/admin.conf is missing; form the cluster first"),
    (script_output({}, "no-kubectl"), "kubectl is not installed there"),
    (script_output({}, "sudo-refused deploy"), "deploy is not root and `sudo -n` is refused"),
    (script_output({"nodes": ("", 1, "The connection to the server 10.213.17.11:6443 was refused - did you "
                                     "specify the right host or port?")}),
     "`kubectl get nodes` failed: The connection to the server 10.213.17.11:6443 was refused"),
    ("@@kubeboot preflight@@\nok\n", "the status script was cut short"),
])
def test_what_stops_the_status_is_one_line_naming_the_host(output: str, expected: str) -> None:
    with pytest.raises(remote.UnreachableError) as caught:
        remote.parse_output(CONN, output)
    message = str(caught.value)
    assert message.startswith("cannot read the cluster through cp1 (root@10.213.17.11:22): ")
    assert expected in message and "\n" not in message
    assert caught.value.exit_code == 4


def test_connection_honours_the_inventory_variables(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not read here")
    conn = remote.connection("cp1", {
        "ansible_host": "192.0.2.10", "ansible_port": "2222", "ansible_user": "deploy",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/var/lib/x/known_hosts -o StrictHostKeyChecking=yes",
    }, known_hosts=None, accept_new=False, timeout=7)
    assert (conn.target.host, conn.target.port, conn.ssh.user, conn.ssh.key_file) == ("192.0.2.10", 2222, "deploy",
                                                                                      key)
    assert conn.ssh.known_hosts == Path("/var/lib/x/known_hosts") and conn.ssh.timeout == 7
    assert conn.where == "cp1 (deploy@192.0.2.10:2222)"
    bare = remote.connection("cp1", {}, known_hosts=tmp_path / "kh", accept_new=True, timeout=5)
    assert (bare.target.host, bare.target.port, bare.ssh.user, bare.ssh.known_hosts) == ("cp1", 22, None,
                                                                                         tmp_path / "kh")
    assert remote.known_hosts_from_args("-o 'UserKnownHostsFile /a/b c' -J jump") == Path("/a/b")
    assert remote.known_hosts_from_args("-oUserKnownHostsFile=/k -o ServerAliveInterval=5") == Path("/k")
    assert remote.known_hosts_from_args("-o StrictHostKeyChecking=no") is None
    with pytest.raises(Exception, match=r"cp1: ansible_ssh_private_key_file = /nonexistent: no such file"):
        remote.connection("cp1", {"ansible_ssh_private_key_file": "/nonexistent"}, known_hosts=None,
                          accept_new=False, timeout=5)
    with pytest.raises(Exception, match=r"cp1: ansible_port = 'ssh' must be a number"):
        remote.connection("cp1", {"ansible_port": "ssh"}, known_hosts=None, accept_new=False, timeout=5)


@pytest.fixture
def sshd() -> Any:
    server = FakeSshd()
    server.start()
    yield server
    server.stop()


def write_inventory(tmp_path: Path, sshd: FakeSshd, port: int | None = None) -> Path:
    key = _key_file(tmp_path, sshd.client_key)
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    data = copy.deepcopy(HOSTS_YML)
    data["all"]["vars"] |= {"ansible_ssh_private_key_file": str(key),
                            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known}"}
    cp1 = data["all"]["children"]["kube_control_plane"]["hosts"]["cp1"]
    cp1 |= {"ansible_host": "127.0.0.1", "ansible_port": port or sshd.port, "node_ip": "10.213.17.11"}
    for index, worker in enumerate(data["all"]["children"]["kube_node"]["hosts"].values()):
        worker |= {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "node_ip": f"10.213.17.{12 + index}"}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_command_through_ssh_exit_0_then_3_then_4(tmp_path: Path, sshd: FakeSshd,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    hosts = write_inventory(tmp_path, sshd)
    sshd.output = canned(converged_nodes())
    assert main(["status", "-i", str(hosts)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cluster read through cp1 (root@127.0.0.1:{sshd.port})")
    assert "no drift" in out
    # One connection per node: the status script on cp1, the certificates script on each worker.
    assert sshd.commands == ["sh -s"] * 3
    assert sshd.scripts == [remote.STATUS_SCRIPT, *[remote.certificates_script(False)] * 2]
    assert " get " in remote.STATUS_SCRIPT and not any(word in remote.STATUS_SCRIPT for word in
                                                       (" patch ", " label ", " taint ", " apply ", " delete "))

    nodes = converged_nodes()
    nodes[1]["metadata"]["labels"]["disktype"] = "hdd"
    sshd.output = canned(nodes)
    assert main(["status", "-i", str(hosts), "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["drift"] == [{"node": "worker1", "kind": "label", "key": "disktype", "state": "different",
                                  "expected": "ssd", "actual": "hdd"}]

    sshd.output = script_output({}, "no-kubeconfig")
    assert main(["status", "-i", str(hosts)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"through cp1 (root@127.0.0.1:{sshd.port})" in err
    assert "admin.conf is missing" in err


def test_an_unreachable_control_plane_exits_4_naming_host_and_fix(tmp_path: Path, sshd: FakeSshd,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    hosts = write_inventory(tmp_path, sshd, port=port)
    assert main(["status", "-i", str(hosts), "--timeout", "2"]) == 4
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"cannot read the cluster through cp1 (root@127.0.0.1:{port}): connection refused" in err
    assert "check ansible_port of cp1" in err


class PerScriptSshd(FakeSshd):
    """The fake server answering each script with its own output (the status script, or a node's certificates)."""

    answers: dict[str, str]

    def respond(self, channel: Any) -> None:
        script = bytearray()
        while chunk := channel.recv(65536):
            script += chunk
        self.scripts.append(script.decode())
        channel.sendall(self.answers.get(script.decode(), "").encode())
        channel.send_exit_status(0)
        channel.close()


def test_every_node_certificates_at_once_an_unreachable_control_plane_shown_not_fatal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    short = certificate_sections(expiration=check_expiration(now, dt.timedelta(hours=2)),
                                 kubelet=kubelet_pem("cp1", now + dt.timedelta(hours=2)))
    server = PerScriptSshd()
    server.answers = {remote.STATUS_SCRIPT: canned([*converged_nodes(), node_json("cp3", index=5, control_plane=True),
                                                    node_json("cp2", index=4, control_plane=True)], short),
                      remote.certificates_script(True): healthy("cp3", True, now),
                      remote.certificates_script(False): healthy("worker1", False, now)}
    server.start()
    try:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        hosts = write_inventory(tmp_path, server)
        data = yaml.safe_load(hosts.read_text())
        data["all"]["children"]["kube_control_plane"]["hosts"] |= {
            "cp2": {"ansible_host": "127.0.0.1", "ansible_port": port, "node_ip": "10.213.17.14"},
            "cp3": {"ansible_host": "127.0.0.1", "ansible_port": server.port, "node_ip": "10.213.17.15"}}
        hosts.write_text(yaml.safe_dump(data))

        assert main(["status", "-i", str(hosts), "--timeout", "3"]) == 4
        out = capsys.readouterr().out
        assert sorted(server.scripts) == sorted([remote.STATUS_SCRIPT, remote.certificates_script(True),
                                                 *[remote.certificates_script(False)] * 2])
        section = out.split("Certificates (whole days left; marked within kube_certificate_warn_days = 30 days "
                            "of expiry):\n", 1)[1].split("\n\n", 1)[0].splitlines()
        heads = [line for line in section if not line.startswith("    ")]
        assert heads == [f"  cp1 (root@127.0.0.1:{server.port}), control plane:",
                         f"  cp2 (root@127.0.0.1:{port}), control plane: not read: connection refused by "
                         f"127.0.0.1:{port} (is sshd running on that port?); check ansible_port of cp2 and that "
                         "sshd runs there",
                         f"  cp3 (root@127.0.0.1:{server.port}), control plane:",
                         f"  worker1 (root@127.0.0.1:{server.port}), worker:",
                         f"  worker2 (root@127.0.0.1:{server.port}), worker:"], out
        rows = [line.split() for line in section if line.startswith("    ") and "NAME" not in line]
        assert rows[1][:2] == ["apiserver", "certificate"] and rows[1][-2:] == ["0", "WARN"]
        assert rows[14][0] == "kubelet-client-current.pem" and rows[14][-2:] == ["0", "WARN"]
        assert rows[15][0] == "admin.conf" and rows[15][-1] == "ok" and int(rows[15][-2]) in (363, 364)
        assert "no drift: the cluster is as the inventory declares" in out
        warnings = [line for line in out.splitlines() if line.startswith("WARNING:")]
        assert len(warnings) == 3, warnings
        assert warnings[0].startswith("WARNING: cp1: 11 certificate(s) expire within 30 days: admin.conf (0 days "
                                      "left), apiserver (0 days left), ")
        assert warnings[0].endswith(f"; renew them with `ansible-playbook -i {hosts} playbooks/certs.yml`")
        assert warnings[1].startswith("WARNING: cp1: the kubelet client certificate")
        assert warnings[2].startswith(f"WARNING: cp2 (root@127.0.0.1:{port}): certificates not read: connection "
                                      "refused")

        assert main(["status", "-i", str(hosts), "--timeout", "3", "--json"]) == 4
        document = json.loads(capsys.readouterr().out)
        found = {n["name"]: n["certificates"] for n in document["nodes"]}
        assert found["cp2"]["read"] is False and "connection refused" in found["cp2"]["errors"][0]
        assert found["cp1"]["read"] is True and found["cp1"]["control_plane"] is True
        assert {i["name"]: i["state"] for i in found["cp1"]["items"]}["apiserver"] == "WARN"
        assert [i["name"] for i in found["worker1"]["items"]] == ["kubelet-client-current.pem"]
        assert document["warnings"] == warnings and document["exit_code"] == 4

        # Only the short-lived certificates: exit 3, as for drift.
        data["all"]["children"]["kube_control_plane"]["hosts"].pop("cp2")
        hosts.write_text(yaml.safe_dump(data))
        server.answers[remote.STATUS_SCRIPT] = canned([*converged_nodes(),
                                                       node_json("cp3", index=5, control_plane=True)], short)
        assert main(["status", "-i", str(hosts)]) == 3
        assert "no drift" in capsys.readouterr().out
    finally:
        server.stop()


def test_an_unknown_host_key_is_refused_unless_accept_new(tmp_path: Path, sshd: FakeSshd,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    hosts = write_inventory(tmp_path, sshd)
    sshd.output = canned(converged_nodes())
    empty = tmp_path / "empty_known_hosts"
    assert main(["status", "-i", str(hosts), "--known-hosts", str(empty)]) == 4
    assert "unknown host key" in capsys.readouterr().err
    assert main(["status", "-i", str(hosts), "--known-hosts", str(empty), "--accept-new"]) == 0
    assert f"[127.0.0.1]:{sshd.port}" in empty.read_text()


def test_an_inventory_with_errors_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(HOSTS_YML)
    data["all"]["children"]["kube_node"]["hosts"]["worker1"]["node_taints"] = ["dedicated=master:NoScheduel"]
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    assert main(["status", "-i", str(path)]) == 2
    err = capsys.readouterr().err
    assert 'worker1: node_taints[0] = "dedicated=master:NoScheduel"' in err
