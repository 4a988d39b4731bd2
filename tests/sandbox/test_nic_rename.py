"""The nic_rename role on sandbox nodes: live and reboot renames, eth0 moved aside, refusals, the watchdog's revert.

Sandbox nodes are systemd-nspawn containers: there is no udev in them, /sys is read-only and the host creates each
node's NICs already named at every boot, so a `.link` file is never applied there by udev. The role's boot unit
(`kubeboot-nic-rename-boot.service`, which names whatever udev did not) applies the `.link` names instead; these
tests prove everything else (selection, files, live rename, reboot, watchdog arming, confirming and reverting). The
`.link` file applied by a real udev at a real boot is proven by the Vagrant tier.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, recap, run_ansible

pytestmark = pytest.mark.sandbox

PLAYBOOK = "playbooks/nic_rename.yml"
HELPER = "/usr/local/sbin/kubeboot-nic-rename"
STATE = "/var/lib/kubeboot/nic_rename"


def inventory_dir(box: Sandbox) -> Path:
    """The sandbox's own inventory plus a group file putting its nodes in k8s_cluster."""
    directory = box.inventory.parent / "nic"
    directory.mkdir(exist_ok=True)
    (directory / "hosts.yml").write_text(box.inventory.read_text())
    hosts = "".join(f"    {name}:\n" for name in box.nodes)
    (directory / "groups.yml").write_text(f"k8s_cluster:\n  hosts:\n{hosts}")
    return directory


def play(box: Sandbox, node: str, *args: str, check: bool = True) -> Any:
    return run_ansible("ansible-playbook", "-i", str(inventory_dir(box)), PLAYBOOK, "--limit", node, *args,
                       check=check, timeout=900)


def flat(output: str) -> str:
    """Output with line breaks folded away (the YAML callback wraps long messages)."""
    return " ".join(output.split())


def links(box: Sandbox, node: str) -> dict[str, dict[str, Any]]:
    """Interface name -> {mac, addresses} on the node."""
    data = json.loads(box.ssh(node, "ip -j address show").stdout)
    return {i["ifname"]: {"mac": i["address"],
                          "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in i.get("addr_info", [])
                                              if a.get("scope") == "global")} for i in data}


def default_route(box: Sandbox, node: str) -> tuple[str, str]:
    route = json.loads(box.ssh(node, "ip -j route show default").stdout)[0]
    return route["dev"], route["gateway"]


