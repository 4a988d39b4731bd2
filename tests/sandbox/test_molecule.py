"""The molecule scenarios on sandbox nodes, run as an operator runs them: `molecule test -s NAME` from the checkout.

Whole cluster: default (flannel on 1 control plane + 2 workers) and calico (3 control planes + 3 workers, VXLAN,
block size 27): create (kubeboot sandbox), converge site.yml, idempotence (changed=0), verify (nodes and cluster),
side effect reset.yml with the leftover check, destroy.
One role each: os_prep (with ufw active), containerd (mirrors, then a changed configuration), nic_rename (the SSH NIC
renamed to eth0 by reboot): converge, idempotence, check mode, verify.
Every scenario's whole test_sequence (its molecule.yml) must pass. The Vagrant scenarios are in tests/vagrant.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import molecule_test, sandbox_unavailable

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.mark.parametrize("scenario", ["default", "calico", "os_prep", "containerd", "nic_rename"])
def test_scenario_passes_every_action(scenario: str) -> None:
    if reason := sandbox_unavailable():
        pytest.skip(reason)
    molecule_test(scenario, dict(os.environ), timeout=1800)
