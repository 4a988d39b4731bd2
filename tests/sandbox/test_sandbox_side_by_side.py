"""Two sandboxes up at the same time do not disturb each other: cgroups, links, guard chains, and `down` of one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubeboot.sandbox import naming
from tests.conftest import Sandbox, kubeboot
from tests.sandbox.test_sandbox import dropped, leftovers, node_cgroups, tcp_check

pytestmark = pytest.mark.sandbox

FIRST, SECOND = "pytestsa", "pytestsb"


@pytest.fixture(scope="module")
def pair(sandbox_factory: Any) -> tuple[Sandbox, Sandbox]:
    first: Sandbox = sandbox_factory(FIRST, "--nodes", "2", "--subnet", "10.213.42.0/24")
    second: Sandbox = sandbox_factory(SECOND, "--nodes", "1", "--subnet", "10.213.43.0/24")
    return first, second


def all_cgroups(pair: tuple[Sandbox, Sandbox]) -> dict[tuple[str, str], list[str]]:
    return {(box.name, name): node_cgroups(box, name) for box in pair for name in box.nodes}


def test_each_node_has_a_distinct_cgroup_subtree(pair: tuple[Sandbox, Sandbox]) -> None:
    dirs = all_cgroups(pair)
    assert len(dirs) == 3
    every = [path for paths in dirs.values() for path in paths]
    assert len(every) == len(set(every))
    for (box, name), paths in dirs.items():
        assert {Path(p).name for p in paths} == {naming.cgroup_name(box, name)}
        assert all(Path(p).is_dir() for p in paths)


def test_a_node_does_not_see_the_other_sandboxes_cgroups(pair: tuple[Sandbox, Sandbox]) -> None:
    first, second = pair
    second.ssh("node1", "mkdir -p /sys/fs/cgroup/memory/pytest-side-marker")
    try:
        memory = next(p for p in node_cgroups(second, "node1") if "/memory/" in p)
        assert (Path(memory) / "pytest-side-marker").is_dir()  # on the host: below the second sandbox's node
        for name in first.nodes:
            listing = first.ssh(name, "ls /sys/fs/cgroup/memory /sys/fs/cgroup/systemd").stdout
            assert "pytest-side-marker" not in listing
            assert "kubeboot-sandbox" not in listing
        assert "pytest-side-marker" in second.ssh("node1", "ls /sys/fs/cgroup/memory").stdout
    finally:
        second.ssh("node1", "rmdir /sys/fs/cgroup/memory/pytest-side-marker", check=False)


def test_links_and_guard_chains_are_separate(pair: tuple[Sandbox, Sandbox]) -> None:
    first, second = pair
    members = {}
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    for box in pair:
        bridge = naming.bridge_name(box.name)
        links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True,
                                          text=True, check=True).stdout)
        members[box.name] = {link["ifname"] for link in links}
        expected = {naming.host_ifname(box.name, n["index"], 0) for n in box.nodes.values()}
        assert members[box.name] == expected
        chain = naming.chain_name(box.name)
        rules = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        assert rules[1:] == [f"-A {chain} -i {bridge} -o {bridge} -j RETURN", f"-A {chain} -j DROP"]
        assert {f"-A FORWARD -i {bridge} -j {chain}", f"-A FORWARD -o {bridge} -j {chain}"} <= set(forward)
    assert naming.bridge_name(FIRST) != naming.bridge_name(SECOND)
    assert not members[FIRST] & members[SECOND]
    # Within a sandbox nodes talk; across sandboxes nothing passes, even where the host forwards between the two
    # bridges (forwarding turned on for the two bridges only, both made by these tests): the guard drops it.
    assert tcp_check(first, "node1", first.nodes["node2"]["address"]).stdout.strip() == "SSH-2.0"
    switches = [Path(f"/proc/sys/net/ipv4/conf/{naming.bridge_name(box.name)}/forwarding") for box in pair]
    chains = [naming.chain_name(box.name) for box in pair]
    before = sum(dropped(chain) for chain in chains)
    try:
        for switch in switches:
            switch.write_text("1\n")
        assert tcp_check(first, "node1", second.nodes["node1"]["address"]).returncode != 0
    finally:
        for switch in switches:
            switch.write_text("0\n")
    # Dropped by the guard of whichever bridge FORWARD looks at first (the one inserted last).
    assert sum(dropped(chain) for chain in chains) > before


def test_down_of_one_leaves_the_other_running(pair: tuple[Sandbox, Sandbox]) -> None:
    first, second = pair
    recorded = [path for name in second.nodes for path in node_cgroups(second, name)]
    kept = [path for name in first.nodes for path in node_cgroups(first, name)]
    second.down()
    assert leftovers(SECOND, second.inventory) == []
    assert [path for path in recorded if Path(path).exists()] == []
    status = json.loads(kubeboot("sandbox", "status", "--name", FIRST, "--json").stdout)
    assert [(n["name"], n["running"], n["ssh"]) for n in status["nodes"]] == [("node1", True, True),
                                                                               ("node2", True, True)]
    assert all(Path(path).is_dir() for path in kept)
    assert first.ssh("node2", "systemctl is-system-running --wait", check=False).stdout.strip() == "running"
    first.down()
    assert [path for path in kept if Path(path).exists()] == []
    assert leftovers(FIRST, first.inventory) == []
