#!/usr/bin/python
"""Ansible module: what kubeadm and the pod network left on a node, read only (logic: kubeboot.kubeadm_state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.kubeboot_kubeadm_state import ResetScope, Tools, probe_init, probe_join, probe_reset
except ImportError:  # run from the source tree (unit tests)
    from kubeboot.kubeadm_state import ResetScope, Tools, probe_init, probe_join, probe_reset

DOCUMENTATION = r"""
---
module: kubeboot_kubeadm_state
short_description: Find out what kubeadm, the kubelet and the pod network left on a node
description:
  - Reads (never changes) what kubeadm init and join leave on a node, from one list of kubeadm's files
    (C(/etc/kubernetes/{admin,super-admin,kubelet,bootstrap-kubelet,controller-manager,scheduler}.conf)) and
    directories that count once they hold anything (C(/etc/kubernetes/manifests), C(/etc/kubernetes/pki),
    C(/var/lib/kubelet), C(/var/lib/etcd)), and kubeboot's marker of an init or join it runs
    (C(/etc/kubernetes/kubeboot-init.state) or C(/etc/kubernetes/kubeboot-join.state), which holds C(started) while
    kubeadm runs and C(complete) after it succeeded).
  - With O(purpose=init), the state of the first control plane; an API server whose init kubeboot completed is
    given up to O(api_wait) seconds to answer C(/readyz) through C(/etc/kubernetes/admin.conf).
  - With O(purpose=join), the state of a joining node.
  - With O(purpose=reset), everything a reset removes that is on the node.
  - Always changed=false; runs in check mode too.
options:
  purpose:
    description:
      - C(init) (kubeadm_init), C(join) (kubeadm_join) or C(reset) (node_reset).
    type: str
    required: true
    choices: [init, join, reset]
  api_wait:
    description: With O(purpose=init), seconds to wait for the API server of an init kubeboot completed.
    type: int
    default: 60
  paths:
    description: With O(purpose=reset), files and directories the reset removes; those present are returned.
    type: list
    elements: path
    default: []
  emptied_dirs:
    description: With O(purpose=reset), directories the reset empties; their entries are returned with RV(paths).
    type: list
    elements: path
    default: []
  kubeconfig_copies:
    description:
      - With O(purpose=reset), places of copies of the admin kubeconfig; those that are this cluster's (the same
        file as admin.conf, or the cluster's CA in them) are returned.
    type: list
    elements: path
    default: []
  links:
    description: With O(purpose=reset), names of the pod network's links.
    type: list
    elements: str
    default: []
  link_prefixes:
    description: With O(purpose=reset), links whose names start with one of these are the pod network's too.
    type: list
    elements: str
    default: []
  cri_socket:
    description: With O(purpose=reset), the container runtime's CRI socket (crictl's runtime endpoint).
    type: str
    default: unix:///var/run/containerd/containerd.sock
  runtime_service:
    description: With O(purpose=reset), the container runtime's systemd service.
    type: str
    default: containerd
author: kubeboot
"""

EXAMPLES = r"""
- name: Kubeadm init | Find out whether this node is initialised
  kubeboot_kubeadm_state:
    purpose: init
    api_wait: 60
  register: __kubeadm_init_found

- name: Node reset | Find what Kubernetes and the pod network left here
  kubeboot_kubeadm_state:
    purpose: reset
    paths: [/etc/kubernetes, /var/lib/kubelet, /var/lib/etcd, /var/lib/cni]
    emptied_dirs: [/etc/cni/net.d]
    kubeconfig_copies: [/root/.kube/config]
    links: [cni0, flannel.1]
    link_prefixes: [cali]
  register: __node_reset_found
"""

RETURN = r"""
leftovers:
  description: kubeadm's files and non-empty directories on the node.
  returned: always
  type: list
  elements: str
  sample: [/etc/kubernetes/kubelet.conf, /etc/kubernetes/pki, /var/lib/kubelet]
