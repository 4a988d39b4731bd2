"""Fixtures of the Vagrant tier: real VMs (libvirt under QEMU emulation here) with a real kernel.

`vagrant_host` makes sure the offline box exists (`kubeboot vm box`) and brings up the host services
(`kubeboot vm host up`) under their own name and subnet; `vagrant_vms` brings up N VMs with `vagrant up` from
tests/vagrant/Vagrantfile in a run directory and yields their SSH details and an Ansible inventory. Both take down
what they made at the end of the session, also when a test or `vagrant up` fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kubeboot.vm import box, host
from tests.conftest import run_ansible

HERE = Path(__file__).resolve().parent
HOST_NAME = "pytest"  # host services of their own: network kubeboot-vm-pytest, bridge kbvm-pytest
HOST_SUBNET = "10.213.101.0/24"  # not the default 10.213.100.0/24, so a manual `kubeboot vm host up` can coexist
VM_COUNT = int(os.environ.get("KUBEBOOT_VAGRANT_VMS", "2"))  # at most 2 here: 2 shared cores, TCG
UP_TIMEOUT = 2400
TOOLS = ("vagrant", "virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "debootstrap", "apt-cacher-ng")


def vagrant_unavailable() -> str | None:
    """Why the Vagrant tier cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the Vagrant tier needs root (libvirtd, networks, the box build)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"the Vagrant tier needs {tool}: run scripts/setup.sh"
    if "vagrant-libvirt" not in subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                                               check=False).stdout:
        return "the Vagrant tier needs the vagrant-libvirt plugin (Debian package vagrant-libvirt)"
    return None


@dataclass
class VM:
    name: str
    address: str
    port: int
    user: str
    key_file: str


@dataclass
class VagrantVMs:
    """VMs brought up by `vagrant up` in `workdir`; `env` is what every vagrant call there needs."""

    workdir: Path
    env: dict[str, str]
    inventory: Path
    vms: dict[str, VM] = field(default_factory=dict)
    up_seconds: float = 0.0
    destroyed: bool = False

    def vagrant(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["vagrant", *args], cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"vagrant {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-3000:]}")
        return result

    def ssh(self, name: str, command: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        vm = self.vms[name]
        argv = ["ssh", "-i", vm.key_file, "-p", str(vm.port), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                f"{vm.user}@{vm.address}", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {name} {command!r} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ansible(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_ansible("ansible", "-i", str(self.inventory), *args, check=check, timeout=timeout)

    def playbook(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return run_ansible("ansible-playbook", "-i", str(self.inventory), *args, check=check, timeout=timeout)

    def destroy(self) -> None:
        if not self.destroyed:
            self.vagrant("destroy", "--force", check=False, timeout=900)
            self.destroyed = True


def parse_ssh_config(text: str) -> dict[str, VM]:
    vms: dict[str, VM] = {}
    current: dict[str, str] = {}
    for line in [*text.splitlines(), "Host __end__"]:
        words = line.strip().split(None, 1)
        if len(words) != 2:
            continue
        key, value = words[0], words[1].strip('"')
        if key == "Host":
            if current:
                vms[current["Host"]] = VM(name=current["Host"], address=current["HostName"],
                                          port=int(current.get("Port", "22")), user=current.get("User", "vagrant"),
                                          key_file=current["IdentityFile"])
            current = {}
        current[key] = value
    return vms


def write_inventory(path: Path, vms: dict[str, VM]) -> None:
    hosts = {
        vm.name: {
            "ansible_host": vm.address, "ansible_port": vm.port, "ansible_user": vm.user,
            "ansible_ssh_private_key_file": vm.key_file, "ansible_become": True,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }
        for vm in vms.values()
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=True))


@pytest.fixture(scope="session")
def vagrant_host() -> Iterator[host.HostInfo]:
    reason = vagrant_unavailable()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    result = box.ensure_box()
    how = f"built in {result.build_seconds:.0f}s" if result.build_seconds else "cached"
    print(f"\nvagrant tier: box {result.path.name} ({how})")
    try:
        info = host.up(HOST_NAME, HOST_SUBNET, standin=True)
        print(f"vagrant tier: host services up in {time.monotonic() - started:.0f}s ({', '.join(info.started)})")
        yield info
    finally:
        host.down(HOST_NAME)


@pytest.fixture(scope="session")
def vagrant_vms(vagrant_host: host.HostInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VagrantVMs]:
    workdir = tmp_path_factory.mktemp("vagrant")
    shutil.copyfile(HERE / "Vagrantfile", workdir / "Vagrantfile")
    env = {**os.environ, **vagrant_host.env(), "KUBEBOOT_VM_COUNT": str(VM_COUNT),
           "KUBEBOOT_VM_CONSOLE_DIR": str(workdir), "VAGRANT_CWD": str(workdir)}
    vms = VagrantVMs(workdir=workdir, env=env, inventory=workdir / "hosts.yml")
    try:
        started = time.monotonic()
        vms.vagrant("up", timeout=UP_TIMEOUT)
        vms.up_seconds = time.monotonic() - started
        print(f"vagrant tier: {VM_COUNT} VMs up in {vms.up_seconds:.0f}s")
        vms.vms = parse_ssh_config(vms.vagrant("ssh-config").stdout)
        write_inventory(vms.inventory, vms.vms)
        yield vms
    finally:
        vms.destroy()
