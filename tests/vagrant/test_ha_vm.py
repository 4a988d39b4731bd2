"""The HA pieces that need a real kernel, on the two VMs of the Vagrant tier (both control planes of one inventory).

- IPVS: playbooks/ipvs_check.yml passes here (check mode, nothing loaded), and the os_prep role with kube_proxy_mode
  ipvs loads the ip_vs modules now and at boot and installs ipvsadm and ipset; tests/sandbox/test_ipvs.py shows the
  refusal on a kernel without IPVS.
- The VIP: playbooks/api_endpoint.yml installs keepalived and haproxy on both; the VIP (a free address of the VMs'
  network, outside libvirt's DHCP range) sits on one VM and moves to the other when keepalived stops there, and
  back when haproxy stops on the new holder (the health check), within a bounded wait.

At the end keepalived and haproxy are stopped and disabled again, so the VIP does not outlive the module.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import recap, run_ansible, task_results
from tests.vagrant.conftest import HOST_SUBNET, VagrantVMs

# No reruns: the tests follow one VIP through its moves, which a rerun cannot repeat.
pytestmark = [pytest.mark.vagrant, pytest.mark.slow, pytest.mark.flaky(reruns=0)]

# An address of the VMs' network outside libvirt's DHCP range (.100-.199) and not test_nfs.py's spare (.250).
VIP = str(ipaddress.ip_network(HOST_SUBNET).network_address + 240)
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_wlc", "nf_conntrack")
MODULES_FILE = "/etc/modules-load.d/kubernetes.conf"
OS_PREP = str(Path(__file__).resolve().parent / "playbooks" / "os_prep.yml")
# keepalived: adverts every second, a backup takes over about three adverts after the last one; the health check
# runs every second and gives the VIP up after two failures. Emulated VMs are slow: room for that, still bounded.
MOVE_TIMEOUT = 30


@dataclass
class Lab:
    vms: VagrantVMs
    inventory: Path
    first: str
    second: str
    nic: str  # the NIC of the VMs' network (the default route's), which carries the VIP

    def root(self, name: str, command: str, check: bool = True) -> Any:
        quoted = command.replace("'", "'\\''")
        return self.vms.ssh(name, f"sudo sh -c '{quoted}'", check=check)

    def playbook(self, *args: str, check: bool = True) -> Any:
        return run_ansible("ansible-playbook", "-i", str(self.inventory), *args, check=check, timeout=2400)

    def holds_vip(self, name: str) -> bool:
        data = json.loads(self.vms.ssh(name, f"ip -j -4 address show dev {self.nic}").stdout)
        return any(a.get("local") == VIP and a.get("prefixlen") == 32
                   for link in data for a in link.get("addr_info", []))

    def holders(self) -> list[str]:
        return [name for name in (self.first, self.second) if self.holds_vip(name)]

    def loaded_modules(self, name: str) -> set[str]:
        return {line.split()[0] for line in self.vms.ssh(name, "cat /proc/modules").stdout.splitlines()}


def wait_for_holder(lab: Lab, name: str | None, timeout: float = MOVE_TIMEOUT) -> float:
    """Seconds until `name` (None: either VM), and only it, holds the VIP."""
    started = time.monotonic()
    while True:
        holders = lab.holders()
        if holders == [name] or (name is None and len(holders) == 1):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            journal = {vm: lab.root(vm, "journalctl -u keepalived -n 15 --no-pager -q", check=False).stdout
                       for vm in (lab.first, lab.second)}
            raise AssertionError(f"after {timeout}s the VIP {VIP} is on {holders or 'no VM'}, not on {name}: "
                                 f"{journal}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def lab(vagrant_vms: VagrantVMs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if len(vagrant_vms.vms) < 2:
        pytest.skip("needs two VMs")
    first, second = sorted(vagrant_vms.vms)[:2]
    route = json.loads(vagrant_vms.ssh(first, "ip -j route show default").stdout)
    nic = route[0]["dev"]
    connection = yaml.safe_load(vagrant_vms.inventory.read_text())["all"]["hosts"]
    inventory = tmp_path_factory.mktemp("ha-inventory") / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "children": {
            "kube_control_plane": {"hosts": {name: connection[name] for name in (first, second)}},
            "k8s_cluster": {"children": {"kube_control_plane": None}},
        },
        "vars": {
            "kube_proxy_mode": "ipvs", "public_nic_name": nic, "kube_control_plane_lb": "keepalived",
            "kube_control_plane_vip": VIP, "kube_control_plane_vip_unicast": True,
        },
    }}, sort_keys=False))
    made = Lab(vms=vagrant_vms, inventory=inventory, first=first, second=second, nic=nic)
    try:
        yield made
    finally:
        for name in (first, second):
            made.root(name, "systemctl disable --now keepalived haproxy 2>/dev/null; "
                            f"ip address del {VIP}/32 dev {nic} 2>/dev/null; true", check=False)


@pytest.fixture(scope="module")
def prepared(lab: Lab) -> str:
    """os_prep with kube_proxy_mode ipvs on both VMs, after the IPVS check; the run's output."""
    started = time.monotonic()
    result = lab.playbook(OS_PREP)
    print(f"\nha vm: os_prep (ipvs) took {time.monotonic() - started:.0f}s")
    return str(result.stdout)


@pytest.fixture(scope="module")
def endpoint(lab: Lab, prepared: str) -> str:
    """playbooks/api_endpoint.yml on both VMs; the run's output."""
    started = time.monotonic()
    result = lab.playbook("playbooks/api_endpoint.yml")
    print(f"\nha vm: api_endpoint.yml took {time.monotonic() - started:.0f}s")
    return str(result.stdout)


