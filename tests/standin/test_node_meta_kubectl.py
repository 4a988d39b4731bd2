"""The node_meta reconciler's JSON patches and the msms RBAC objects, with the real kubectl against the stand-in."""

from __future__ import annotations

import json

from conftest import Cluster

from kubeboot.node_meta import Desired, plan

NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: w1
  labels: {kubernetes.io/hostname: w1}
spec:
  taints:
  - {key: node.kubernetes.io/not-ready, effect: NoSchedule}
"""

RBAC = """\
apiVersion: v1
kind: Namespace
metadata: {name: msms}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: msms-sa, namespace: msms}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeboot-msms-node-reader}
rules:
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubeboot-msms-node-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeboot-msms-node-reader}
subjects:
- {kind: ServiceAccount, name: msms-sa, namespace: msms}
"""


def get(cluster: Cluster) -> dict:
    return json.loads(cluster.kubectl("get", "node", "w1", "-o", "json").stdout)


def reconcile(cluster: Cluster, desired: Desired) -> bool:
    step = plan(get(cluster), desired)
    if step.changed:
        cluster.kubectl("patch", "node", "w1", "--type", "json", "-p", json.dumps(step.ops))
    return step.changed


def test_reconcile_with_json_patches_is_exact_and_idempotent(cluster: Cluster) -> None:
    cluster.kubectl("create", "-f", "-", stdin=NODE)
    first = Desired.from_params({"labels": {"app": "msms", "node-role.kubernetes.io/msms": ""},
                                 "taints": ["app=msms:NoExecute", "dedicated=master:NoSchedule"],
                                 "annotations": {"kubeboot.io/public-address": "203.0.113.7"}})
    assert reconcile(cluster, first)
    assert not reconcile(cluster, first)
    cluster.kubectl("label", "node", "w1", "owner=ops")
    second = Desired.from_params({"labels": {"app": "media", "rack": "r1"}, "taints": ["app=msms:NoExecute"],
                                  "annotations": {"kubeboot.io/public-address": "203.0.113.7"}})
    assert reconcile(cluster, second)
    assert not reconcile(cluster, second)
    node = get(cluster)
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "w1", "app": "media", "rack": "r1",
                                          "owner": "ops"}
    assert node["spec"]["taints"] == [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                                      {"key": "app", "value": "msms", "effect": "NoExecute"}]
    assert node["metadata"]["annotations"]["kubeboot.io/managed-labels"] == "app,rack"


def test_a_taint_changed_meanwhile_fails_the_patch_instead_of_being_overwritten(cluster: Cluster) -> None:
    cluster.kubectl("create", "-f", "-", stdin=NODE)
    step = plan(get(cluster), Desired.from_params({"taints": ["app=msms:NoExecute"]}))
    cluster.kubectl("taint", "node", "w1", "maintenance=yes:NoSchedule")
    result = cluster.kubectl("patch", "node", "w1", "--type", "json", "-p", json.dumps(step.ops), check=False)
    assert result.returncode != 0
    assert {t["key"] for t in get(cluster)["spec"]["taints"]} == {"node.kubernetes.io/not-ready", "maintenance"}


def test_the_msms_service_account_may_read_nodes_only(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=RBAC)
    sa = "system:serviceaccount:msms:msms-sa"

    def can(*args: str) -> str:
        return cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False).stdout.strip()

    assert can("get", "nodes") == "yes"
    assert can("list", "nodes") == "yes"
    assert can("get", "secrets", "-n", "msms") == "no"
    assert can("patch", "nodes") == "no"
    assert can("create", "pods", "-n", "msms") == "no"
