"""The molecule scenarios on sandbox nodes, run as an operator runs them: `molecule test -s NAME` from the checkout.

default: flannel on 1 control plane + 2 workers; calico: 3 control planes + 3 workers (VXLAN, block size 27).
Each: create (kubeboot sandbox), converge site.yml, idempotence (changed=0), verify (nodes and cluster), side effect
reset.yml with the leftover check, destroy. The `vagrant` scenario needs the VM host services (README).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import molecule_test, sandbox_unavailable

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ACTIONS = ("destroy", "syntax", "create", "converge", "idempotence", "verify", "side_effect", "destroy")


@pytest.mark.parametrize("scenario", ["default", "calico"])
def test_scenario_passes_every_action(scenario: str) -> None:
    if reason := sandbox_unavailable():
        pytest.skip(reason)
    molecule_test(scenario, dict(os.environ), ACTIONS, timeout=1800)