def test_ipvs_check_passes_on_a_real_kernel_in_check_mode_and_loads_nothing(lab: Lab) -> None:
    for name in (lab.first, lab.second):
        assert "ip_vs" not in lab.loaded_modules(name)
    started = time.monotonic()
    result = lab.playbook("playbooks/ipvs_check.yml", "--check", check=False)
    print(f"\nha vm: ipvs_check.yml --check took {time.monotonic() - started:.0f}s")
    assert result.returncode == 0, task_results(result.stdout, ("fatal", "failed"))
    counts = recap(result.stdout)
    for name in (lab.first, lab.second):
        assert counts[name]["failed"] == 0 and counts[name]["changed"] == 0, counts
        assert f"ok: [{name}]" in result.stdout.split("TASK [IPVS | The kernel has ip_vs]")[1]
        # It only looked: still not loaded.
        assert "ip_vs" not in lab.loaded_modules(name)
        assert lab.vms.ssh(name, "test -e /sys/module/ip_vs", check=False).returncode != 0


def test_os_prep_loads_the_ipvs_modules_and_installs_the_tools(lab: Lab, prepared: str) -> None:
    assert all(c["failed"] == 0 for c in recap(prepared).values())
    for name in (lab.first, lab.second):
        assert set(IPVS_MODULES) <= lab.loaded_modules(name)
        listed = lab.vms.ssh(name, f"cat {MODULES_FILE}").stdout.split()
        assert set(IPVS_MODULES) <= set(listed)
        packages = lab.vms.ssh(name, "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' ipvsadm ipset").stdout
        assert sorted(line.split()[:2] for line in packages.splitlines()) == [["ipset", "ii"], ["ipvsadm", "ii"]]
        table = lab.root(name, "ipvsadm -Ln").stdout
        assert table.startswith("IP Virtual Server version"), table
        assert lab.vms.ssh(name, "test -e /proc/net/ip_vs").returncode == 0


def test_api_endpoint_installs_keepalived_and_haproxy_with_nonlocal_bind(lab: Lab, endpoint: str) -> None:
    counts = recap(endpoint)
    assert all(counts[name]["failed"] == 0 for name in (lab.first, lab.second)), counts
    for name in (lab.first, lab.second):
        assert lab.vms.ssh(name, "cat /proc/sys/net/ipv4/ip_nonlocal_bind").stdout.strip() == "1"
        assert "net.ipv4.ip_nonlocal_bind" in lab.root(name, "cat /etc/sysctl.d/90-kubeboot-vip.conf").stdout
        services = lab.vms.ssh(name, "systemctl is-active keepalived haproxy", check=False).stdout.split()
        assert services == ["active", "active"]
        # haproxy binds the VIP on both, also where the VIP is not (non-local bind).
        assert f"{VIP}:8443" in lab.root(name, "ss -Hltn").stdout
    # Both healthy: one of them holds the VIP (which one depends on whose keepalived became ready first).
    wait_for_holder(lab, None)


def test_vip_moves_when_keepalived_stops_and_when_haproxy_stops(lab: Lab, endpoint: str) -> None:
    # From a known start: keepalived on the first VM alone takes the VIP; the second, started after, stays backup.
    for name in (lab.first, lab.second):
        lab.root(name, "systemctl stop keepalived")
    assert lab.holders() == []
    lab.root(lab.first, "systemctl start keepalived")
    took = wait_for_holder(lab, lab.first)
    print(f"\nha vm: VIP {VIP} on {lab.first} {took:.1f}s after keepalived started there")
    lab.root(lab.second, "systemctl start keepalived")
    time.sleep(8)
    assert lab.holders() == [lab.first]

    # keepalived stops on the holder: the other VM takes the VIP over.
    lab.root(lab.first, "systemctl stop keepalived")
    took = wait_for_holder(lab, lab.second)
    print(f"ha vm: VIP moved {lab.first} -> {lab.second} {took:.1f}s after keepalived stopped on {lab.first}")
    assert took < MOVE_TIMEOUT

    # Back up, the first VM does not take it back (nopreempt) ...
    lab.root(lab.first, "systemctl start keepalived")
    time.sleep(8)
    assert lab.holders() == [lab.second]

    # ... until haproxy stops on the holder: its health check fails and the VIP goes back.
    lab.root(lab.second, "systemctl stop haproxy")
    took = wait_for_holder(lab, lab.first)
    print(f"ha vm: VIP moved {lab.second} -> {lab.first} {took:.1f}s after haproxy stopped on {lab.second}")
    assert took < MOVE_TIMEOUT
    assert "FAULT" in lab.root(lab.second, "journalctl -u keepalived -n 30 --no-pager -q").stdout


def test_the_ipvs_modules_load_again_at_boot(lab: Lab, prepared: str) -> None:
    """Runs last: the second VM reboots, and systemd-modules-load loads the modules from MODULES_FILE."""
    before = lab.vms.ssh(lab.second, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    started = time.monotonic()
    run_ansible("ansible", "-i", str(lab.inventory), lab.second, "-m", "ansible.builtin.reboot", "-a",
                "reboot_timeout=600", timeout=900)
    print(f"\nha vm: {lab.second} rebooted in {time.monotonic() - started:.0f}s")
    assert lab.vms.ssh(lab.second, "cat /proc/sys/kernel/random/boot_id").stdout.strip() != before
    assert set(IPVS_MODULES) <= lab.loaded_modules(lab.second)
    assert lab.root(lab.second, "ipvsadm -Ln").stdout.startswith("IP Virtual Server version")
