"""The real kubectl 1.33 against the API server stand-in (loopback, temp root)."""

from __future__ import annotations

import json
import threading
import time

from conftest import Cluster

NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}}}
status:
  conditions:
  - {{type: Ready, status: "{ready}", reason: KubeletReady, message: ok}}
  nodeInfo: {{kubeletVersion: v1.33.1}}
"""

MANIFEST = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: default
spec:
  size: 3
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm1, namespace: default}
data: {a: b}
"""


def add_node(cluster: Cluster, name: str, ready: str = "True") -> None:
    cluster.kubectl("create", "-f", "-", stdin=NODE.format(name=name, ready=ready))


def test_get_nodes_json_and_jsonpath(cluster: Cluster) -> None:
    add_node(cluster, "n1")
    out = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)
    assert [n["metadata"]["name"] for n in out["items"]] == ["n1"]
    assert cluster.kubectl("get", "node", "n1", "-o", "jsonpath={.status.nodeInfo.kubeletVersion}").stdout == "v1.33.1"
    table = cluster.kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:3] == ["n1", "Ready", "<none>"]


def test_label_annotate_taint_cordon(cluster: Cluster) -> None:
    add_node(cluster, "n1")
    cluster.kubectl("label", "node", "n1", "node-role.kubernetes.io/worker=")
    cluster.kubectl("annotate", "node", "n1", "example.com/owner=tests")
    cluster.kubectl("taint", "node", "n1", "dedicated=infra:NoSchedule")
    cluster.kubectl("taint", "node", "n1", "gone=yes:NoExecute")
    cluster.kubectl("taint", "node", "n1", "gone-")
    cluster.kubectl("cordon", "n1")
    node = json.loads(cluster.kubectl("get", "node", "n1", "-o", "json").stdout)
    assert node["metadata"]["labels"]["node-role.kubernetes.io/worker"] == ""
    assert node["metadata"]["annotations"]["example.com/owner"] == "tests"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]
    assert node["spec"]["unschedulable"] is True
    assert "Ready,SchedulingDisabled" in cluster.kubectl("get", "nodes").stdout
    bad = cluster.kubectl("taint", "node", "n1", "x=y:Sometimes", check=False)
    assert bad.returncode != 0
    assert "Sometimes" in bad.stderr


def test_apply_multi_document_with_crd_and_custom_resource(cluster: Cluster) -> None:
    first = cluster.kubectl("apply", "-f", "-", stdin=MANIFEST, check=False)
    # Exactly what kubectl does against a real fresh API server: the CR's kind is mapped before the
    # CRD exists, so it asks to install CRDs first; the CRD and the ConfigMap are created.
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created" in first.stdout
    assert 'no matches for kind "Widget" in version "example.com/v1"' in first.stderr
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
    second = cluster.kubectl("apply", "-f", "-", stdin=MANIFEST)
    assert "widget.example.com/w1 created" in second.stdout
    assert "configmap/cm1 unchanged" in second.stdout
    assert cluster.kubectl("get", "wd", "w1", "-o", "jsonpath={.spec.size}").stdout == "3"
    changed = MANIFEST.replace("size: 3", "size: 5").replace("data: {a: b}", "data: {a: c}")
    third = cluster.kubectl("apply", "-f", "-", stdin=changed)
    assert "widget.example.com/w1 configured" in third.stdout
    assert cluster.kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.size}").stdout == "5"
    cm = json.loads(cluster.kubectl("get", "cm", "cm1", "-o", "json").stdout)
    assert cm["data"] == {"a": "c"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    cluster.kubectl("delete", "crd", "widgets.example.com")
    assert cluster.kubectl("get", "widgets", check=False).returncode != 0


def test_drain_and_delete_node(cluster: Cluster) -> None:
    add_node(cluster, "n1")
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: default}\n"
        "spec: {nodeName: n1, containers: [{name: c, image: busybox}]}\n"
    )
    cluster.kubectl("create", "-f", "-", stdin=pod)
    refused = cluster.kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=20s", check=False)
    assert refused.returncode != 0
    assert "cannot delete Pods that declare no controller" in refused.stderr
    cluster.kubectl("drain", "n1", "--ignore-daemonsets", "--force", "--timeout=30s")
    assert cluster.kubectl("get", "pods", "-o", "name").stdout == ""
    cluster.kubectl("delete", "node", "n1")
    assert "No resources found" in cluster.kubectl("get", "nodes").stderr


def test_wait_for_ready_sees_a_later_change(cluster: Cluster) -> None:
    add_node(cluster, "n1", ready="False")

    def make_ready() -> None:
        time.sleep(2)
        cluster.kubectl(
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )

    t = threading.Thread(target=make_ready)
    t.start()
    out = cluster.kubectl("wait", "--for=condition=Ready", "node/n1", "--timeout=30s")
    t.join()
    assert "node/n1 condition met" in out.stdout


def test_not_found_and_conflict_messages(cluster: Cluster) -> None:
    missing = cluster.kubectl("get", "node", "nope", check=False)
    assert 'Error from server (NotFound): nodes "nope" not found' in missing.stderr
    cluster.kubectl("create", "namespace", "team")
    again = cluster.kubectl("create", "namespace", "team", check=False)
    assert 'Error from server (AlreadyExists): namespaces "team" already exists' in again.stderr


def test_rbac_can_i(cluster: Cluster) -> None:
    assert cluster.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    out = cluster.kubectl("auth", "can-i", "list", "secrets", "--as", "someone", check=False)
    assert out.stdout.strip() == "no"
