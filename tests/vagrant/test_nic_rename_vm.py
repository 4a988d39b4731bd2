"""The nic_rename role on real VMs: udev applies the `.link` file at a real boot, and the watchdog reverts by itself.

Each VM gets a second NIC hot-plugged on the test network with a static address (systemd-networkd, the way Vagrant
configures a private network on this box): that NIC is the public one, and the role's inventory reaches the VM
through its address, so the role chooses it by `ansible_host`. Vagrant's management NIC is never touched, and the
fixture's ssh() keeps watching each VM through it whatever happens to the public NIC.

- vm2: the public NIC is renamed to eth0 by reboot (the default method) and confirmed; a second run changes nothing.
- vm1: a stale networkd file for eth0 (`Unmanaged=yes`) leaves the renamed NIC without its address after the reboot,
  so the controller cannot reach it to confirm; the VM's watchdog restores the saved files after
  nic_rename_confirm_timeout, reboots by itself and comes back under its old name, and the role fails saying so.

The two runs go in parallel, one ansible-playbook each. At the end the hot-plugged NICs and the files are removed again.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import recap, run_ansible
from tests.vagrant.conftest import HOST_SUBNET, VagrantVMs

# No reruns: the tests read the outcome of one rename run, which a rerun cannot repeat.
pytestmark = [pytest.mark.vagrant, pytest.mark.slow, pytest.mark.flaky(reruns=0)]

PLAYBOOK = "playbooks/nic_rename.yml"
STATE = "/var/lib/kubeboot/nic_rename"
NETWORK_DIR = "/etc/systemd/network"
PUBLIC_FILE = f"{NETWORK_DIR}/50-public.network"
HOLD_FILE = f"{NETWORK_DIR}/05-kbtest-hold.network"
STALE_FILE = f"{NETWORK_DIR}/05-kbtest-stale-eth0.network"
LINK_FILE = f"{NETWORK_DIR}/10-kubeboot-eth0.link"
BROKEN, GOOD = "vm1", "vm2"
BROKEN_CONFIRM_TIMEOUT = 90
BROKEN_REBOOT_TIMEOUT = 300
GOOD_CONFIRM_TIMEOUT = 600  # room for Ansible's slow round trips under emulation after the reboot
# The box's initramfs holds most modules (MODULES=most): rebuilding it takes minutes under QEMU emulation, so only
# vm2 refreshes it (the default), and proves that path; vm1 keeps it, so that its watchdog's revert is quick.


@dataclass
class PublicNic:
    vm: str
    domain: str
    mac: str
    address: str  # address/prefix
    name: str = ""  # its name before the rename
    plugged: bool = False


def flat(output: str) -> str:
    return " ".join(output.split())


def virsh(vms: VagrantVMs, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["virsh", "-q", "-c", vms.env.get("LIBVIRT_DEFAULT_URI", "qemu:///system"), *args],
                            capture_output=True, text=True, timeout=180, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def domain_of(vms: VagrantVMs, name: str) -> str:
    uuid = (vms.workdir / ".vagrant" / "machines" / name / "libvirt" / "id").read_text().strip()
    return virsh(vms, "domname", uuid).stdout.strip()


def links(vms: VagrantVMs, name: str) -> dict[str, dict[str, Any]]:
    """Interface name -> {mac, addresses (global)} on the VM."""
    data = json.loads(vms.ssh(name, "ip -j address show").stdout)
    return {i["ifname"]: {"mac": i.get("address", ""),
                          "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in i.get("addr_info", [])
                                              if a.get("scope") == "global")} for i in data}


def name_of(vms: VagrantVMs, vm: str, mac: str) -> str | None:
    return next((name for name, link in links(vms, vm).items() if link["mac"] == mac), None)


def default_routes(vms: VagrantVMs, name: str) -> list[tuple[str, str]]:
    routes = json.loads(vms.ssh(name, "ip -j route show default").stdout)
    return sorted((r["dev"], r.get("gateway", "")) for r in routes)


def boot_id(vms: VagrantVMs, name: str) -> str:
    return vms.ssh(name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def wait_for(what: str, check: Any, timeout: float = 120, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def plug(vms: VagrantVMs, nic: PublicNic) -> None:
    """Hot-plug the public NIC and give it its static address; networkd leaves it alone until the file names it."""
    vms.ssh(nic.vm, f"printf '[Match]\\nMACAddress={nic.mac}\\n\\n[Link]\\nUnmanaged=yes\\n' | sudo tee {HOLD_FILE} "
                    ">/dev/null && sudo networkctl reload")
    nic.plugged = True
    virsh(vms, "attach-interface", "--domain", nic.domain, "--type", "network",
          "--source", vms.env["KUBEBOOT_VM_NETWORK"], "--mac", nic.mac, "--model", "virtio", "--live", "--config")
    nic.name = wait_for(f"{nic.vm} to see its new NIC {nic.mac}", lambda: name_of(vms, nic.vm, nic.mac))
    config = (f"# The public NIC: a static address on the private network.\n[Match]\nName={nic.name}\n\n"
              f"[Network]\nDHCP=no\nAddress={nic.address}\n")
    vms.ssh(nic.vm, f"printf '{config}' | sudo tee {PUBLIC_FILE} >/dev/null && sudo rm {HOLD_FILE} && "
                    f"sudo networkctl reload && sudo networkctl reconfigure {nic.name}")
    wait_for(f"{nic.vm}: {nic.address} on {nic.name}",
             lambda: links(vms, nic.vm)[nic.name]["addresses"] == [nic.address], timeout=60)


def unplug(vms: VagrantVMs, nic: PublicNic) -> None:
    """Remove the NIC and every file the test or the role wrote for it (best effort: runs after failures too)."""
    if not nic.plugged:
        return
    nic.plugged = False
    vms.ssh(nic.vm, f"sudo rm -f {PUBLIC_FILE} {HOLD_FILE} {STALE_FILE} {LINK_FILE} && "
                    "sudo networkctl reload",
            check=False)
    virsh(vms, "detach-interface", "--domain", nic.domain, "--type", "network", "--mac", nic.mac, "--live",
          "--config", check=False)
    try:
        wait_for(f"{nic.vm} to lose {nic.mac}", lambda: name_of(vms, nic.vm, nic.mac) is None, timeout=90)
    except AssertionError:
        name = name_of(vms, nic.vm, nic.mac)
        if name:  # the guest did not let the NIC go: at least take its address away
            vms.ssh(nic.vm, f"sudo ip address flush dev {name} scope global; sudo ip link set dev {name} down",
                    check=False)


def write_inventory(path: Path, vms: VagrantVMs, nics: dict[str, PublicNic]) -> None:
    hosts: dict[str, dict[str, Any]] = {}
    for name, nic in nics.items():
        vm = vms.vms[name]
        hosts[name] = {
            "ansible_host": nic.address.split("/")[0], "ansible_user": vm.user,
            "ansible_ssh_private_key_file": vm.key_file, "ansible_become": True,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }
    hosts[BROKEN]["nic_rename_confirm_timeout"] = BROKEN_CONFIRM_TIMEOUT
    hosts[BROKEN]["nic_rename_reboot_timeout"] = BROKEN_REBOOT_TIMEOUT
    hosts[BROKEN]["nic_rename_refresh_initramfs"] = False
    hosts[GOOD]["nic_rename_confirm_timeout"] = GOOD_CONFIRM_TIMEOUT
    path.write_text(yaml.safe_dump({"all": {"children": {"k8s_cluster": {"hosts": hosts}}}}, sort_keys=True))


@dataclass
class Before:
    boot_id: str
    links: dict[str, dict[str, Any]]
    routes: list[tuple[str, str]]
    public_file: str
    boots: int


@dataclass
class Outcome:
    nics: dict[str, PublicNic]
    before: dict[str, Before]
    first: dict[str, subprocess.CompletedProcess[str]]  # per VM: the two runs go in parallel, each on its own
    first_seconds: dict[str, float]
    inventory: Path


def boots(vms: VagrantVMs, name: str) -> int:
    return len(vms.ssh(name, "sudo journalctl --list-boots --no-pager -q").stdout.strip().splitlines())


@pytest.fixture(scope="module")
def outcome(vagrant_vms: VagrantVMs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    if set(vagrant_vms.vms) < {BROKEN, GOOD}:
        pytest.skip(f"needs the VMs {BROKEN} and {GOOD}")
    subnet = ipaddress.ip_network(HOST_SUBNET)
    nics = {name: PublicNic(vm=name, domain=domain_of(vagrant_vms, name), mac=f"52:54:00:6b:62:{i:02x}",
                            address=f"{subnet[10 + i]}/{subnet.prefixlen}")
            for i, name in enumerate((BROKEN, GOOD), start=1)}
    try:
        started = time.monotonic()
        for nic in nics.values():
            plug(vagrant_vms, nic)
        print(f"\nnic_rename vm: public NICs plugged in {time.monotonic() - started:.0f}s: "
              + ", ".join(f"{n.vm} {n.name} {n.mac} {n.address}" for n in nics.values()))
        # The deliberate fault: eth0 is left unmanaged, so the renamed NIC comes up without its address.
        stale = "# A stale configuration: eth0 is not managed here.\n[Match]\nName=eth0\n\n[Link]\nUnmanaged=yes\n"
        vagrant_vms.ssh(BROKEN, f"printf '{stale}' | sudo tee {STALE_FILE} >/dev/null")
        before = {name: Before(boot_id=boot_id(vagrant_vms, name), links=links(vagrant_vms, name),
                               routes=default_routes(vagrant_vms, name),
                               public_file=vagrant_vms.ssh(name, f"cat {PUBLIC_FILE}").stdout,
                               boots=boots(vagrant_vms, name)) for name in nics}
        inventory = tmp_path_factory.mktemp("nic_rename_vm") / "hosts.yml"
        write_inventory(inventory, vagrant_vms, nics)

        def rename(name: str) -> tuple[subprocess.CompletedProcess[str], float]:
            started = time.monotonic()
            result = run_ansible("ansible-playbook", "-i", str(inventory), PLAYBOOK, "-e", "nic_rename_confirm=true",
                                 "--limit", name, check=False, timeout=2700)
            return result, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=len(nics)) as pool:
            runs = dict(zip(nics, pool.map(rename, nics), strict=True))
        first = {name: result for name, (result, _) in runs.items()}
        seconds = {name: took for name, (_, took) in runs.items()}
        for name in nics:
            print(f"nic_rename vm: rename run on {name} (rc {first[name].returncode}) took {seconds[name]:.0f}s")
        yield Outcome(nics=nics, before=before, first=first, first_seconds=seconds, inventory=inventory)
    finally:
        for nic in nics.values():  # after a failure before the last test
            unplug(vagrant_vms, nic)


def test_public_nic_renamed_to_eth0_by_a_real_reboot(vagrant_vms: VagrantVMs, outcome: Outcome) -> None:
    nic, before = outcome.nics[GOOD], outcome.before[GOOD]
    result = outcome.first[GOOD]
    output = flat(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:]
    assert recap(result.stdout)[GOOD]["failed"] == 0
    assert f"{GOOD}: public NIC {nic.name} ({nic.mac}, chosen by ansible_host)" in output
    assert f"renames {nic.name} -> eth0, applied by reboot" in output
    assert boot_id(vagrant_vms, GOOD) != before.boot_id
    now = links(vagrant_vms, GOOD)
    assert nic.name not in now
    assert now["eth0"] == {"mac": nic.mac, "addresses": [nic.address]}
    # Vagrant's management NIC and the default route through it are as they were.
    assert default_routes(vagrant_vms, GOOD) == before.routes
    for name, link in before.links.items():
        if name != nic.name:
            assert now[name] == link
    # udev named it from the role's .link file, which the rebuilt initramfs carries too.
    udev = vagrant_vms.ssh(GOOD, "udevadm info --query=property /sys/class/net/eth0").stdout
    assert f"ID_NET_LINK_FILE={LINK_FILE}" in udev.splitlines()
    assert f"MACAddress={nic.mac}" in vagrant_vms.ssh(GOOD, f"cat {LINK_FILE}").stdout
    initramfs = vagrant_vms.ssh(GOOD, 'sudo lsinitramfs "/boot/initrd.img-$(uname -r)"').stdout
    assert any(line.endswith("/10-kubeboot-eth0.link") for line in initramfs.splitlines())
    assert vagrant_vms.ssh(GOOD, f"cat {PUBLIC_FILE}").stdout == before.public_file.replace(
        f"Name={nic.name}\n", "Name=eth0\n")
    # Confirmed: the watchdog is disarmed.
    log = vagrant_vms.ssh(GOOD, f"sudo cat {STATE}/log").stdout
    assert f"armed (reboot, {GOOD_CONFIRM_TIMEOUT}s)" in log and log.rstrip().endswith("confirmed")
    assert vagrant_vms.ssh(GOOD, f"test -e {STATE}/armed", check=False).returncode != 0
    timer = vagrant_vms.ssh(GOOD, "systemctl is-enabled kubeboot-nic-rename-watchdog.timer", check=False)
    assert timer.stdout.strip() == "disabled"


def test_second_run_changes_nothing(vagrant_vms: VagrantVMs, outcome: Outcome) -> None:
    if outcome.first[GOOD].returncode != 0:
        pytest.skip(f"{GOOD} was not renamed")
    booted = boot_id(vagrant_vms, GOOD)
    started = time.monotonic()
    result = run_ansible("ansible-playbook", "-i", str(outcome.inventory), PLAYBOOK, "-e", "nic_rename_confirm=true",
                         "--limit", GOOD, timeout=900)
    print(f"\nnic_rename vm: second run took {time.monotonic() - started:.0f}s")
    assert recap(result.stdout)[GOOD]["changed"] == 0
    assert "already named eth0" in flat(result.stdout)
    assert boot_id(vagrant_vms, GOOD) == booted


def test_unconfirmed_rename_is_reverted_by_the_watchdog(vagrant_vms: VagrantVMs, outcome: Outcome) -> None:
    nic, before = outcome.nics[BROKEN], outcome.before[BROKEN]
    result = outcome.first[BROKEN]
    output = flat(result.stdout)
    assert result.returncode != 0
    assert recap(result.stdout)[BROKEN]["failed"] == 1, result.stdout[-6000:]
    # Which of the two depends on whether the watchdog brought it back before the reboot's own timeout ran out.
    reports = (
        f"{BROKEN}: did not come back after the rename reboot within {BROKEN_REBOOT_TIMEOUT}s; its watchdog restored "
        f"the previous network files and it is back; see {STATE}/log there",
        f"{BROKEN}: was back only after its watchdog had restored the previous network files (the rename was not "
        f"confirmed within {BROKEN_CONFIRM_TIMEOUT}s of the boot); it runs under its old names again; see {STATE}/log "
        "there",
    )
    assert any(report in output for report in reports), output[-4000:]
    # Back under its old name, with its address, files as before the rename; two boots since (rename, revert).
    now = links(vagrant_vms, BROKEN)
    assert "eth0" not in now
    assert now[nic.name] == {"mac": nic.mac, "addresses": [nic.address]}
    assert default_routes(vagrant_vms, BROKEN) == before.routes
    assert boot_id(vagrant_vms, BROKEN) != before.boot_id
    assert boots(vagrant_vms, BROKEN) == before.boots + 2
    assert vagrant_vms.ssh(BROKEN, f"cat {PUBLIC_FILE}").stdout == before.public_file
    assert vagrant_vms.ssh(BROKEN, f"test -e {LINK_FILE}", check=False).returncode != 0
    # The watchdog did it, on the boot before this one, and said so in its log and the journal.
    log = vagrant_vms.ssh(BROKEN, f"sudo cat {STATE}/log").stdout
    assert f"armed (reboot, {BROKEN_CONFIRM_TIMEOUT}s)" in log
    assert "reverted: restored the files saved before the rename; rebooting" in log
    assert "confirmed" not in log.split(f"armed (reboot, {BROKEN_CONFIRM_TIMEOUT}s)")[-1]
    assert "revert: not armed" not in log  # the controller did not try to revert what was reverted already
    journal = vagrant_vms.ssh(BROKEN, "sudo journalctl -b -1 -q --no-pager -u kubeboot-nic-rename-watchdog.service")
    assert "kubeboot-nic-rename: reverted: restored the files saved before the rename" in journal.stdout
    assert vagrant_vms.ssh(BROKEN, f"test -e {STATE}/reverted && test ! -e {STATE}/armed",
                           check=False).returncode == 0
    timer = vagrant_vms.ssh(BROKEN, "systemctl is-enabled kubeboot-nic-rename-watchdog.timer", check=False)
    assert timer.stdout.strip() == "disabled"


def test_both_vms_are_as_before_after_the_clean_up(vagrant_vms: VagrantVMs, outcome: Outcome) -> None:
    """Runs last: the public NICs and the files go again, and both VMs answer through Vagrant's NIC as before."""
    started = time.monotonic()
    for nic in outcome.nics.values():
        unplug(vagrant_vms, nic)
    print(f"\nnic_rename vm: public NICs removed in {time.monotonic() - started:.0f}s")
    for name, nic in outcome.nics.items():
        assert name_of(vagrant_vms, name, nic.mac) is None
        before = {n: link for n, link in outcome.before[name].links.items() if link["mac"] != nic.mac}
        assert links(vagrant_vms, name) == before
        assert default_routes(vagrant_vms, name) == outcome.before[name].routes
        files = vagrant_vms.ssh(name, f"ls {NETWORK_DIR}").stdout.split()
        assert not {Path(p).name for p in (PUBLIC_FILE, HOLD_FILE, STALE_FILE, LINK_FILE)} & set(files)
