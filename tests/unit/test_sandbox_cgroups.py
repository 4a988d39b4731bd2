"""Sandbox nodes' own cgroups, guard rules, rootfs cache key and the containerd setting sandbox inventories carry."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jinja2
import pytest
import yaml

from kubeboot.sandbox import cgroups, host, manager, naming, node, rootfs
from kubeboot.sandbox.state import NodeState, SandboxState
from tests.conftest import REPO

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /srv rw,relatime - ext4 /dev/vda1 rw
"""
PROC_CGROUP = """\
9:name=systemd:/
4:memory:/outer/session/7
3:cpuset:/
1:cpuacct,cpu:/jobs
0::/
"""


def test_node_cgroups_sit_below_our_own_in_every_hierarchy() -> None:
    name = naming.cgroup_name("unit", "cp1")
    assert name == "kubeboot-sandbox-unit-cp1"
    dirs = cgroups.node_cgroup_dirs(name, MOUNTINFO, PROC_CGROUP)
    assert dirs == [
        "/sys/fs/cgroup/cpu,cpuacct/jobs/kubeboot-sandbox-unit-cp1",
        "/sys/fs/cgroup/cpuset/kubeboot-sandbox-unit-cp1",
        "/sys/fs/cgroup/memory/session/7/kubeboot-sandbox-unit-cp1",  # the mount's root /outer is left out
        "/sys/fs/cgroup/systemd/kubeboot-sandbox-unit-cp1",
        "/sys/fs/cgroup/unified/kubeboot-sandbox-unit-cp1",
    ]
    assert naming.cgroup_name("other", "cp1") != name


def test_runner_joins_without_making_parents_and_fills_a_new_cpuset(tmp_path: Path) -> None:
    (tmp_path / "cpuset").mkdir()
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-1\n")
    (tmp_path / "memory").mkdir()
    dirs = [str(tmp_path / "cpuset/kb-node"), str(tmp_path / "memory/kb-node")]
    script = "\n".join(cgroups.runner_lines(dirs))
    assert "mkdir -p" not in script
    assert f"[ -d {dirs[0]} ] || mkdir {dirs[0]} || return 1" in script
    assert f"cat {tmp_path}/cpuset/cpuset.cpus > {dirs[0]}/cpuset.cpus" in script
    assert f"cat {tmp_path}/cpuset/cpuset.mems > {dirs[0]}/cpuset.mems" in script
    assert f"{dirs[1]}/cpuset" not in script
    for directory in dirs:
        assert f"echo $$ > {directory}/cgroup.procs || return 1" in script
    # A task may join a v1 cpuset only once it has CPUs and memory nodes.
    assert script.index(f"{dirs[0]}/cpuset.mems") < script.index(f"{dirs[0]}/cgroup.procs")


def test_runner_joins_the_node_cgroups_before_each_boot() -> None:
    state = SandboxState(name="unit", subnet="10.213.0.0/24", bridge="kb-unit")
    item = NodeState("cp1", 0, "10.213.0.11", ["eth0"], [naming.stable_mac("unit", "cp1", 0)])
    script = node.runner_script(state, item, state.node_dir("cp1") / "rootfs", ["/sys/fs/cgroup/pids/kb-x"])
    loop = script[script.index('while [ "$stop" -eq 0 ]'):]
    assert loop.index("cgroups_join") < loop.index("systemd-nspawn")
    assert "echo $$ > /sys/fs/cgroup/pids/kb-x/cgroup.procs" in script


def test_remove_tree_goes_deepest_first_and_only_below_the_recorded_path(tmp_path: Path) -> None:
    top = tmp_path / "kubeboot-sandbox-unit-cp1"
    (top / "payload/system.slice/ssh.service").mkdir(parents=True)
    (top / "supervisor").mkdir()
    sibling = tmp_path / "kubeboot-sandbox-unit-cp2"
    sibling.mkdir()
    assert cgroups.remove_tree(top, timeout=1)
    assert not top.exists()
    assert sibling.is_dir()
    assert cgroups.remove_tree(top, timeout=1)  # already gone: nothing to do


def test_memory_use_reads_the_node_memory_cgroup(tmp_path: Path) -> None:
    memory = tmp_path / "memory/kb-node"
    memory.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text(f"{300 * 2**20}\n")
    (memory / "memory.stat").write_text(f"cache 1\nrss 2\ntotal_cache {100 * 2**20}\ntotal_rss {150 * 2**20}\n")
    use = cgroups.memory_use([str(tmp_path / "pids/kb-node"), str(memory)])
    assert use == cgroups.MemoryUse(300 * 2**20, 150 * 2**20, 100 * 2**20)
    assert cgroups.memory_use([str(tmp_path / "pids/kb-node")]) is None


def test_guard_returns_only_what_stays_on_the_bridge() -> None:
    assert host.guard_rules("KUBEBOOT-UNIT", "kb-unit") == [
        ["-A", "KUBEBOOT-UNIT", "-i", "kb-unit", "-o", "kb-unit", "-j", "RETURN"],
        ["-A", "KUBEBOOT-UNIT", "-j", "DROP"],
    ]


def test_rootfs_cache_key_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "python3-grpcio" in rootfs.PACKAGES
    before = rootfs.cache_key(rootfs.DEFAULT_MIRROR)
    monkeypatch.setattr(rootfs, "PACKAGES", rootfs.PACKAGES[:-1])
    assert rootfs.cache_key(rootfs.DEFAULT_MIRROR) != before


def test_sandbox_inventory_turns_on_restrict_oom_score_adj_and_says_why(tmp_path: Path) -> None:
    state = SandboxState(name="unit", subnet="10.213.0.0/24", bridge="kb-unit")
    state.nodes["cp1"] = NodeState("cp1", 0, "10.213.0.11", ["eth0"], [naming.stable_mac("unit", "cp1", 0)])
    text = manager.write_inventory(state, tmp_path / "hosts.yml").read_text()
    assert yaml.safe_load(text)["all"]["vars"]["containerd_restrict_oom_score_adj"] is True
    lines = text.splitlines()
    at = lines.index("    containerd_restrict_oom_score_adj: true")
    assert "CAP_SYS_RESOURCE" in "\n".join(lines[at - 3:at])


def _render_config(version: str, **overrides: object) -> dict[str, object]:
    role = REPO / "roles/containerd"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(role / "templates"), undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    env.tests["version"] = lambda value, other, op: tuple(map(int, value.split("."))) >= tuple(
        map(int, other.split(".")))
    variables = {**yaml.safe_load((role / "defaults/main.yml").read_text()),
                 **yaml.safe_load((role / "vars/main.yml").read_text()), "__containerd_version": version, **overrides}
    rendered = env.get_template("config.toml.j2").render(**variables)
    return tomllib.loads(rendered)


@pytest.mark.parametrize(("version", "table"), [
    ("1.6.20", ("plugins", "io.containerd.grpc.v1.cri")),
    ("2.1.4", ("plugins", "io.containerd.cri.v1.runtime")),
])
def test_restrict_oom_score_adj_is_off_by_default_and_in_the_cri_section(version: str, table: tuple[str, str]) -> None:
    config = _render_config(version)
    plugin: dict[str, object] = config[table[0]].get(table[1], {})  # type: ignore[attr-defined]
    assert "restrict_oom_score_adj" not in plugin
    config = _render_config(version, containerd_restrict_oom_score_adj=True)
    plugin = config[table[0]][table[1]]  # type: ignore[index]
    assert plugin["restrict_oom_score_adj"] is True
    assert plugin["containerd"]["default_runtime_name"] == "runc"
