"""The Vagrant tier itself: VMs come up, Ansible reaches them, their kernel loads modules, and nothing remains after."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kubeboot.vm import host
from tests.vagrant.conftest import HOST_NAME, VM_COUNT, VagrantVMs

pytestmark = [pytest.mark.vagrant, pytest.mark.slow]


def test_vms_answer_ansible(vagrant_vms: VagrantVMs) -> None:
    assert len(vagrant_vms.vms) == VM_COUNT
    result = vagrant_vms.ansible("all", "-m", "ansible.builtin.setup", "-a", "gather_subset=!all,network,virtual")
    for name in vagrant_vms.vms:
        assert f"{name} | SUCCESS" in result.stdout
    facts = vagrant_vms.ansible("all", "-m", "ansible.builtin.setup", "-a", "filter=ansible_default_ipv4")
    addresses = re.findall(r'\baddress"?:\s*"?([0-9.]+)', facts.stdout)  # JSON or YAML result format
    assert sorted(addresses) == sorted(vm.address for vm in vagrant_vms.vms.values())


def test_real_kernel_loads_modules(vagrant_vms: VagrantVMs) -> None:
    for name in vagrant_vms.vms:
        vagrant_vms.ssh(name, "sudo modprobe nfsd")
        modules = vagrant_vms.ssh(name, "cat /proc/modules").stdout
        assert re.search(r"^nfsd ", modules, re.MULTILINE), f"{name}: nfsd is not loaded:\n{modules}"
        kernel = vagrant_vms.ssh(name, "uname -r").stdout.strip()
        assert kernel.endswith("-amd64"), f"{name} runs {kernel}, not a Debian kernel of its own"


def test_apt_proxy_is_set_at_creation(vagrant_vms: VagrantVMs) -> None:
    for name in vagrant_vms.vms:
        conf = vagrant_vms.ssh(name, "cat /etc/apt/apt.conf.d/01kubeboot-proxy").stdout
        assert vagrant_vms.env["KUBEBOOT_APT_PROXY"] in conf


def test_destroy_and_host_down_leave_nothing(vagrant_vms: VagrantVMs) -> None:
    """Runs last in this module: it tears the tier down itself and looks for anything left."""
    state_file = host.state_root() / f"vm-{HOST_NAME}" / "state.json"
    recorded = json.loads(state_file.read_text())["processes"]
    vagrant_vms.destroy()
    removed = host.down(HOST_NAME)
    assert any(item.startswith("network ") for item in removed), removed
    assert host.leftovers(HOST_NAME) == []
    for key, proc in recorded.items():
        cmdline = Path(f"/proc/{proc['pid']}/cmdline")
        alive = cmdline.exists() and proc["marker"] in cmdline.read_bytes().replace(b"\0", b" ").decode()
        assert not alive, f"{key} (pid {proc['pid']}) still runs after `down`"
    assert not Path("/sys/class/net", host.bridge_name(HOST_NAME)).exists()
