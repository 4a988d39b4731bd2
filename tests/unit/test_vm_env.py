"""What `kubeboot vm host up --env` tells the Vagrant molecule scenarios, and that the scenarios find it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeboot.vm import host

ROOT = Path(__file__).resolve().parents[2]
VAGRANT_SCENARIOS = ["vagrant", "nfs_server"]


def info() -> host.HostInfo:
    return host.HostInfo(name="default", network="kubeboot-vm", subnet="10.213.100.0/24", address="10.213.100.1",
                         pool="kubeboot-vm", apt_proxy="http://10.213.100.1:3150")


def test_emulated_vms_get_the_mitogen_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBOOT_VM_DRIVER", raising=False)
    assert info().env()["KUBEBOOT_MOLECULE_STRATEGY"] == "mitogen_linear"


def test_kvm_vms_keep_the_default_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEBOOT_VM_DRIVER", "kvm")
    assert "KUBEBOOT_MOLECULE_STRATEGY" not in info().env()


@pytest.mark.parametrize("scenario", VAGRANT_SCENARIOS)
def test_the_scenario_finds_the_strategy_it_is_given(scenario: str) -> None:
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    env = config["provisioner"]["env"]
    assert env["ANSIBLE_STRATEGY"] == "${KUBEBOOT_MOLECULE_STRATEGY:-linear}"
    plugins = Path(env["ANSIBLE_STRATEGY_PLUGINS"].replace("${MOLECULE_PROJECT_DIRECTORY}", str(ROOT)))
    assert (plugins / "mitogen_linear.py").is_file(), f"{scenario}: no mitogen strategy in {plugins}"
