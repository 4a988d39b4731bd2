"""Shared test fixtures: a sandbox of real local nodes that any test can start (and always stops)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeboot.sandbox.state import state_root

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def kubeboot(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(VENV_BIN / "kubeboot"), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubeboot {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


RERUNS = int(os.environ.get("KUBEBOOT_RERUNS", "1"))


# The longest modules first (measured, longest first): with pytest-xdist's --dist loadfile each worker takes whole
# modules in collection order, so a long module started last would leave the other worker idle at the end.
LONGEST_FIRST = ("test_ha.py", "test_upgrade.py", "test_cluster.py", "test_reset.py", "test_scale.py",
                 "test_etcd.py", "test_node_meta.py", "test_certs.py", "test_prepare.py", "test_pods.py")


def _module_rank(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if item.path.parent.name == "sandbox" and name in LONGEST_FIRST \
        else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest sandbox modules first (LONGEST_FIRST; a stable sort keeps the order within each module).

    Tests on sandbox nodes and VMs share a 2-core host with SSH, D-Bus and QEMU: a failure is run once more
    (KUBEBOOT_RERUNS, 0 turns it off) and shows as R, and in the rerun summary, so that it is seen, not hidden."""
    items.sort(key=_module_rank)
    if RERUNS <= 0:
        return
    for item in items:
        if (item.get_closest_marker("sandbox") or item.get_closest_marker("vagrant")) \
                and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=RERUNS, reruns_delay=10))


_FAILED_FIXTURES: dict[tuple[str, str], BaseException] = {}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """A module- or session-scoped fixture that failed is not run again for the next test, nor for a rerun: the
    rerun of a test would otherwise repeat a whole cluster converge (minutes) for every test of the module. The
    first failure is raised again at once."""
    if fixturedef.scope == "function":
        return (yield)
    key = (fixturedef.argname, request.node.nodeid)
    if key in _FAILED_FIXTURES:
        exc = _FAILED_FIXTURES[key]
        fixturedef.cached_result = (None, fixturedef.cache_key(request), (exc, exc.__traceback__))  # as pytest does
        raise exc
    try:
        return (yield)
    except BaseException as exc:
        _FAILED_FIXTURES[key] = exc
        raise


def sandbox_unavailable() -> str | None:
    """Why sandbox tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "sandbox tests need root (bridges, mounts, systemd-nspawn)"
    for tool in ("systemd-nspawn", "debootstrap", "apt-cacher-ng", "iptables"):
        if shutil.which(tool) is None:
            return f"sandbox tests need {tool}: run scripts/setup.sh"
    return None


@dataclass
class Sandbox:
    """A running sandbox brought up through the CLI, as an operator would."""

    name: str
    inventory: Path
    nodes: dict[str, Any] = field(default_factory=dict)
    # --standin: each minor the stand-in serves -> the variables pointing a cluster at it (an upgrade's target)
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def up(self, *args: str) -> dict[str, Any]:
        result = kubeboot("sandbox", "up", "--name", self.name, "--inventory", str(self.inventory), "--json", *args)
        data: dict[str, Any] = json.loads(result.stdout)
        self.nodes = data["nodes"]
        self.releases = data.get("standin_releases") or {}
        return data

    def down(self) -> subprocess.CompletedProcess[str]:
        return kubeboot("sandbox", "down", "--name", self.name)

    def ssh(self, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubeboot("sandbox", "ssh", "--name", self.name, node, "--", command, check=check, timeout=300)

    def ansible(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_ansible("ansible", "-i", str(self.inventory), *args, check=check, timeout=timeout)

    def playbook(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return run_ansible("ansible-playbook", "-i", str(self.inventory), *args, check=check, timeout=timeout)


def run_ansible(tool: str, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(VENV_BIN / tool), *args], capture_output=True, text=True, timeout=timeout,
                            cwd=REPO, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} exited {result.returncode}:\n"
                             f"{task_results(result.stdout, ('fatal', 'failed'))}\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def scenario_sequence(scenario: str) -> tuple[str, ...]:
    """The actions `molecule test -s SCENARIO` runs: the test_sequence of the scenario's molecule.yml."""
    config = yaml.safe_load((REPO / "molecule" / scenario / "molecule.yml").read_text())
    return tuple(config["scenario"]["test_sequence"])


