"""Action plugin: read a host's network in one command and plan the nic_rename role's change, on the controller."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

try:
    from kubeboot import nic
    from kubeboot.public_nic import OutputError
except ImportError:  # running from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kubeboot import nic
    from kubeboot.public_nic import OutputError

DOCUMENTATION = """
    name: kubeboot_nic_plan
    short_description: Choose the public NIC and plan its rename, the files to write and the files to remove
    description:
      - Runs one POSIX sh command on the host (C(kubeboot.nic.READ_SCRIPT)) that prints its interfaces
        (C(ip -d -j address show)), default routes, SSH address, kernel and initramfs, and every network configuration
        and kubeboot pinning file; the rest happens on the controller (C(kubeboot.nic.plan_host)). Changes nothing, in
        check mode too. Fails with the plan's one-line error when the public NIC cannot be chosen or renamed safely.
    options:
      name: {description: The name the public NIC gets (public_nic_name)., type: str, required: true}
      mac: {description: MAC of the public NIC; empty chooses by address, then by default route., type: str}
      ansible_host: {description: The address the host is reached on., type: str}
      spare_prefix: {description: Prefix of the name an interface holding I(name) is moved to., type: str}
      udev_rule: {description: Also write a udev rule next to each .link file., type: bool}
      cloud_init_disable: {description: Keep an installed cloud-init from rewriting the network files., type: bool}
      apply: {description: How the rename is applied (reboot or live), for the summary line., type: str}
"""

RETURN = """
    summary: {description: The plan in one line., type: str}
    public: {description: "The public NIC: name, mac, addresses.", type: dict}
    reason: {description: What chose it (public_nic_mac, ansible_host, SSH address or default route)., type: str}
    renames: {description: "Renames in order, a spare move first: [{old, new, mac}].", type: list}
    pins: {description: "Names pinned to MACs by .link files: [{name, mac}].", type: list}
    writes: {description: "Files to write: [{path, content, mode}] (those already right are left out).", type: list}
    removals: {description: Paths to remove (moved ifcfg files, contradicted earlier pins)., type: list}
    kernel: {description: The running kernel., type: str}
    initramfs: {description: Its initramfs when the host has one, else empty., type: str}
    before: {description: "What the verification compares with: addresses, routes (ip -j output).", type: dict}
"""

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "mac": {"type": "str", "default": ""},
    "ansible_host": {"type": "str", "default": ""},
    "spare_prefix": {"type": "str", "default": "kbspare"},
    "udev_rule": {"type": "bool", "default": False},
    "cloud_init_disable": {"type": "bool", "default": True},
    "apply": {"type": "str", "default": "reboot", "choices": ["reboot", "live"]},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = str((task_vars or {}).get("inventory_hostname", "host"))
        read = self._low_level_execute_command(nic.READ_SCRIPT, sudoable=True)
        result["changed"] = False
        if read.get("rc") != 0:
            failure = f"reading the network configuration failed (rc {read.get('rc')}): {nic.last_words(read)}"
            return {**result, "failed": True, "rc": read.get("rc"), "msg": f"{host}: {failure}"}
        try:
            plan = nic.plan_host(host, str(read.get("stdout", "")), target=args["name"], mac=args["mac"] or "",
                                 ansible_host=args["ansible_host"] or "", spare_prefix=args["spare_prefix"],
                                 udev_rule=args["udev_rule"], cloud_init_disable=args["cloud_init_disable"],
                                 apply=args["apply"])
        except nic.NicError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        except OutputError as exc:
            return {**result, "failed": True, "msg": f"{host}: cannot read the host's network: {exc}"}
        result.update(plan)
        result["msg"] = plan["summary"]
        return result
