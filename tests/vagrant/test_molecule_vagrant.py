"""The Vagrant molecule scenarios on real VMs, run as an operator runs them: `molecule test -s vagrant|nfs_server`.

Two VMs from the offline box on the Vagrant tier's own host services, which also serve the stand-in's packages
(KUBEBOOT_VM_VARS): destroy, syntax, create, prepare, converge site.yml (the public NIC renamed to eth0 by a real
reboot, the cluster, the NFS export and volume), idempotence (changed=0), verify (the rename, the nodes, the pod
network, the volume, a root-owned file written over NFSv4 from the worker), destroy. The module runs before the
tier's other modules (their VMs come up after it) and leaves no VM behind: the scenario destroys its own.
`nfs_server`: the role alone on one VM (converge, idempotence, check mode, verify: an NFSv4.2 mount from the VM's own
address where root writes as root, NFSv3 and a non-client address refused).
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import time

import pytest

from kubeboot.vm import host
from tests.conftest import molecule_test
from tests.vagrant.conftest import HOST_SUBNET

pytestmark = [pytest.mark.vagrant, pytest.mark.slow, pytest.mark.flaky(reruns=0)]

TIMEOUT = 3600


def test_scenario_passes_every_action(vagrant_host: host.HostInfo) -> None:
    assert vagrant_host.vars_file, "the host services do not serve the stand-in (KUBEBOOT_VM_VARS)"
    subnet = ipaddress.ip_network(HOST_SUBNET)
    env = {**os.environ, **vagrant_host.env(),
           "KUBEBOOT_MOLECULE_VM1_ADDRESS": str(subnet.network_address + 11),
           "KUBEBOOT_MOLECULE_VM2_ADDRESS": str(subnet.network_address + 12)}
    started = time.monotonic()
    output = molecule_test("vagrant", env, timeout=TIMEOUT)
    print(f"\nvagrant tier: molecule test -s vagrant took {time.monotonic() - started:.0f}s")
    # converge renamed the public NIC by a real reboot on both VMs (the idempotence run then skips it); the task's
    # lines run to the next blank line (mitogen may warn there as it drops a rebooted VM's connection)
    reboots = re.search(r"TASK \[nic_rename : NIC rename \| Reboot with the new names\][^\n]*\n((?:.+\n)+)", output)
    assert reboots, output[-3000:]
    assert sorted(re.findall(r"^changed: \[(\w+)\]", reboots.group(1), re.MULTILINE)) == ["vm1", "vm2"], \
        reboots.group(0)
    no_domain_left(vagrant_host, output)


def test_nfs_server_scenario_passes_every_action(vagrant_host: host.HostInfo) -> None:
    started = time.monotonic()
    output = molecule_test("nfs_server", {**os.environ, **vagrant_host.env()}, timeout=TIMEOUT)
    print(f"\nvagrant tier: molecule test -s nfs_server took {time.monotonic() - started:.0f}s")
    # converge installed the server (the idempotence run then finds it installed)
    assert re.search(r"TASK \[nfs_server : NFS server \| Install the server packages \(Debian/Ubuntu\)\][^\n]*\n"
                     r"(?:[^\n]*\n){0,2}?changed: \[nfs1\]", output), output[-3000:]
    no_domain_left(vagrant_host, output)


def no_domain_left(info: host.HostInfo, output: str) -> None:
    """destroy left no VM of the scenario behind (libvirt may take a moment to undefine a domain it just stopped)."""
    deadline = time.monotonic() + 120
    while left := domains(info):
        assert time.monotonic() < deadline, f"left after destroy: {left}\n{output[-3000:]}"
        time.sleep(5)


def domains(info: host.HostInfo) -> list[str]:
    names = subprocess.run(["virsh", "-q", "-c", info.libvirt_uri, "list", "--all", "--name"],
                           capture_output=True, text=True, check=True).stdout.split()
    return [name for name in names if name.startswith("kubeboot-molecule-")]
