"""The node_meta reconciler (kubeboot.node_meta), the module's kubectl calls and the inventory's merge order."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kubeboot import node_labels, node_meta
from kubeboot.node_meta import RECORD_ANNOTATIONS, RECORD_LABELS, RECORD_TAINTS, Desired, apply_ops, plan

REPO = Path(__file__).resolve().parents[2]


def node(labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "worker1", "labels": {"kubernetes.io/hostname": "worker1",
                                                                      **(labels or {})}},
                           "spec": {"podCIDR": "10.244.1.0/24"}}
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    if taints is not None:
        obj["spec"]["taints"] = taints
    return obj


def converge(obj: dict[str, Any], desired: Desired) -> dict[str, Any]:
    return apply_ops(obj, plan(obj, desired).ops)


def test_first_run_adds_labels_taints_annotations_and_the_record() -> None:
    desired = Desired.from_params({"labels": {"app": "msms"}, "taints": ["app=msms:NoExecute"],
                                   "annotations": {"kubeboot.io/public-address": "203.0.113.7"}})
    step = plan(node(), desired)
    assert step.changed
    after = apply_ops(node(), step.ops)
    assert after["metadata"]["labels"] == {"kubernetes.io/hostname": "worker1", "app": "msms"}
    assert after["spec"]["taints"] == [{"key": "app", "value": "msms", "effect": "NoExecute"}]
    assert after["metadata"]["annotations"] == {
        "kubeboot.io/public-address": "203.0.113.7", RECORD_LABELS: "app", RECORD_TAINTS: "app:NoExecute",
        RECORD_ANNOTATIONS: "kubeboot.io/public-address"}
    assert after["spec"]["podCIDR"] == "10.244.1.0/24"
    assert not plan(after, desired).changed
    assert sorted(step.summary()) == ["annotation kubeboot.io/public-address='203.0.113.7' added",
                                      "label app='msms' added", "taint app=msms:NoExecute added"]


def test_labels_registered_by_the_kubelet_are_adopted_into_the_record() -> None:
    obj = node(labels={"disktype": "ssd"}, taints=[{"key": "app", "value": "msms", "effect": "NoExecute"}])
    desired = Desired.from_params({"labels": {"disktype": "ssd"}, "taints": ["app=msms:NoExecute"]})
    step = plan(obj, desired)
    assert step.ops == [{"op": "add", "path": "/metadata/annotations",
                         "value": {RECORD_LABELS: "disktype", RECORD_TAINTS: "app:NoExecute"}}]
    assert step.summary() == []


def test_change_remove_add_touch_exactly_those_and_leave_foreign_keys() -> None:
    first = Desired.from_params({"labels": {"tier": "a", "zone": "x"},
                                 "taints": ["dedicated=master:NoSchedule", "app=msms:NoExecute"]})
    obj = converge(node(), first)
    # Set by hand, outside kubeboot: a label and a taint.
    obj["metadata"]["labels"]["owner"] = "ops"
    obj["spec"]["taints"].append({"key": "maintenance", "effect": "NoSchedule"})
    second = Desired.from_params({"labels": {"tier": "b", "zone": "x", "new": "1"},
                                  "taints": ["app=msms:NoExecute"]})
    step = plan(obj, second)
    assert sorted(step.summary()) == ["label new='1' added", "label tier: 'a' -> 'b'",
                                      "taint dedicated=master:NoSchedule removed"]
    after = apply_ops(obj, step.ops)
    assert after["metadata"]["labels"] == {"kubernetes.io/hostname": "worker1", "tier": "b", "zone": "x",
                                           "new": "1", "owner": "ops"}
    assert after["spec"]["taints"] == [{"key": "app", "value": "msms", "effect": "NoExecute"},
                                       {"key": "maintenance", "effect": "NoSchedule"}]
    assert after["metadata"]["annotations"][RECORD_LABELS] == "new,tier,zone"
    assert not plan(after, second).changed


def test_a_label_kubeboot_did_not_set_is_not_removed_even_when_named_nowhere() -> None:
    obj = node(labels={"owner": "ops"}, annotations={RECORD_LABELS: "tier"})
    step = plan(obj, Desired())
    assert step.ops == [{"op": "remove", "path": "/metadata/annotations/kubeboot.io~1managed-labels"}]
    after = converge(obj, Desired())
    assert after["metadata"]["labels"]["owner"] == "ops"
    assert RECORD_LABELS not in after["metadata"].get("annotations", {})


def test_taint_value_change_and_json_patch_tests_the_taints_read() -> None:
    obj = converge(node(), Desired.from_params({"taints": ["app=msms:NoExecute"]}))
    obj["spec"]["taints"][0]["timeAdded"] = "2026-11-23T10:00:00Z"
    step = plan(obj, Desired.from_params({"taints": ["app=media:NoExecute"]}))
    assert step.ops[0] == {"op": "test", "path": "/spec/taints", "value": obj["spec"]["taints"]}
    assert step.ops[1] == {"op": "replace", "path": "/spec/taints",
                           "value": [{"key": "app", "value": "media", "effect": "NoExecute"}]}
    assert step.summary() == ["taint app=msms:NoExecute -> app=media:NoExecute"]
    # An unchanged taint keeps the API's own fields.
    assert not plan(obj, Desired.from_params({"taints": ["app=msms:NoExecute"]})).changed


def test_removing_the_last_taint_removes_the_field_and_the_record() -> None:
    obj = converge(node(), Desired.from_params({"taints": ["a:NoSchedule"]}))
    step = plan(obj, Desired())
    assert {"op": "remove", "path": "/spec/taints"} in step.ops
    after = apply_ops(obj, step.ops)
    assert "taints" not in after["spec"]
    assert after["metadata"]["annotations"] == {}


def test_label_keys_with_a_slash_are_escaped_in_the_patch() -> None:
    obj = node(annotations={})
    step = plan(obj, Desired.from_params({"labels": {"node-role.kubernetes.io/msms": ""}}))
    assert {"op": "add", "path": "/metadata/labels/node-role.kubernetes.io~1msms", "value": ""} in step.ops


def test_same_key_and_effect_later_wins_and_taint_mappings_are_accepted() -> None:
    desired = Desired.from_params({"taints": ["a=1:NoSchedule", {"key": "a", "value": "2", "effect": "NoSchedule"}]})
    assert desired.taints == [{"key": "a", "value": "2", "effect": "NoSchedule"}]
    with pytest.raises(ValueError, match="key=value:Effect"):
        node_meta.parse_taint("no-effect")


# ---------------------------------------------------------------- the module, with canned kubectl outputs

def load_module() -> Any:
    sys.modules.setdefault("ansible.module_utils.kubeboot_node_meta", node_meta)
    spec = importlib.util.spec_from_file_location("kubeboot_node_meta_module",
                                                  REPO / "plugins/modules/kubeboot_node_meta.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeModule:
    def __init__(self, nodes: dict[str, Any], cluster: list[dict[str, Any]], check_mode: bool = False) -> None:
        self.params = {"nodes": nodes, "kubeconfig": "/etc/kubernetes/admin.conf", "kubectl": "kubectl",
                       "attempts": 3}
        self.check_mode = check_mode
        self._diff = True
        self.cluster = {n["metadata"]["name"]: n for n in cluster}
        self.calls: list[list[str]] = []

    def get_bin_path(self, name: str, required: bool = False) -> str:
        return f"/usr/bin/{name}"

    def run_command(self, args: list[str], environ_update: dict[str, str] | None = None) -> tuple[int, str, str]:
        assert environ_update == {"LC_ALL": "C"}
        self.calls.append(args)
        verb = args[3:]
        if verb == ["get", "nodes", "-o", "json"]:
            return 0, json.dumps({"items": list(self.cluster.values())}), ""
        if verb[:2] == ["get", "node"]:
            return 0, json.dumps(self.cluster[verb[2]]), ""
        if verb[:2] == ["patch", "node"]:
            self.cluster[verb[2]] = apply_ops(self.cluster[verb[2]], json.loads(verb[-1]))
            return 0, f"node/{verb[2]} patched", ""
        return 1, "", "unexpected"


BASE = ["/usr/bin/kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]


def test_module_patches_only_what_differs_then_reports_no_change() -> None:
    mod = load_module()
    wanted = {"worker1": {"labels": {"app": "msms"}, "taints": ["app=msms:NoExecute"], "annotations": {}}}
    fake = FakeModule(wanted, [node()])
    result = mod.run(fake)
    assert result["changed"] is True
    assert fake.calls[0] == [*BASE, "get", "nodes", "-o", "json"]
    assert fake.calls[1] == [*BASE, "get", "node", "worker1", "-o", "json"]
    assert fake.calls[2][3:8] == ["patch", "node", "worker1", "--type", "json"]
    assert result["nodes"]["worker1"] == ["label app='msms' added", "taint app=msms:NoExecute added"]
    assert result["diff"][0]["before_header"] == "node/worker1"
    again = FakeModule(wanted, list(fake.cluster.values()))
    result = mod.run(again)
    assert result == {"changed": False, "nodes": {"worker1": []}, "diff": []}
    assert all(call[3] == "get" for call in again.calls)


def test_module_check_mode_reports_the_diff_and_patches_nothing() -> None:
    mod = load_module()
    fake = FakeModule({"worker1": {"labels": {"app": "msms"}}}, [node()], check_mode=True)
    result = mod.run(fake)
    assert result["changed"] is True
    assert '"app": "msms"' in result["diff"][0]["after"] and '"app"' not in result["diff"][0]["before"]
    assert not any(call[3] == "patch" for call in fake.calls)


def test_module_names_a_node_that_has_not_joined() -> None:
    mod = load_module()
    with pytest.raises(mod.NodeMetaError, match="no Node named worker9"):
        mod.run(FakeModule({"worker9": {}}, [node()]))


# ---------------------------------------------------------------- what the inventory declares

GROUPS = {"msms": ["msms1"], "kube_node": ["worker1", "msms1"], "kube_control_plane": ["cp1"]}


def test_msms_profile_then_group_then_host_scope() -> None:
    hostvars = {
        "msms1": {"ansible_host": "10.0.0.31", "msms_fixed": True, "msms_labels": {"app": "msms"},
                  "msms_taints": ["app=msms:NoExecute"], "msms_fixed_label": "kubeboot.io/msms-fixed",
                  "msms_public_address_annotation": "kubeboot.io/public-address", "msms_public_address": "",
                  "node_group_labels": {"tier": "media", "zone": "a"}, "node_group_taints": ["app=media:NoExecute"],
                  "node_labels": {"zone": "b"}, "node_taints": ["dedicated=master:NoSchedule"]},
        "worker1": {"ansible_host": "10.0.0.21", "msms_fixed": True, "node_labels": {"disktype": "ssd"}},
    }
    meta = node_labels.node_meta("msms1", hostvars, GROUPS)
    assert meta["labels"] == {"app": "msms", "kubeboot.io/msms-fixed": "true", "tier": "media", "zone": "b"}
    assert meta["taints"] == ["app=media:NoExecute", "dedicated=master:NoSchedule"]
    assert meta["annotations"] == {"kubeboot.io/public-address": "10.0.0.31"}
    plain = node_labels.node_meta("worker1", hostvars, GROUPS)
    assert plain == {"labels": {"disktype": "ssd"}, "taints": [], "annotations": {}}


def test_msms_defaults_and_public_address() -> None:
    meta = node_labels.node_meta("msms1", {"msms1": {"ansible_host": "10.0.0.31",
                                                     "msms_public_address": "203.0.113.7"}}, GROUPS)
    assert meta == {"labels": {"app": "msms"}, "taints": ["app=msms:NoExecute"],
                    "annotations": {"kubeboot.io/public-address": "203.0.113.7"}}


def test_registration_keeps_only_what_a_kubelet_may_set() -> None:
    labels = {"app": "msms", "node-role.kubernetes.io/msms": "", "topology.kubernetes.io/zone": "z1",
              "example.com/x": "1"}
    assert node_labels.registration_labels(labels) == {"app": "msms", "example.com/x": "1",
                                                       "topology.kubernetes.io/zone": "z1"}
    assert node_labels.taint_objects(["a=b:NoSchedule", "c:NoExecute"]) == [
        {"key": "a", "value": "b", "effect": "NoSchedule"}, {"key": "c", "effect": "NoExecute"}]
    assert node_labels.msms_ports("10000-20000") == [{"port": "10000-20000", "proto": "udp",
                                                      "purpose": "msms RTP"}]
    assert node_labels.msms_ports("") == []


# ---------------------------------------------------------------- the validator's msms checks

def test_msms_settings_and_host_checks() -> None:
    from kubeboot.inventory import checks
    from kubeboot.inventory.model import Host

    good = {"msms_fixed_label": "kubeboot.io/msms-fixed",
            "msms_public_address_annotation": "kubeboot.io/public-address",
            "msms_rtp_port_range": "10000-20000", "msms_namespaces": ["msms", "test-bj"]}
    assert checks.check_msms_settings(good) == []
    bad = {"msms_fixed_label": "bad key", "msms_rtp_port_range": "0-10", "msms_namespaces": ["Test_BJ", "a.b"]}
    lines = [f.line() for f in checks.check_msms_settings(bad)]
    assert [line.split(" = ")[0] for line in lines] == [
        "ERROR all: msms_fixed_label", "ERROR all: msms_rtp_port_range", "ERROR all: msms_namespaces[0]",
        "ERROR all: msms_namespaces[1]"]
    host = Host("msms1", variables={"msms_fixed": "maybe", "msms_public_address": "203.0.113.300"})
    assert [f.variable for f in checks.check_msms_host(host)] == ["msms_fixed", "msms_public_address"]
    assert checks.check_msms_host(Host("msms1", variables={"msms_fixed": True,
                                                           "msms_public_address": "203.0.113.7"})) == []