def molecule_test(scenario: str, env: dict[str, str], timeout: float) -> str:
    """`molecule test -s SCENARIO` from the checkout, as an operator runs it; its output (colours removed).

    Asserts that every action of the scenario's sequence ran and passed (idempotence with changed=0 where the
    sequence has it). Whatever happens, the scenario is destroyed again and its ephemeral directory
    (~/.ansible/tmp/molecule.*) removed.
    """
    actions = scenario_sequence(scenario)
    molecule = str(VENV_BIN / "molecule")
    env = {**env, "PATH": f"{VENV_BIN}:{env.get('PATH', '')}", "NO_COLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    try:
        result = subprocess.run([molecule, "test", "-s", scenario], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=timeout, check=False)
    finally:
        destroyed = subprocess.run([molecule, "destroy", "-s", scenario], cwd=REPO, env=env, capture_output=True,
                                   text=True, timeout=900, check=False)
        subprocess.run([molecule, "reset", "-s", scenario], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    output = ANSI.sub("", result.stdout + result.stderr + "\n== molecule destroy\n"
                      + destroyed.stdout + destroyed.stderr)
    assert result.returncode == 0, output[-8000:]
    summary = re.search(rf"{scenario}\s*: actions=(\d+)\s+successful=(\d+).*failed=(\d+)", output)
    assert summary, output[-3000:]
    assert summary.groups() == (str(len(actions)), str(len(actions)), "0"), summary.group(0)
    if "idempotence" in actions:
        assert "idempotence: Executed: Successful" in output.replace("➜ ", "")
    return output


def task_results(output: str, kinds: tuple[str, ...] = ("changed",)) -> str:
    """Each task that reported one of `kinds` (changed, fatal, failed) for some host, with those lines."""
    found: list[str] = []
    task = ""
    detail: list[str] | None = None  # the indented result lines after a reported one (the yaml format's msg etc.)
    for line in output.splitlines():
        if detail is not None and line.startswith((" ", "\t")) and len(detail) < 25:
            detail.append(f"      {line.strip()[:300]}")
            continue
        if detail:
            found[-1] += "\n" + "\n".join(detail)
        detail = None
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.rstrip("* ")
        elif line.startswith(tuple(f"{kind}: [" for kind in kinds)):
            found.append(f"{task}\n    {line[:600]}")
            detail = [] if kind_wants_detail(line) else None
    if detail:
        found[-1] += "\n" + "\n".join(detail)
    return "\n".join(found) or f"(no task reported {'/'.join(kinds)})"


def kind_wants_detail(line: str) -> bool:
    """Failures carry their message on the lines that follow; changes need only the one line."""
    return line.startswith(("fatal: [", "failed: ["))


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counts per host, from ansible-playbook's output."""
    counts: dict[str, dict[str, int]] = {}
    for line in output.rsplit("PLAY RECAP", maxsplit=1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            counts[match[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[2])}
    return counts


@pytest.fixture(scope="module")
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Make sandboxes by name; every one made is brought down at the end of the test module, even on failure."""
    reason = sandbox_unavailable()
    if reason:
        pytest.skip(reason)
    made: list[Sandbox] = []

    def make(name: str, *args: str) -> Sandbox:
        # A rerun of the test that made it, or one left by a run that was cut off: start from nothing again.
        if any(b.name == name for b in made) or (state_root() / name / "state.json").exists():
            kubeboot("sandbox", "down", "--name", name, check=False)
        box = Sandbox(name=name, inventory=tmp_path_factory.mktemp(f"inv-{name}") / "hosts.yml")
        made.append(box)
        box.up(*args)
        return box

    try:
        yield make
    finally:
        for box in made:
            kubeboot("sandbox", "down", "--name", box.name, check=False)


@pytest.fixture(scope="module")
def sandbox3(sandbox_factory: Any) -> Sandbox:
    """Three ungrouped nodes with one extra NIC each, shared by the tests that only read or add to them."""
    box: Sandbox = sandbox_factory("pytest", "--nodes", "3", "--extra-nics", "1", "--subnet", "10.213.7.0/24")
    return box
