"""Node labels, taints and the msms profile on sandbox nodes running the stand-in, with the real kubectl.

pytestmeta (1 control plane + 2 workers, worker2 in msms): after the first converge every node carries exactly the
inventory's labels and taints (msms: the scheme and the public address annotation); a second run changes nothing;
an inventory change (a label value, a removed taint, an added label) is shown by check mode without being made, then
made exactly, a label set by hand surviving; `kubeboot status` reports no drift on the converged cluster, then a
label changed and a taint removed by hand (node, key, expected and actual), and none once they are put back; the
msms ServiceAccount reads nodes and nothing else; the example pod spec is accepted by the API server and lands only
on msms nodes; an invalid inventory is refused before anything changes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Sandbox, kubeboot, recap
from tests.sandbox.cluster_helpers import KUBECTL, kubectl_json

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.17.0/24"
HOSTS = {"cp1", "worker1", "worker2"}
SA = "system:serviceaccount:msms:msms-sa"
RECORDS = ("kubeboot.io/managed-labels", "kubeboot.io/managed-taints", "kubeboot.io/managed-annotations")

HOST_VARS = {
    "cp1": {"node_labels": {"tenancy-tenant3": "master"}},
    "worker1": {"node_labels": {"disktype": "ssd", "node-role.kubernetes.io/storage": ""},
                "node_taints": ["dedicated=master:NoSchedule", "example.com/gpu:PreferNoSchedule"]},
    "worker2": {"msms_fixed": True, "msms_public_address": "203.0.113.7"},
}
# What each node must carry (labels and taints kubeboot manages) after the first converge.
EXPECTED = {
    "cp1": ({"tenancy-tenant3": "master"}, set()),
    "worker1": ({"disktype": "ssd", "node-role.kubernetes.io/storage": ""},
                {"dedicated=master:NoSchedule", "example.com/gpu:PreferNoSchedule"}),
    "worker2": ({"app": "msms", "kubeboot.io/msms-fixed": "true", "tier": "media"}, {"app=msms:NoExecute"}),
}


def nodes(box: Sandbox) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in kubectl_json(box, "get nodes")["items"]}


def own_labels(node: dict[str, Any]) -> dict[str, str]:
    """Labels other than those the kubelet and kubeadm set themselves (kubernetes.io and k8s.io namespaces)."""
    system = re.compile(r"^([^/]*\.)?(kubernetes\.io|k8s\.io)/")
    labels = node["metadata"].get("labels", {})
    return {k: v for k, v in labels.items() if not system.match(k) or (
        k.startswith("node-role.kubernetes.io/") and k != "node-role.kubernetes.io/control-plane")}


def own_taints(node: dict[str, Any]) -> set[str]:
    out = set()
    for t in node["spec"].get("taints", []):
        if t["key"].startswith(("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")) or \
                t["key"] == "node-role.kubernetes.io/control-plane":
            continue
        out.add(f"{t['key']}={t['value']}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}")
    return out


def kubeboot_annotations(node: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in node["metadata"].get("annotations", {}).items() if k.startswith("kubeboot.io/")}


def write_host_vars(box: Sandbox, host_vars: dict[str, dict[str, Any]]) -> None:
    directory = box.inventory.parent / "host_vars"
    directory.mkdir(exist_ok=True)
    for name, variables in host_vars.items():
        (directory / f"{name}.yml").write_text("---\n" + yaml.safe_dump(variables, sort_keys=False))


def assert_unchanged(output: str, hosts: set[str]) -> None:
    counts = recap(output)
    assert hosts <= set(counts), output[-3000:]
    for host in hosts:
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0, (host, counts, output[-4000:])


@pytest.fixture(scope="module")
def meta(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestmeta", "--layout", "1cp2w", "--standin", "--subnet", SUBNET)
    data = yaml.safe_load(box.inventory.read_text())
    data["all"]["children"]["msms"] = {"hosts": {"worker2": None}}
    box.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text("---\nmsms_namespaces: [msms, msms-bj]\n")
    (group_vars / "msms.yml").write_text("---\nnode_group_labels:\n  tier: media\n")
    write_host_vars(box, HOST_VARS)
    return box


@pytest.fixture(scope="module")
def converged(meta: Sandbox) -> dict[str, Any]:
    first = meta.playbook("site.yml")
    second = meta.playbook("site.yml")
    return {"first": first.stdout, "second": second.stdout, "nodes": nodes(meta)}


def test_every_node_carries_exactly_the_inventory_labels_and_taints(meta: Sandbox, converged: dict[str, Any]) -> None:
    assert all(recap(converged["first"])[h]["changed"] > 0 for h in HOSTS)
    found = converged["nodes"]
    assert set(found) == HOSTS
    for name, (labels, taints) in EXPECTED.items():
        assert own_labels(found[name]) == labels, name
        assert own_taints(found[name]) == taints, name
    # msms: the scheme, the public address annotation and the records; nothing else of kubeboot's.
    assert kubeboot_annotations(found["worker2"]) == {
        "kubeboot.io/public-address": "203.0.113.7",
        "kubeboot.io/managed-labels": "app,kubeboot.io/msms-fixed,tier",
        "kubeboot.io/managed-taints": "app:NoExecute",
        "kubeboot.io/managed-annotations": "kubeboot.io/public-address",
    }
    assert "kubeboot.io/public-address" not in kubeboot_annotations(found["worker1"])
    # The control plane keeps kubeadm's taint, which kubeboot does not manage.
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in found["cp1"]["spec"]["taints"]


@pytest.mark.usefixtures("converged")
def test_labels_and_taints_were_given_at_registration_where_the_kubelet_may(meta: Sandbox) -> None:
    flags = meta.ssh("worker2", "cat /var/lib/kubelet/kubeadm-flags.env").stdout
    assert "--node-labels=app=msms,kubeboot.io/msms-fixed=true,tier=media" in flags
    assert "--register-with-taints=app=msms:NoExecute" in flags
    flags = meta.ssh("worker1", "cat /var/lib/kubelet/kubeadm-flags.env").stdout
    assert re.search(r'--node-labels=disktype=ssd[" ]', flags), flags
    assert "node-role.kubernetes.io/storage" not in flags


def test_a_second_run_changes_nothing(converged: dict[str, Any]) -> None:
    assert_unchanged(converged["second"], HOSTS)


@pytest.mark.usefixtures("converged")
def test_the_msms_service_account_reads_nodes_and_nothing_else(meta: Sandbox) -> None:
    def can(verb: str, resource: str, namespace: str = "msms") -> str:
        result = meta.ssh("cp1", f"{KUBECTL} auth can-i {verb} {resource} -n {namespace} --as {SA}", check=False)
        return result.stdout.strip()

    assert can("get", "nodes") == "yes"
    assert can("list", "nodes") == "yes"
    assert can("watch", "nodes") == "yes"
    for verb, resource in (("get", "secrets"), ("list", "secrets"), ("patch", "nodes"), ("delete", "nodes"),
                           ("create", "pods"), ("update", "nodes"), ("get", "pods")):
        assert can(verb, resource) == "no", (verb, resource)
    role = kubectl_json(meta, "get clusterrole kubeboot-msms-node-reader")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    binding = kubectl_json(meta, "get clusterrolebinding kubeboot-msms-node-reader")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "msms-sa", "namespace": ns}
                                   for ns in ("msms", "msms-bj")]
    for namespace in ("msms", "msms-bj"):
        assert kubectl_json(meta, f"-n {namespace} get serviceaccount msms-sa")["metadata"]["name"] == "msms-sa"
    # The node's public address is readable by the app as that ServiceAccount.
    address = meta.ssh("cp1", f"{KUBECTL} --as {SA} get node worker2 "
                       "-o jsonpath='{.metadata.annotations.kubeboot\\.io/public-address}'").stdout
    assert address.strip() == "203.0.113.7"


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


@pytest.mark.usefixtures("converged")
def test_the_example_pod_spec_is_accepted_and_fits_only_msms_nodes(meta: Sandbox) -> None:
    example = REPO / "roles/node_meta/files/msms-pod-example.yaml"
    encoded = base64.b64encode(example.read_bytes()).decode()
    applied = meta.ssh("cp1", f"echo {encoded} | base64 -d | {KUBECTL} apply --dry-run=server -o json -f -")
    pod = json.loads(applied.stdout)
    spec = pod["spec"]
    assert (spec["hostNetwork"], spec["dnsPolicy"], spec["serviceAccountName"]) == (
        True, "ClusterFirstWithHostNet", "msms-sa")
    fits = set()
    for name, node in nodes(meta).items():
        labels = node["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in spec["nodeSelector"].items()):
            continue
        hard = [t for t in node["spec"].get("taints", []) if t["effect"] in ("NoSchedule", "NoExecute")]
        if all(tolerates(spec["tolerations"], t) for t in hard):
            fits.add(name)
    assert fits == {"worker2"}
    term = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert "msms-pod" in term["labelSelector"]["matchExpressions"][0]["values"]


def status(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return kubeboot("status", "-i", str(box.inventory), *args, check=False, timeout=120)


@pytest.mark.usefixtures("converged")
def test_status_reports_no_drift_then_a_hand_change_by_node_key_expected_and_actual(meta: Sandbox) -> None:
    # Runs before `changed` (which changes the inventory) and puts the cluster back, so the tests after it hold.
    clean = status(meta, "--json")
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr
    document = json.loads(clean.stdout)
    assert document["drift"] == [] and document["missing_from_cluster"] == [] == document["not_in_inventory"]
    assert document["through"].startswith("cp1 (root@10.213.17.")
    found = {n["name"]: n for n in document["nodes"]}
    assert set(found) == HOSTS
    for name, (labels, taints) in EXPECTED.items():
        node = found[name]
        assert node["ready"] == "True" and node["kubelet_version"].startswith("v1.33.")
        assert {i["key"]: i["actual"] for i in node["managed"] if i["kind"] == "label"} == labels, name
        assert {i["actual"] for i in node["managed"] if i["kind"] == "taint"} == taints, name
        assert all(i["state"] == "ok" for i in node["managed"])
        assert node["pod_cidrs"] and all(c.startswith("10.244.") for c in node["pod_cidrs"])
    assert found["cp1"]["roles"] == ["control-plane"]
    assert document["cni"]["found"] == ["flannel"] and document["pod_ranges"]["kubeadm_pod_subnet"] == "10.244.0.0/16"
    assert document["nfs_exports"] is None

    meta.ssh("cp1", f"{KUBECTL} label node worker1 disktype=hdd --overwrite")
    meta.ssh("cp1", f"{KUBECTL} taint node worker1 dedicated=master:NoSchedule-")
    try:
        drifted = status(meta)
        assert drifted.returncode == 3, drifted.stdout[-3000:] + drifted.stderr
        drift = [line.strip() for line in drifted.stdout.split("DRIFT (", 1)[-1].splitlines()[1:]]
        assert drift == ['worker1: label disktype different: expected "ssd", actual "hdd"',
                         'worker1: taint dedicated:NoSchedule missing: expected "dedicated=master:NoSchedule", '
                         'actual (none)'], drifted.stdout
        as_json = json.loads(status(meta, "--json").stdout)
        assert as_json["exit_code"] == 3
        assert [(d["node"], d["key"], d["expected"], d["actual"]) for d in as_json["drift"]] == [
            ("worker1", "disktype", "ssd", "hdd"), ("worker1", "dedicated:NoSchedule", "dedicated=master:NoSchedule",
                                                    None)]
    finally:
        meta.ssh("cp1", f"{KUBECTL} label node worker1 disktype=ssd --overwrite")
        meta.ssh("cp1", f"{KUBECTL} taint node worker1 dedicated=master:NoSchedule --overwrite")
    back = status(meta)
    assert back.returncode == 0, back.stdout[-3000:]
    assert "no drift" in back.stdout


@pytest.fixture(scope="module")
def changed(meta: Sandbox, converged: dict[str, Any]) -> dict[str, Any]:
    meta.ssh("cp1", f"{KUBECTL} label node worker1 owner=ops")
    before = nodes(meta)
    # A label value changes, a taint goes, a label is added.
    write_host_vars(meta, {**HOST_VARS, "worker1": {
        "node_labels": {"disktype": "nvme", "node-role.kubernetes.io/storage": "", "rack": "r1"},
        "node_taints": ["example.com/gpu:PreferNoSchedule"]}})
    check = meta.playbook("playbooks/cluster.yml", "--check", "--diff")
    after_check = nodes(meta)
    run = meta.playbook("site.yml")
    after = nodes(meta)
    again = meta.playbook("playbooks/cluster.yml")
    return {"before": before, "check": check.stdout, "after_check": after_check, "run": run.stdout,
            "after": after, "again": again.stdout}


def test_check_mode_shows_the_diff_and_changes_nothing(changed: dict[str, Any]) -> None:
    output = changed["check"]
    assert '"disktype": "nvme"' in output and '"rack": "r1"' in output
    assert "dedicated=master:NoSchedule" in output
    assert recap(output)["cp1"]["changed"] == 1
    for name in HOSTS:
        assert own_labels(changed["after_check"][name]) == own_labels(changed["before"][name])
        assert own_taints(changed["after_check"][name]) == own_taints(changed["before"][name])


def test_exactly_the_inventory_changes_happen_and_a_hand_label_survives(changed: dict[str, Any]) -> None:
    counts = recap(changed["run"])
    assert counts["cp1"]["changed"] == 1, changed["run"][-4000:]
    assert counts["worker1"]["changed"] == 0 and counts["worker2"]["changed"] == 0
    before, after = changed["before"]["worker1"], changed["after"]["worker1"]
    expected = {**own_labels(before), "disktype": "nvme", "rack": "r1"}
    assert own_labels(after) == expected
    assert after["metadata"]["labels"]["owner"] == "ops"
    assert own_taints(after) == own_taints(before) - {"dedicated=master:NoSchedule"}
    for name in ("cp1", "worker2"):
        assert changed["after"][name]["metadata"]["labels"] == changed["before"][name]["metadata"]["labels"]
        assert changed["after"][name]["spec"].get("taints") == changed["before"][name]["spec"].get("taints")
        assert kubeboot_annotations(changed["after"][name]) == kubeboot_annotations(changed["before"][name])
    assert_unchanged(changed["again"], HOSTS)


@pytest.mark.usefixtures("changed")
def test_an_invalid_inventory_is_refused_before_anything_changes(meta: Sandbox) -> None:
    before = nodes(meta)
    write_host_vars(meta, {**HOST_VARS, "worker1": {
        "node_labels": {"bad key!": "x", "ok": "-starts-with-dash"},
        "node_taints": ["dedicated=master:NoScheduel", "a=1:NoExecute", "a=2:NoExecute"]}})
    try:
        failed = meta.playbook("site.yml", check=False)
    finally:
        write_host_vars(meta, HOST_VARS)
    assert failed.returncode != 0
    out = failed.stdout
    for line in ('worker1: node_labels[bad key!] = "x": label key',
                 'worker1: node_labels[ok] = "-starts-with-dash": label value',
                 'worker1: node_taints[0] = "dedicated=master:NoScheduel": effect must be',
                 'worker1: node_taints[2] = "a=2:NoExecute": duplicate taint'):
        assert line in out, out[-4000:]
    assert set(recap(out)) == {"localhost"}
    after = nodes(meta)
    for name in HOSTS:
        assert after[name]["metadata"]["labels"] == before[name]["metadata"]["labels"]
        assert after[name]["spec"].get("taints") == before[name]["spec"].get("taints")


def test_sample_inventory_documents_the_msms_profile() -> None:
    text = Path(REPO / "README.md").read_text()
    assert "| `msms_taints` | `['app=msms:NoExecute']` |" in text
