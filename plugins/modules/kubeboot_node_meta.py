#!/usr/bin/python
"""Ansible module: reconcile the labels, taints and annotations of Nodes with kubectl (logic: kubeboot.node_meta)."""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kubeboot_node_meta import Desired, Plan, diff_text, plan

DOCUMENTATION = r"""
module: kubeboot_node_meta
short_description: Keep the labels, taints and annotations kubeboot declares on Kubernetes Nodes
description:
  - Reads each Node with C(kubectl get nodes -o json) and patches it (a JSON patch) so that it carries the labels,
    taints and annotations given here. Adds what is missing, updates what differs and removes what kubeboot set
    earlier and is no longer given; the keys it manages are recorded on the Node in the annotations
    C(kubeboot.io/managed-labels), C(kubeboot.io/managed-taints) (key:Effect) and C(kubeboot.io/managed-annotations).
    Labels, taints and annotations it did not set are never touched.
  - Changed only when a Node changed. Check mode reports what would change (and the diff) without patching.
  - Runs where kubectl and an administrator's kubeconfig are, normally the first control plane.
options:
  nodes:
    description:
      - Node name -> C({labels, taints, annotations}). Taints are C(key=value:Effect) or C(key:Effect) strings or
        C({key, value, effect}) mappings.
    type: dict
    required: true
  kubeconfig:
    description: kubeconfig kubectl uses.
    type: path
    default: /etc/kubernetes/admin.conf
  kubectl:
    description: kubectl binary (looked up on PATH when not absolute).
    type: str
    default: kubectl
  attempts:
    description: Tries per Node when a patch fails because the Node changed in between.
    type: int
    default: 3
author: kubeboot
"""

EXAMPLES = r"""
- name: Node meta | Reconcile the nodes' labels and taints
  kubeboot_node_meta:
    nodes:
      worker1:
        labels: {app: msms, kubeboot.io/msms-fixed: "true"}
        taints: ["app=msms:NoExecute"]
        annotations: {kubeboot.io/public-address: 203.0.113.7}
"""

RETURN = r"""
nodes:
  description: Per node, the changes made (or, in check mode, to be made), one line each.
  returned: always
  type: dict
  sample: {worker1: ["label app: 'web' -> 'msms'", "taint app=msms:NoExecute added"]}
"""


class NodeMetaError(Exception):
    pass


def _kubectl(module: AnsibleModule, base: list[str], *args: str) -> str:
    rc, out, err = module.run_command([*base, *args], environ_update={"LC_ALL": "C"})
    if rc != 0:
        raise NodeMetaError(f"{' '.join(args[:3])}: {err.strip() or out.strip()}")
    return str(out)


def reconcile(module: AnsibleModule, base: list[str], name: str, desired: Desired, attempts: int) -> Plan:
    """Plan and (outside check mode) patch one Node, again from a fresh read when the patch failed."""
    for attempt in range(1, attempts + 1):
        node = json.loads(_kubectl(module, base, "get", "node", name, "-o", "json"))
        step = plan(node, desired)
        if not step.changed or module.check_mode:
            return step
        try:
            _kubectl(module, base, "patch", "node", name, "--type", "json", "-p", json.dumps(step.ops))
            return step
        except NodeMetaError:
            if attempt == attempts:
                raise
    raise NodeMetaError("no attempt made")


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    kubectl = params["kubectl"]
    binary = kubectl if kubectl.startswith("/") else module.get_bin_path(kubectl, required=True)
    base = [binary, "--kubeconfig", params["kubeconfig"]]
    listed = json.loads(_kubectl(module, base, "get", "nodes", "-o", "json"))
    known = {item["metadata"]["name"] for item in listed.get("items", [])}
    missing = sorted(set(params["nodes"]) - known)
    if missing:
        raise NodeMetaError(f"no Node named {', '.join(missing)} in the cluster: join it first (site.yml joins "
                            "every host of k8s_cluster), or remove it from the inventory")
    changes: dict[str, list[str]] = {}
    diffs = []
    for name in sorted(params["nodes"]):
        desired = Desired.from_params(params["nodes"][name] or {})
        step = reconcile(module, base, name, desired, max(params["attempts"], 1))
        changes[name] = step.summary()
        if step.changed:
            diffs.append({"before_header": f"node/{name}", "after_header": f"node/{name}",
                          "before": diff_text(step.before), "after": diff_text(step.after)})
    result: dict[str, Any] = {"changed": bool(diffs), "nodes": changes}
    if module._diff:
        result["diff"] = diffs
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nodes": {"type": "dict", "required": True},
            "kubeconfig": {"type": "path", "default": "/etc/kubernetes/admin.conf"},
            "kubectl": {"type": "str", "default": "kubectl"},
            "attempts": {"type": "int", "default": 3},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (NodeMetaError, ValueError, KeyError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
