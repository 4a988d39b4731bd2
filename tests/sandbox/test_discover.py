"""`kubeboot discover` against sandbox nodes over real SSH, driven through the CLI as an operator would."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import VENV_BIN, Sandbox

pytestmark = pytest.mark.sandbox

NAME = "pytestdisc"
SUBNET_PREFIX = "10.213.30"
NOBODY = f"{SUBNET_PREFIX}.250"  # in the sandbox subnet, no node there
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory(NAME, "--nodes", "3", "--extra-nics", "2", "--subnet", f"{SUBNET_PREFIX}.0/24")
    return sandbox


def state_dir() -> Path:
    return Path("/var/lib/kubeboot/sandbox") / NAME


def discover(*args: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`kubeboot discover` as root with the sandbox key, stdin not a terminal."""
    command = [str(VENV_BIN / "kubeboot"), "discover", "--user", "root", "--key", str(state_dir() / "id_ed25519"),
               "--known-hosts", str(known_hosts or state_dir() / "known_hosts"), "--timeout", "5", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          check=False)


def addresses(box: Sandbox) -> list[str]:
    return [box.nodes[name]["address"] for name in sorted(box.nodes)]


def validator_available() -> bool:
    result = subprocess.run([str(VENV_BIN / "kubeboot"), "validate", "--help"], capture_output=True, text=True,
                            check=False)
    return result.returncode == 0


def test_discover_matches_ip_link_writes_valid_host_vars_and_second_run_changes_nothing(
        box: Sandbox, tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    first = discover("--inventory", str(inventory), "--json", *addresses(box))
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["summary"] == {"hosts": 3, "ok": 3, "failed": 0}
    for host in document["hosts"]:
        name = host["name"]
        node = box.nodes[name]
        links = json.loads(box.ssh(name, "ip -j link").stdout)
        expected = {link["ifname"]: link["address"] for link in links if link.get("link_type") != "loopback"}
        found = {nic["name"]: nic["mac"] for nic in host["facts"]["interfaces"] if nic["link_type"] != "loopback"}
        assert found == expected
        assert list(found) == ["eth0", "enp0s8", "enp0s9"]
        assert [found[nic] for nic in node["nics"]] == node["macs"]
        assert host["facts"]["hostname"] == name
        assert host["facts"]["ssh_address"] == node["address"]
        assert host["facts"]["os"]["id"] == "debian"
        assert host["public_nic"]["interface"] == "eth0"
        assert host["host_vars"]["status"] == "created"
        values = yaml.safe_load((inventory / "host_vars" / f"{name}.yml").read_text())
        assert values == {"ansible_host": node["address"], "public_nic_mac": node["macs"][0],
                          "node_ip": node["address"]}
        assert MAC_RE.match(values["public_nic_mac"])
    written = {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in (inventory / "host_vars").iterdir()}
    assert sorted(written) == ["node1.yml", "node2.yml", "node3.yml"]

    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"k8s_cluster": {"children": {
        "kube_control_plane": {"hosts": {"node1": None}},
        "kube_node": {"hosts": {"node2": None, "node3": None}},
    }}}}}))
    if validator_available():
        check = subprocess.run([str(VENV_BIN / "kubeboot"), "validate", "-i", str(inventory / "hosts.yml")],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr

    again = discover("--inventory", str(inventory), *addresses(box))
    assert again.returncode == 0, again.stderr
    assert sum(1 for line in again.stdout.splitlines() if line.endswith(".yml unchanged")) == 3
    assert {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in (inventory / "host_vars").iterdir()
            if p.suffix == ".yml"} == written


def test_one_unreachable_address_is_reported_and_the_others_done(box: Sandbox) -> None:
    result = discover(*addresses(box)[:2], NOBODY)
    assert result.returncode == 3, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("kubeboot: discover:")]
    assert len(errors) == 1
    assert NOBODY in errors[0] and ("unreachable" in errors[0] or "no answer" in errors[0])
    assert "node1" in result.stdout and "node2" in result.stdout
    assert "2 of 3 hosts done" in result.stdout


def test_host_keys_accept_new_then_known_and_a_mismatch_names_the_line(box: Sandbox, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    refused = discover(addresses(box)[0], known_hosts=known)
    assert refused.returncode == 1
    assert "unknown host key" in refused.stderr and "--accept-new" in refused.stderr
    accepted = discover("--accept-new", "--json", *addresses(box), known_hosts=known)
    assert accepted.returncode == 0, accepted.stderr
    assert sorted(json.loads(accepted.stdout)["accepted_host_keys"]) == addresses(box)
    assert len(known.read_text().splitlines()) == 3
    assert discover(*addresses(box), known_hosts=known).returncode == 0

    # node2's line now holds node3's key: node2 is refused, naming file and line; the others are done.
    lines = known.read_text().splitlines()
    keys = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines}
    node2, node3 = addresses(box)[1], addresses(box)[2]
    forged = tmp_path / "forged_known_hosts"
    forged.write_text("".join(f"{host} {keys[node3] if host == node2 else keys[host]}\n" for host in keys))
    line_no = list(keys).index(node2) + 1
    mismatch = discover("--accept-new", *addresses(box), known_hosts=forged)
    assert mismatch.returncode == 3
    assert f"{forged} line {line_no} has another key for {node2}" in mismatch.stderr
    assert "HOST KEY MISMATCH" in mismatch.stderr
    assert forged.read_text().count("\n") == 3  # accept-new never replaces a changed key


def test_through_a_jump_host(box: Sandbox) -> None:
    jump, *others = addresses(box)
    result = discover("--jump", f"root@{jump}", "--json", *others, NOBODY)
    assert result.returncode == 3, result.stderr
    hosts = json.loads(result.stdout)["hosts"]
    assert [h["ok"] for h in hosts] == [True, True, False]
    assert [h["facts"]["ssh_address"] for h in hosts[:2]] == others  # the address the jump host reached
    assert NOBODY in (hosts[2]["error"] or "")


def test_hand_written_value_is_not_clobbered_without_yes(box: Sandbox, tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    host_vars = inventory / "host_vars" / "node1.yml"
    host_vars.parent.mkdir(parents=True)
    host_vars.write_text("# written by hand\nnode_labels: {disk: ssd}\nnode_ip: 10.213.30.99  # storage net\n")
    before = host_vars.read_text()
    refused = discover("--inventory", str(inventory), addresses(box)[0])
    assert refused.returncode == 1
    assert "node_ip is 10.213.30.99 but discover found" in refused.stderr and "--yes" in refused.stderr
    assert host_vars.read_text() == before
    accepted = discover("--inventory", str(inventory), "--yes", addresses(box)[0])
    assert accepted.returncode == 0, accepted.stderr
    text = host_vars.read_text()
    assert text.startswith("# written by hand\nnode_labels: {disk: ssd}\n")
    assert f'node_ip: "{addresses(box)[0]}"  # storage net' in text
    assert yaml.safe_load(text)["public_nic_mac"] == box.nodes["node1"]["macs"][0]


def test_bad_arguments_exit_2() -> None:
    for args in (["--parallel", "0", NOBODY], ["bad host!"], ["--key", "/nonexistent", NOBODY]):
        result = discover(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1
