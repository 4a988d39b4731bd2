"""The molecule scenarios on sandbox nodes, run as an operator runs them: `molecule test -s NAME` from the checkout.

default: flannel on 1 control plane + 2 workers; calico: 3 control planes + 3 workers (VXLAN, block size 27).
Each: create (kubeboot sandbox), converge site.yml, idempotence (changed=0), verify (nodes and cluster), side effect
reset.yml with the leftover check, destroy. The `vagrant` scenario needs the VM host services (README).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import REPO, VENV_BIN, sandbox_unavailable

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ACTIONS = ("destroy", "syntax", "create", "converge", "idempotence", "verify", "side_effect", "destroy")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("scenario", ["default", "calico"])
def test_scenario_passes_every_action(scenario: str) -> None:
    if reason := sandbox_unavailable():
        pytest.skip(reason)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NO_COLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    try:
        result = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=1800, check=False)
    finally:
        subprocess.run([str(VENV_BIN / "molecule"), "destroy", "-s", scenario], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
        # and its ephemeral directory (~/.ansible/tmp/molecule.*), which molecule keeps after destroy
        subprocess.run([str(VENV_BIN / "molecule"), "reset", "-s", scenario], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output[-6000:]
    summary = re.search(rf"{scenario}\s*: actions=(\d+)\s+successful=(\d+).*failed=(\d+)", output)
    assert summary, output[-3000:]
    assert summary.groups() == (str(len(ACTIONS)), str(len(ACTIONS)), "0"), summary.group(0)
    assert "idempotence: Executed: Successful" in output.replace("➜ ", "")
