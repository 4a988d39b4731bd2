"""Cluster formation with calico on 3 control planes + 3 workers (sandbox + stand-in).

pytestcal: an init made to fail half-way by the stand-in's fault marker converges on a plain re-run; the control planes
join one at a time; the Installation in the cluster carries the pool, block size and encapsulation asked for; each
node has its tunnel; a further run changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Sandbox
from tests.sandbox.cluster_helpers import assert_unchanged, kubectl_json, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

CAL_SUBNET = "10.213.16.0/24"
CAL_POD_SUBNET = "10.90.0.0/16"


@pytest.fixture(scope="module")
def cal(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestcal", "--layout", "3cp3w", "--standin", "--subnet", CAL_SUBNET)
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(
        f"---\nkube_cni: calico\nkube_pod_subnet: {CAL_POD_SUBNET}\ncalico_block_size: 27\n"
        "calico_encapsulation: VXLAN\n")
    return box


@pytest.fixture(scope="module")
def cal_runs(cal: Sandbox) -> dict[str, str]:
    # The first control plane's init fails after its API server came up: a plain re-run resets it and inits again.
    cal.ssh("cp1", "mkdir -p /etc/kubeboot-standin/faults && echo upload-config > /etc/kubeboot-standin/faults/init")
    failed = cal.playbook("site.yml", check=False)
    rerun = cal.playbook("site.yml")
    again = cal.playbook("site.yml")
    return {"failed": failed.stdout, "rerun": rerun.stdout, "again": again.stdout,
            "failed_rc": str(failed.returncode)}


def test_an_init_failed_half_way_converges_on_a_plain_rerun(cal: Sandbox, cal_runs: dict[str, str]) -> None:
    assert cal_runs["failed_rc"] != "0"
    assert "fault injected by marker" in cal_runs["failed"]
    assert "Reset the half-finished init" in cal_runs["rerun"]
    assert ready_nodes(cal) == {"cp1", "cp2", "cp3", "worker1", "worker2", "worker3"}
    assert_unchanged(cal_runs["again"], {"cp1", "cp2", "cp3", "worker1", "worker2", "worker3"})


@pytest.mark.usefixtures("cal_runs")
def test_calico_pool_is_the_pod_subnet_with_the_block_size_and_encapsulation(cal: Sandbox) -> None:
    installation = kubectl_json(cal, "get installations.operator.tigera.io default")
    pool = installation["spec"]["calicoNetwork"]["ipPools"][0]
    assert (pool["cidr"], pool["blockSize"], pool["encapsulation"]) == (CAL_POD_SUBNET, 27, "VXLAN")
    assert installation["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"] == {"interface": "eth0"}
    # VXLAN rather than IPIP: this machine's kernel has no IPIP tunnel driver (CONFIG_NET_IPIP is not set).
    tunnel = json.loads(cal.ssh("worker1", "ip -j -d -4 addr show dev vxlan.calico").stdout)
    assert tunnel[0]["linkinfo"]["info_kind"] == "vxlan"
    address = tunnel[0]["addr_info"][0]["local"]
    assert address.startswith("10.90.")
    assert cal.ssh("worker1", "test -e /etc/cni/net.d/10-calico.conflist", check=False).returncode == 0
