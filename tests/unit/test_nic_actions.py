"""The nic_rename role's action plugins with a canned host: the one command each runs and what it returns."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from kubeboot import nic
from plugins.action import kubeboot_nic_plan, kubeboot_nic_verify
from tests.unit.test_nic import HOST, LO, MAC_EXTRA, MAC_PRIMARY, host_output, link

ARGS = {"name": "eth0", "mac": "", "ansible_host": "10.0.0.5", "spare_prefix": "kbspare", "udev_rule": False,
        "cloud_init_disable": True, "apply": "reboot"}


def run(module: Any, args: dict[str, Any], stdout: str, *, check_mode: bool = False, rc: int = 0,
        stderr: str | None = None) -> tuple[dict[str, Any], MagicMock]:
    task = MagicMock(args=args, async_val=0, check_mode=check_mode, action=module.__name__.rsplit(".", 1)[-1])
    connection = MagicMock()
    connection._shell.tmpdir = "/tmp/kbnic-test"
    action = module.ActionModule(task, connection, MagicMock(), None, None, None)
    if stderr is None:
        stderr = "ip: not found" if rc else ""
    execute = MagicMock(return_value={"rc": rc, "stdout": stdout, "stderr": stderr})
    action._low_level_execute_command = execute
    return action.run(task_vars={"inventory_hostname": "node1"}), execute


def test_plan_reads_the_host_with_one_command_and_returns_the_files() -> None:
    network = "/etc/systemd/network/10-ens3.network"
    stdout = host_output(HOST, files={network: ("644", "[Match]\nName=ens3\n")}, initramfs="/boot/initrd.img-6.1.0",
                         cloud_init=True)
    result, execute = run(kubeboot_nic_plan, ARGS, stdout)
    execute.assert_called_once_with(nic.READ_SCRIPT, sudoable=True)
    assert not nic.READ_SCRIPT.endswith("\n")  # Ansible appends " && sleep 0" to a command
    assert result["changed"] is False and not result.get("failed")
    assert result["summary"] == f"node1: public NIC ens3 ({MAC_PRIMARY}, chosen by ansible_host); renames ens3 -> " \
        "eth0, applied by reboot"
    assert result["renames"] == [{"old": "ens3", "new": "eth0", "mac": MAC_PRIMARY}]
    assert [w["path"] for w in result["writes"]] == [nic.link_file_path("eth0"), nic.CLOUD_INIT_FILE, network]
    assert result["writes"][2] == {"path": network, "content": "[Match]\nName=eth0\n", "mode": "0644"}
    assert result["removals"] == []
    assert (result["kernel"], result["initramfs"]) == ("6.1.0-26-amd64", "/boot/initrd.img-6.1.0")


def test_plan_in_check_mode_reads_and_plans_the_same() -> None:
    stdout = host_output(HOST)
    normal, _ = run(kubeboot_nic_plan, ARGS, stdout)
    checked, execute = run(kubeboot_nic_plan, ARGS, stdout, check_mode=True)
    execute.assert_called_once_with(nic.READ_SCRIPT, sudoable=True)
    assert checked == normal


def test_plan_of_a_host_already_right_has_nothing_to_do() -> None:
    host = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24"), link("enp0s8", MAC_EXTRA)]
    routes = [{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]
    files = {nic.link_file_path("eth0"): ("644", nic.render_link(MAC_PRIMARY, "eth0")),
             "/etc/systemd/network/10-ens3.network": ("644", "[Match]\nName=eth0\n")}
    result, _ = run(kubeboot_nic_plan, ARGS, host_output(host, routes, files=files))
    assert (result["changed"], result["renames"], result["writes"], result["removals"]) == (False, [], [], [])
    assert result["summary"].endswith("; already named eth0")


def test_plan_refusal_fails_with_one_line_and_a_failed_read_says_so() -> None:
    result, _ = run(kubeboot_nic_plan, {**ARGS, "mac": "02:00:00:00:00:99"}, host_output(HOST))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == (f"node1: public_nic_mac = 02:00:00:00:00:99 is not on this host (its NICs: "
                             f"ens3={MAC_PRIMARY}, enp0s8={MAC_EXTRA}); set public_nic_mac to one of them or remove it")
    broken, _ = run(kubeboot_nic_plan, ARGS, "", rc=127)
    assert broken["failed"] is True
    assert broken["msg"] == "node1: reading the network configuration failed (rc 127): ip: not found"
    over_tty, _ = run(kubeboot_nic_plan, ARGS, "\r\n@@kubeboot addr@@\r\n[]\r\n/bin/sh: 18: Syntax error\r\n", rc=2,
                      stderr="Shared connection to 10.0.0.5 closed.\r\n")
    assert over_tty["msg"] == "node1: reading the network configuration failed (rc 2): /bin/sh: 18: Syntax error"
    cut, _ = run(kubeboot_nic_plan, ARGS, host_output(HOST).split("@@kubeboot kernel@@")[0])
    assert cut["failed"] is True and "lacks kernel, end" in cut["msg"]


def test_verify_reads_once_and_names_what_is_wrong() -> None:
    plan, _ = run(kubeboot_nic_plan, ARGS, host_output(HOST))
    renamed = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24"), link("enp0s8", MAC_EXTRA)]
    routes = [{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]
    good = host_output(renamed, routes)
    result, execute = run(kubeboot_nic_verify, {"plan": plan}, good)
    execute.assert_called_once_with(kubeboot_nic_verify.SCRIPT, sudoable=True)
    assert (result["changed"], result["problems"]) == (False, [])
    lost = host_output([LO, link("eth0", MAC_PRIMARY), link("enp0s8", MAC_EXTRA)], [])
    result, _ = run(kubeboot_nic_verify, {"plan": plan}, lost)
    assert result["problems"] == ["node1: eth0 (was ens3) lost 10.0.0.5/24",
                                  "node1: the default route via 10.0.0.1 dev eth0 is missing"]
    assert not result.get("failed")
    unread, _ = run(kubeboot_nic_verify, {"plan": plan}, "", rc=127)
    assert (unread["failed"], unread["msg"]) == (True, "node1: reading the NICs failed (rc 127): ip: not found")

