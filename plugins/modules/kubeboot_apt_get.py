#!/usr/bin/python
"""Ansible module: one apt-get transaction (read the lists when due, then install), each call under a time limit."""

from __future__ import annotations

import glob
import os
import re
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: kubeboot_apt_get
short_description: Install Debian packages in one apt-get transaction, without python3-apt
description:
  - Reads the package lists first when O(update_cache) is set, when there are none, or when they are older than
    O(cache_valid_time); then installs every package of O(name) in one C(apt-get install).
  - Each apt-get call is stopped after O(timeout) seconds (a stalled mirror or proxy), and the module fails naming it.
  - Runs as one plain call on the node (no async job to poll), so a node lost in the middle fails at once instead of
    being polled until the job's time limit.
  - Needs no python3-apt. Reports changed when apt-get upgraded, installed, downgraded or removed a package; in check
    mode the install is simulated (C(apt-get -s)); when the lists would be read first, it is reported as due
    without a simulation.
options:
  name:
    description: Packages, each a name or C(name=version).
    type: list
    elements: str
    required: true
  update_cache:
    description: Read the package lists before installing.
    type: bool
    default: false
  cache_valid_time:
    description: Read the lists when the newest was read more than this many seconds ago (0 only when there are none).
    type: int
    default: 0
  allow_downgrade:
    description: Let apt-get install an older version than the installed one.
    type: bool
    default: false
  allow_change_held_packages:
    description: Let apt-get change packages that are on hold.
    type: bool
    default: false
  timeout:
    description: Seconds each apt-get call may take before it is stopped.
    type: int
    default: 900
author: kubeboot
"""

EXAMPLES = r"""
- name: Install kubeadm and the kubelet at one version
  kubeboot_apt_get:
    name: [kubeadm=1.33.1-1.1, kubelet=1.33.1-1.1]
    update_cache: true
    allow_change_held_packages: true
"""

RETURN = r"""
cache_updated:
  description: Whether the package lists were read.
  returned: always
  type: bool
stdout:
  description: What apt-get install printed.
  returned: always
  type: str
"""

LISTS = "/var/lib/apt/lists"
ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
# apt-get's summary line when it did nothing ("downgraded" and "reinstalled" appear only when not 0).
NOTHING_DONE = re.compile(r"\b0 upgraded, 0 newly installed, 0 to remove\b")


def lists_due(lists: str, update_cache: bool, valid: int, now: float) -> bool:
    """Whether to read the package lists: asked for, none there, or the newest older than `valid` seconds."""
    found = glob.glob(os.path.join(lists, "*_Packages*"))
    if update_cache or not found:
        return True
    return valid > 0 and now - max(os.stat(path).st_mtime for path in found) > valid


def install_args(names: list[str], *, downgrade: bool, held: bool, simulate: bool) -> list[str]:
    args = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
    args += ["--allow-downgrades"] if downgrade else []
    args += ["--allow-change-held-packages"] if held else []
    args += ["-s"] if simulate else []
    return [*args, "install", *names]


def changed(output: str) -> bool:
    return NOTHING_DONE.search(output) is None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "list", "elements": "str", "required": True},
            "update_cache": {"type": "bool", "default": False},
            "cache_valid_time": {"type": "int", "default": 0},
            "allow_downgrade": {"type": "bool", "default": False},
            "allow_change_held_packages": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 900},
        },
        supports_check_mode=True,
    )
    params: dict[str, Any] = module.params
    limit = params["timeout"]
    stop = [module.get_bin_path("timeout", required=True), "-k", "10", str(limit)]

    def apt_get(args: list[str]) -> str:
        rc, out, err = module.run_command(stop + args, environ_update=ENV)
        if rc in (124, 137):
            module.fail_json(msg=f"{' '.join(args[:3])}... did not finish within {limit}s (timeout); the mirror or "
                                 "proxy may be stalled", rc=rc, stdout=out, stderr=err)
        if rc != 0:
            detail = " ".join((err.strip() or out.strip()).splitlines()[-3:])
            module.fail_json(msg=f"{' '.join(args)} failed (rc {rc}): {detail}", rc=rc, stdout=out, stderr=err)
        return str(out)

    due = lists_due(LISTS, params["update_cache"], params["cache_valid_time"], time.time())
    if due and module.check_mode:  # the lists are not read in check mode, so what they would offer is not known
        module.exit_json(changed=True, cache_updated=False, stdout="")
    if due:
        apt_get(["apt-get", "-q", "update"])
    out = apt_get(install_args(params["name"], downgrade=params["allow_downgrade"],
                               held=params["allow_change_held_packages"], simulate=module.check_mode))
    module.exit_json(changed=changed(out), cache_updated=due, stdout=out)


if __name__ == "__main__":
    main()