def boot_id(box: Sandbox, node: str) -> str:
    return box.ssh(node, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def node_state(box: Sandbox, node: str) -> str:
    """What the role could have changed on a node: its links, network files and the helper."""
    return box.ssh(node, f"ip -br link | sed 's/@.*//' | sort; ls -l /etc/systemd/network; ls {HELPER} {STATE} "
                         "2>&1 | sort", check=False).stdout


@pytest.fixture(scope="module")
def nicbox(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestnic", "--nodes", "3", "--extra-nics", "1", "--primary-nic", "ens3",
                                   "--subnet", "10.213.19.0/24")
    return box


@pytest.fixture(scope="module")
def eth0box(sandbox_factory: Any) -> Sandbox:
    """A node whose primary (SSH) NIC is eth0, next to an extra NIC enp0s8."""
    box: Sandbox = sandbox_factory("pytestnic0", "--nodes", "1", "--extra-nics", "1", "--subnet", "10.213.20.0/24")
    return box


def test_nothing_happens_without_confirmation(nicbox: Sandbox) -> None:
    before = node_state(nicbox, "node1")
    result = play(nicbox, "node1")
    assert recap(result.stdout)["node1"]["changed"] == 0
    assert "nic_rename_confirm is not true" in flat(result.stdout)
    assert node_state(nicbox, "node1") == before


def test_wrong_public_nic_mac_is_refused_and_nothing_changes(nicbox: Sandbox) -> None:
    before = node_state(nicbox, "node1")
    result = play(nicbox, "node1", "-e", "nic_rename_confirm=true", "-e", "public_nic_mac=02:00:00:00:00:99",
                  check=False)
    assert result.returncode != 0
    macs = nicbox.nodes["node1"]["macs"]
    line = (f"node1: public_nic_mac = 02:00:00:00:00:99 is not on this host (its NICs: ens3={macs[0]}, "
            f"enp0s8={macs[1]}); set public_nic_mac to one of them or remove it")
    assert line in flat(result.stdout)
    assert recap(result.stdout)["node1"]["changed"] == 0
    assert node_state(nicbox, "node1") == before


def test_ssh_nic_renamed_by_reboot_keeps_its_address_and_survives_another_reboot(nicbox: Sandbox) -> None:
    """No public_nic_mac: the NIC holding ansible_host (ens3) becomes eth0; its networkd file follows it."""
    address = f"{nicbox.nodes['node1']['address']}/24"
    mac = nicbox.nodes["node1"]["macs"][0]
    booted = boot_id(nicbox, "node1")
    result = play(nicbox, "node1", "-e", "nic_rename_confirm=true")
    assert "public NIC ens3" in flat(result.stdout) and "chosen by ansible_host" in flat(result.stdout)
    assert boot_id(nicbox, "node1") != booted
    now = links(nicbox, "node1")
    assert "ens3" not in now
    assert now["eth0"] == {"mac": mac, "addresses": [address]}
    assert default_route(nicbox, "node1") == ("eth0", "10.213.19.1")
    assert "Name=eth0" in nicbox.ssh("node1", "cat /etc/systemd/network/10-ens3.network").stdout
    assert f"MACAddress={mac}" in nicbox.ssh("node1", "cat /etc/systemd/network/10-kubeboot-eth0.link").stdout
    log = nicbox.ssh("node1", f"cat {STATE}/log").stdout
    assert "armed (reboot, 300s)" in log and log.rstrip().endswith("confirmed")
    assert nicbox.ssh("node1", f"test -e {STATE}/armed", check=False).returncode != 0
    timer = nicbox.ssh("node1", "systemctl is-enabled kubeboot-nic-rename-watchdog.timer", check=False)
    assert timer.stdout.strip() == "disabled"
    # The second run finds the host right.
    assert recap(play(nicbox, "node1", "-e", "nic_rename_confirm=true").stdout)["node1"]["changed"] == 0
    # And the name holds at every boot.
    nicbox.ansible("node1", "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=120")
    assert links(nicbox, "node1")["eth0"] == {"mac": mac, "addresses": [address]}
    assert default_route(nicbox, "node1") == ("eth0", "10.213.19.1")


def test_check_mode_shows_the_plan_and_diffs_and_changes_nothing(nicbox: Sandbox) -> None:
    before = node_state(nicbox, "node2")
    mac = nicbox.nodes["node2"]["macs"][1]
    result = play(nicbox, "node2", "--check", "--diff", "-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={mac}")
    assert "public NIC enp0s8" in flat(result.stdout)
    assert "renames enp0s8 -> eth0, applied by reboot" in flat(result.stdout)
    assert "+++ after: /etc/systemd/network/10-kubeboot-eth0.link" in result.stdout
    assert f"+MACAddress={mac}" in result.stdout
    assert node_state(nicbox, "node2") == before


def test_live_rename_of_the_extra_nic(nicbox: Sandbox) -> None:
    mac = nicbox.nodes["node2"]["macs"][1]
    booted = boot_id(nicbox, "node2")
    args = ("-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={mac}", "-e", "nic_rename_apply=live")
    result = play(nicbox, "node2", *args)
    assert boot_id(nicbox, "node2") == booted  # no reboot
    now = links(nicbox, "node2")
    assert "enp0s8" not in now and now["eth0"]["mac"] == mac
    assert now["ens3"]["addresses"] == [f"{nicbox.nodes['node2']['address']}/24"]
    assert default_route(nicbox, "node2") == ("ens3", "10.213.19.1")
    assert "live: renamed enp0s8 to eth0" in nicbox.ssh("node2", f"cat {STATE}/log").stdout
    assert nicbox.ssh("node2", "systemctl is-active kubeboot-nic-rename-watchdog-live.timer",
                      check=False).stdout.strip() != "active"
    assert recap(result.stdout)["node2"]["failed"] == 0
    assert recap(play(nicbox, "node2", *args).stdout)["node2"]["changed"] == 0


def test_existing_eth0_is_moved_aside_keeping_the_ssh_session(eth0box: Sandbox) -> None:
    """eth0 carries SSH here. It becomes kbspare0 with its networkd file (so its address and default route), and the
    extra NIC takes eth0: the SSH session, to the same address, never loses it."""
    node = eth0box.nodes["node1"]
    address = f"{node['address']}/24"
    args = ("-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={node['macs'][1]}", "-e", "nic_rename_apply=live")
    result = play(eth0box, "node1", *args)
    assert "renames eth0 -> kbspare0, enp0s8 -> eth0" in flat(result.stdout)
    now = links(eth0box, "node1")
    assert now["kbspare0"] == {"mac": node["macs"][0], "addresses": [address]}
    assert now["eth0"] == {"mac": node["macs"][1], "addresses": []}
    assert default_route(eth0box, "node1") == ("kbspare0", "10.213.20.1")
    assert "Name=kbspare0" in eth0box.ssh("node1", "cat /etc/systemd/network/10-eth0.network").stdout
    assert recap(play(eth0box, "node1", *args).stdout)["node1"]["changed"] == 0
    # Persistently too: after a reboot the same names, address and route.
    eth0box.ansible("node1", "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=120")
    assert links(eth0box, "node1") == now
    assert default_route(eth0box, "node1") == ("kbspare0", "10.213.20.1")


def test_unconfirmed_rename_is_reverted_by_the_watchdog(nicbox: Sandbox) -> None:
    """A rename the controller never confirms: after nic_rename_confirm_timeout the node restores its files and
    reboots by itself, and comes back under its old names."""
    mac = nicbox.nodes["node3"]["macs"][1]
    play(nicbox, "node3", "-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={mac}",
         "-e", "public_nic_name=pub0", "-e", "nic_rename_confirm_timeout=20")
    assert links(nicbox, "node3")["pub0"]["mac"] == mac
    # A deliberately broken change, saved and armed the way the role does it, then never confirmed.
    good, broken = "/etc/systemd/network/10-kubeboot-pub0.link", "/etc/systemd/network/10-kubeboot-broken0.link"
    nicbox.ssh("node3", f"{HELPER} backup {good} {broken} && rm {good} && "
                        f"printf '[Match]\\nMACAddress={mac}\\n\\n[Link]\\nName=broken0\\n' > {broken} && "
                        f"{HELPER} arm reboot 20")
    assert nicbox.ssh("node3", "systemctl is-enabled kubeboot-nic-rename-watchdog.timer").stdout.strip() == "enabled"
    nicbox.ansible("node3", "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=120")
    broken_boot = boot_id(nicbox, "node3")
    assert links(nicbox, "node3")["broken0"]["mac"] == mac  # the broken name took effect
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        time.sleep(5)
        probe = nicbox.ssh("node3", "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running --wait",
                           check=False)
        if probe.returncode in (0, 1) and probe.stdout.split()[:1] not in ([], [broken_boot]):
            break
    else:
        pytest.fail("the watchdog did not reboot node3 within 150 s")
    assert links(nicbox, "node3")["pub0"]["mac"] == mac
    files = nicbox.ssh("node3", "ls /etc/systemd/network").stdout.split()
    assert "10-kubeboot-pub0.link" in files and "10-kubeboot-broken0.link" not in files
    log = nicbox.ssh("node3", f"cat {STATE}/log").stdout
    assert "reverted: restored the files saved before the rename; rebooting" in log
    assert nicbox.ssh("node3", f"test -e {STATE}/armed", check=False).returncode != 0
    assert nicbox.ssh("node3", "systemctl is-enabled kubeboot-nic-rename-watchdog.timer",
                      check=False).stdout.strip() == "disabled"
    # The role then finds the node right again.
    result = play(nicbox, "node3", "-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={mac}",
                  "-e", "public_nic_name=pub0", "-e", "nic_rename_confirm_timeout=20")
    assert recap(result.stdout)["node3"]["changed"] == 0


def test_unconfirmed_live_change_is_reverted_by_the_transient_watchdog(nicbox: Sandbox) -> None:
    """Live mode arms a transient timer instead of the boot timer; unconfirmed, it reverts and reboots just the same."""
    link = "/etc/systemd/network/10-kubeboot-eth0.link"
    if nicbox.ssh("node2", f"test -x {HELPER} && test -e {link}", check=False).returncode != 0:
        pytest.skip("needs node2 renamed live by test_live_rename_of_the_extra_nic")
    saved = nicbox.ssh("node2", f"cat {link}").stdout
    nicbox.ssh("node2", f"{HELPER} backup {link} && echo '# broken' > {link} && {HELPER} arm live 10")
    assert nicbox.ssh("node2", "systemctl is-active kubeboot-nic-rename-watchdog-live.timer").stdout.strip() == "active"
    booted = boot_id(nicbox, "node2")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(3)
        probe = nicbox.ssh("node2", "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running --wait",
                           check=False)
        if probe.returncode in (0, 1) and probe.stdout.split()[:1] not in ([], [booted]):
            break
    else:
        pytest.fail("the live watchdog did not revert node2 within 90 s")
    assert nicbox.ssh("node2", f"cat {link}").stdout == saved
    assert links(nicbox, "node2")["eth0"]["mac"] == nicbox.nodes["node2"]["macs"][1]
    log = nicbox.ssh("node2", f"cat {STATE}/log").stdout
    assert "armed (live, 10s)" in log and "reverted: restored the files saved before the rename" in log


def test_rename_the_watchdog_reverted_first_is_reported_not_reverted_again(nicbox: Sandbox) -> None:
    """The renamed SSH NIC comes up without its address (a stale networkd file leaves its new name unmanaged), so the
    controller cannot reach the node; the node's watchdog reverts and reboots it, and the controller, meeting it again
    under its old name (a new boot ID all the same), fails saying so instead of reverting a second time."""
    stale = "/etc/systemd/network/05-stale-lan0.network"
    mac, address = nicbox.nodes["node3"]["macs"][0], f"{nicbox.nodes['node3']['address']}/24"
    nicbox.ssh("node3", f"printf '[Match]\\nName=lan0\\n\\n[Link]\\nUnmanaged=yes\\n' > {stale}")
    try:
        booted = boot_id(nicbox, "node3")
        result = play(nicbox, "node3", "-e", "nic_rename_confirm=true", "-e", "public_nic_name=lan0",
                      "-e", "nic_rename_confirm_timeout=20", "-e", "nic_rename_reboot_timeout=120", check=False)
        assert result.returncode != 0
        assert ("node3: was back only after its watchdog had restored the previous network files (the rename was not "
                "confirmed within 20s of the boot); it runs under its old names again") in flat(result.stdout)
        assert boot_id(nicbox, "node3") != booted
        now = links(nicbox, "node3")
        assert "lan0" not in now and now["ens3"] == {"mac": mac, "addresses": [address]}
        log = nicbox.ssh("node3", f"cat {STATE}/log").stdout.split("armed (reboot, 20s)")[-1]
        assert "reverted: restored the files saved before the rename; rebooting" in log
        assert "revert: not armed" not in log
        assert nicbox.ssh("node3", "test -e /etc/systemd/network/10-kubeboot-lan0.link", check=False).returncode != 0
    finally:
        nicbox.ssh("node3", f"rm -f {stale}", check=False)


def test_facts_gathered_before_the_rename_are_read_again_after_it(nicbox: Sandbox) -> None:
    """site.yml gathers facts once, for its checks, before the rename; what later plays derive from them (flannel's
    --iface, the node's public NIC) must name the NIC as renamed, in the same run: otherwise the first run configures
    flannel without --iface and the second run changes it."""
    mac = nicbox.nodes["node3"]["macs"][1]
    repo = Path(__file__).resolve().parents[2]
    playbook = nicbox.inventory.parent / "facts-rename-facts.yml"
    playbook.write_text(
        f"- ansible.builtin.import_playbook: {repo}/playbooks/facts.yml\n"
        f"- ansible.builtin.import_playbook: {repo}/playbooks/nic_rename.yml\n"
        f"- ansible.builtin.import_playbook: {repo}/playbooks/facts.yml\n"
        "- hosts: k8s_cluster\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"derived: cni_iface={{ kubeboot_cluster.cni_iface }}"
        " public_nic={{ kubeboot_node.public_nic }}\"\n")
    result = run_ansible("ansible-playbook", "-i", str(inventory_dir(nicbox)), str(playbook), "--limit", "node3",
                         "-e", "nic_rename_confirm=true", "-e", f"public_nic_mac={mac}", "-e", "public_nic_name=fresh1",
                         "-e", "nic_rename_apply=live", timeout=900)
    assert links(nicbox, "node3")["fresh1"]["mac"] == mac
    assert "derived: cni_iface=fresh1 public_nic=fresh1" in flat(result.stdout)