state:
  description:
    - With O(purpose=init) C(initialised) (the API server answers and no kubeboot init is pending), C(fresh) (no
      leftovers), C(down) (kubeboot completed an init here and the API server does not answer), C(partial) (an init
      kubeboot started here failed half-way) or C(foreign) (leftovers kubeboot did not make, no working API server).
    - With O(purpose=join) C(joined) (kubelet.conf and no kubeboot join pending), C(fresh), C(partial) (a join
      kubeboot started here failed half-way) or C(foreign).
  returned: purpose is init or join
  type: str
marker:
  description: What kubeboot's marker of the init or join says (C(started), C(complete), or empty when there is none).
  returned: purpose is init or join
  type: str
marker_path:
  description: The marker file the role writes C(started) and C(complete) to.
  returned: purpose is init or join
  type: str
  sample: /etc/kubernetes/kubeboot-init.state
api:
  description: Whether the API server answered through admin.conf.
  returned: purpose is init
  type: bool
api_error:
  description: The last line kubectl said when the API server did not answer (empty when it did or was not asked).
  returned: purpose is init
  type: str
kubeadm:
  description: Whether kubeadm is installed.
  returned: purpose is reset
  type: bool
control_plane:
  description: Whether the node has a control plane's static pods (etcd or kube-apiserver).
  returned: purpose is reset
  type: bool
kubelet_unit:
  description: Whether systemd knows the kubelet service.
  returned: purpose is reset
  type: bool
runtime_unit:
  description: Whether systemd knows O(runtime_service).
  returned: purpose is reset
  type: bool
pods:
  description: IDs of the pod sandboxes in the container runtime.
  returned: purpose is reset
  type: list
  elements: str
containers:
  description: IDs of the containers in the container runtime.
  returned: purpose is reset
  type: list
  elements: str
mounts:
  description: Mount points below /var/lib/kubelet and of the pods' network namespaces, deepest first.
  returned: purpose is reset
  type: list
  elements: str
paths:
  description: The O(paths) present, then the entries of the O(emptied_dirs).
  returned: purpose is reset
  type: list
  elements: str
netns:
  description: The pods' network namespaces (/run/netns/cni-*).
  returned: purpose is reset
  type: list
  elements: str
kubeconfig_copies:
  description: The O(kubeconfig_copies) that are this cluster's.
  returned: purpose is reset
  type: list
  elements: str
links:
  description: The pod network's links present (fallback tunnel devices that are down and have no address left out),
    then the links enslaved to them.
  returned: purpose is reset
  type: list
  elements: str
"""

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "purpose": {"type": "str", "required": True, "choices": ["init", "join", "reset"]},
    "api_wait": {"type": "int", "default": 60},
    "paths": {"type": "list", "elements": "path", "default": []},
    "emptied_dirs": {"type": "list", "elements": "path", "default": []},
    "kubeconfig_copies": {"type": "list", "elements": "path", "default": []},
    "links": {"type": "list", "elements": "str", "default": []},
    "link_prefixes": {"type": "list", "elements": "str", "default": []},
    "cri_socket": {"type": "str", "default": "unix:///var/run/containerd/containerd.sock"},
    "runtime_service": {"type": "str", "default": "containerd"},
}
ENV = {"LC_ALL": "C"}
# Where the node's files are; the unit tests point it at a canned tree.
ROOT = "/"


def runner(module: AnsibleModule) -> Any:
    def run(args: Sequence[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(list(args), environ_update=ENV)
        return int(rc), str(out), str(err)

    return run


def tools(module: AnsibleModule, *names: str) -> Tools:
    return Tools(**{name: module.get_bin_path(name) for name in names})


def probe(module: AnsibleModule) -> dict[str, Any]:
    p = module.params
    run = runner(module)
    if p["purpose"] == "init":
        return probe_init(run, tools(module, "kubectl"), max(p["api_wait"], 0), root=ROOT)
    if p["purpose"] == "join":
        return probe_join(root=ROOT)
    scope = ResetScope(paths=p["paths"], emptied_dirs=p["emptied_dirs"], kubeconfig_copies=p["kubeconfig_copies"],
                       links=p["links"], link_prefixes=p["link_prefixes"], cri_socket=p["cri_socket"],
                       runtime_service=p["runtime_service"])
    return probe_reset(run, tools(module, "kubeadm", "crictl", "systemctl", "ip"), scope, root=ROOT)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(changed=False, **probe(module))


if __name__ == "__main__":
    main()
