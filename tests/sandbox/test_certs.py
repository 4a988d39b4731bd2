"""Certificates on sandbox nodes running the stand-in (whose kubeadm issues, checks and renews them as kubeadm 1.33).

pytestcerts (1 control plane + 1 worker), made with certificates valid for 2 hours (kube_certificate_validity), so
nothing waits on a clock: site.yml warns about them and `kubeboot status` marks them; with the validity back to
kubeadm's year, playbooks/certs.yml renews them all, restarts the control plane and keeps the API answering, and
refreshes the fetched admin kubeconfig; a second run and check mode change nothing; kube_certificate_auto_renew
installs the monthly timer and turning it off removes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from kubeboot import certs
from tests.conftest import Sandbox, recap
from tests.sandbox.cluster_helpers import assert_unchanged, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.47.0/24"
HOSTS = {"cp1", "worker1"}


def write_vars(box: Sandbox, **extra: Any) -> None:
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    lines = ["---", "cluster_report_fetch_kubeconfig: true", *(f"{k}: {v}" for k, v in extra.items())]
    (group_vars / "all.yml").write_text("\n".join(lines) + "\n")


def expiration(box: Sandbox) -> dict[str, list[dict[str, Any]]]:
    return certs.parse_expiration(box.ssh("cp1", "kubeadm certs check-expiration").stdout)


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestcerts", "--layout", "1cp1w", "--standin", "--subnet", SUBNET)
    write_vars(sandbox, kube_certificate_validity="2h")
    return sandbox


@pytest.fixture(scope="module")
def short_lived(box: Sandbox) -> str:
    return box.playbook("site.yml").stdout


def test_short_lived_certificates_are_reported_by_site(box: Sandbox, short_lived: str) -> None:
    assert ready_nodes(box) == HOSTS
    report = expiration(box)
    leaves = {c["name"]: c["days_left"] for c in report["certificates"] if not c["missing"]}
    assert "apiserver" in leaves and all(0 < days < 2 / 24 for days in leaves.values()), leaves
    assert all(a["days_left"] > 3000 for a in report["authorities"]), report["authorities"]
    assert "WARNING: cp1:" in short_lived and "expire within 30 days" in short_lived
    assert "playbooks/certs.yml" in short_lived


def status(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeboot", "status", "-i", str(box.inventory), *args],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.usefixtures("short_lived")
def test_status_marks_the_short_lived_certificates_of_each_node(box: Sandbox) -> None:
    # Runs while the certificates are the 2-hour ones, before the renewal below.
    run = status(box)
    assert run.returncode == 3, run.stdout[-3000:] + run.stderr  # as for drift: a certificate to renew
    assert "no drift: the cluster is as the inventory declares" in run.stdout
    section = run.stdout.split("Certificates (whole days left; marked within kube_certificate_warn_days = 30 days "
                               "of expiry):\n", 1)[1].split("\n\n", 1)[0]
    nodes = [line.strip().split(" (")[0] for line in section.splitlines() if not line.startswith("    ")]
    assert nodes == ["cp1", "worker1"], section
    rows = {(node, line.split()[0]): line.split() for node, block in
            zip(["cp1", "worker1"], section.split("\n  worker1 ")[:2], strict=True)
            for line in block.splitlines() if line.startswith("    ") and "NAME" not in line}
    leaves = [r for (node, _), r in rows.items() if node == "cp1" and r[1] in ("certificate", "kubeconfig")]
    assert {r[0] for r in leaves} >= {"apiserver", "admin.conf", "etcd-server", "front-proxy-client"}, section
    assert all(r[-2:] == ["0", "WARN"] for r in leaves if r[-1] != "missing"), section
    assert all(r[-1] == "ok" for (node, _), r in rows.items() if r[1] == "authority"), section
    assert rows["cp1", "kubelet-client-current.pem"][1] == "kubelet", section
    assert rows["worker1", "kubelet-client-current.pem"][1] == "kubelet", section
    warning = next(line for line in run.stdout.splitlines() if line.startswith("WARNING: cp1: "))
    assert "apiserver (0 days left)" in warning, warning
    assert warning.endswith(f"renew them with `ansible-playbook -i {box.inventory} playbooks/certs.yml`")

    document = json.loads(status(box, "--json").stdout)
    assert document["exit_code"] == 3 and document["certificate_warn_days"] == 30
    found = {n["name"]: n["certificates"] for n in document["nodes"]}
    assert found["cp1"]["read"] and found["cp1"]["control_plane"] and found["worker1"]["read"]
    apiserver = next(i for i in found["cp1"]["items"] if i["name"] == "apiserver")
    assert apiserver["state"] == "WARN" and 0 < apiserver["days_left"] < 2 / 24
    assert [i["kind"] for i in found["worker1"]["items"]] == ["kubelet"]


@pytest.mark.usefixtures("short_lived")
def test_certs_renews_everything_keeps_the_api_and_refreshes_the_kubeconfig(box: Sandbox) -> None:
    kubeconfig = box.inventory.parent / "admin.conf"
    before = kubeconfig.read_text()
    write_vars(box)  # kubeadm's default validity again
    run = box.playbook("playbooks/certs.yml")
    counts = recap(run.stdout)
    assert counts["cp1"]["changed"] > 0 and counts["cp1"]["failed"] == 0, run.stdout[-3000:]
    assert counts["worker1"]["changed"] == 0  # the workers only give their facts
    report = expiration(box)
    assert all(c["days_left"] > 360 for c in report["certificates"] if not c["missing"]), report["certificates"]
    assert certs.due(report, 30) == []
    assert "certificates renewed, control plane restarted and ready" in run.stdout
    assert ready_nodes(box) == HOSTS
    after = kubeconfig.read_text()
    assert after != before and kubeconfig.stat().st_mode & 0o777 == 0o600
    nodes = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "name"],
                           capture_output=True, text=True, check=False, timeout=60)
    assert nodes.returncode == 0 and "node/cp1" in nodes.stdout, nodes.stderr
    assert "BEGIN" not in run.stdout and "PRIVATE KEY" not in run.stdout


@pytest.mark.usefixtures("short_lived")
def test_a_second_run_and_check_mode_change_nothing(box: Sandbox) -> None:
    assert_unchanged(box.playbook("playbooks/certs.yml").stdout, {"cp1"})
    assert_unchanged(box.playbook("playbooks/certs.yml", "--check").stdout, {"cp1"})


@pytest.mark.usefixtures("short_lived")
def test_the_monthly_timer_comes_and_goes_with_the_setting(box: Sandbox) -> None:
    write_vars(box, kube_certificate_auto_renew="true")
    box.playbook("playbooks/certs.yml")
    assert box.ssh("cp1", "systemctl is-enabled kubeboot-certs-renew.timer").stdout.strip() == "enabled"
    assert "OnCalendar=*-*-01 03:00:00" in box.ssh("cp1", "cat /etc/systemd/system/kubeboot-certs-renew.timer").stdout
    assert_unchanged(box.playbook("playbooks/certs.yml").stdout, {"cp1"})
    write_vars(box)
    box.playbook("playbooks/certs.yml")
    gone = box.ssh("cp1", "test -e /etc/systemd/system/kubeboot-certs-renew.timer", check=False)
    assert gone.returncode != 0
    # Stopped (inactive, or failed: its service unit is gone) and no longer enabled: it fires no more.
    assert box.ssh("cp1", "systemctl is-active kubeboot-certs-renew.timer", check=False).stdout.strip() != "active"
    assert box.ssh("cp1", "systemctl is-enabled kubeboot-certs-renew.timer", check=False).stdout.strip() != "enabled"
    assert_unchanged(box.playbook("playbooks/certs.yml").stdout, {"cp1"})


@pytest.mark.usefixtures("short_lived")
def test_a_forced_renewal_prints_no_key_even_at_vvv(box: Sandbox) -> None:
    run = box.playbook("playbooks/certs.yml", "-vvv", "-e", "certs_force=true")
    assert recap(run.stdout)["cp1"]["changed"] > 0
    for secret in ("PRIVATE KEY", "client-key-data", "client-certificate-data"):
        assert secret not in run.stdout, secret


def test_bad_validity_is_refused_before_anything_changes(box: Sandbox) -> None:
    write_vars(box, kube_certificate_validity="1y")
    run = box.playbook("playbooks/certs.yml", check=False)
    write_vars(box)
    assert run.returncode != 0
    assert "kube_certificate_validity" in run.stdout and "positive duration" in run.stdout
    assert all(c["changed"] == 0 for c in recap(run.stdout).values())
