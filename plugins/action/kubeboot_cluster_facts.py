"""Action plugin: the values derived from the inventory for this host, worked out once on the controller as facts."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

try:
    from kubeboot import derived
except ImportError:  # running from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kubeboot import derived

DOCUMENTATION = """
    name: kubeboot_cluster_facts
    short_description: The values kubeboot derives from the inventory, as facts of this host
    description:
      - Works out, on the controller and without contacting the host, what the playbooks need beyond the inventory's
        own settings (kubeboot.derived), and sets them as the facts C(kubeboot_node) and C(kubeboot_cluster).
      - C(kubeboot_node) has the node's C(name), C(address) (node_ip, else ansible_host, else its name), C(roles)
        (control_plane, worker), C(public_nic) (public_nic_name when the node has it, else the NIC of its default
        route; from its gathered facts), C(etc_hosts) (the control planes and the node itself), C(package_repo_url),
        C(pause_image), and for kube_control_plane_lb keepalived C(vip_interface) (kube_control_plane_vip_interface,
        else public_nic_name) and C(vip_priority) (200 for the first control plane, one less for each next one, 0
        for a node that is no control plane).
      - C(kubeboot_cluster) has C(first_control_plane), C(endpoint) (with kube_control_plane_lb keepalived the VIP
        and kube_control_plane_lb_port; else kube_control_plane_endpoint, else the first control plane's address and
        kube_apiserver_port), C(dns_address), C(node_cidr_mask_size) (kube_node_cidr_mask_size, else its alias
        flannel_subnet_len, else 24 or 64), C(cni_iface), C(nodes_without_public_nic), C(public_nic_name),
        C(vip_router_id) (kube_control_plane_vip_router_id, else the VIP's last octet, 255 for 0) and
        C(control_planes) (each control plane's C(name) and C(address), in inventory order).
      - Warns (on the first cluster node) when some cluster nodes have no NIC named public_nic_name (the pod network
        then uses each node's default route).
      - With C(host), works them out for that host instead. A loop over the play's hosts with C(delegate_to),
        C(delegate_facts) and C(run_once) is then one task on the controller for the whole cluster, which reads each
        host's variables once for all the loop's items.
    options:
      host:
        description: The inventory host to work the values out for; the task's own host when not given.
        type: str
"""

display = Display()


class _ReadOnce(Mapping[str, Any]):
    """Each host's variables read from hostvars once (HostVars works them out again at every access)."""

    def __init__(self, hostvars: Mapping[str, Any]) -> None:
        self._hostvars = hostvars
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._read:
            self._read[name] = self._hostvars[name]
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hostvars)

    def __len__(self) -> int:
        return len(self._hostvars)


# The hostvars as read for one task (its loop items share them), by the task's id: a process that ran an earlier task
# (a NIC rename since) never reuses what that task read.
_READ: dict[str, _ReadOnce] = {}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset({"host"})

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        name = str(self._task.args.get("host") or task_vars["inventory_hostname"])
        hostvars = task_vars.get("hostvars") or {}
        task = str(self._task._uuid)
        if task not in _READ:
            _READ.clear()
            _READ[task] = _ReadOnce(hostvars)
        hostvars = _READ[task]
        groups = task_vars.get("groups") or {}
        values = derived.node_facts(name, hostvars, groups)
        lacking = values["cluster"]["nodes_without_public_nic"]
        if lacking and name == next(iter(groups.get("k8s_cluster", [])), name):  # once, on the first node
            display.warning(f"{', '.join(lacking)}: no NIC named {values['cluster']['public_nic_name']} "
                            "(public_nic_name): the pod network uses each node's default-route NIC; run "
                            "playbooks/nic_rename.yml -e nic_rename_confirm=true to name them")
        facts = {"kubeboot_node": values["node"], "kubeboot_cluster": values["cluster"]}
        result.update(changed=False, ansible_facts=facts)
        return result
