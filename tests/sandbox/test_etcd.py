"""etcd backup and restore on sandbox nodes whose stand-in control planes run Debian's real etcd as kubeadm's local
etcd (the API server keeps its objects there).

pytestetcd (1 control plane + 1 worker): ConfigMaps made, playbooks/etcd_backup.yml fetches a checked snapshot (its
.sha256 in sha256sum format), check mode takes none, the backup timer comes and goes with etcd_backup_schedule and a
second run leaves it unchanged, -vvv prints no key. The ConfigMaps are then changed; playbooks/etcd_restore.yml
refuses without confirmation, without a snapshot, and with a damaged one (a trial restore, or its .sha256), each
time before anything stops; with the good one the backed-up objects are back, the later ones gone and the old data
kept aside. The restore of three control planes runs on the HA endpoint's cluster (tests/sandbox/test_ha.py).
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, recap, task_results
from tests.sandbox.cluster_helpers import KUBECTL, assert_unchanged, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

HOSTS = {"cp1", "worker1"}
KEPT = ["keep-1", "keep-2", "keep-3"]
LATER = ["after-backup-1", "after-backup-2"]
ETCDCTL = ("ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key")


def flat(text: str) -> str:
    """Output with its line wrapping undone (the yaml callback folds long messages)."""
    return " ".join(text.split())


def write_vars(box: Sandbox, **extra: Any) -> None:
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    lines = ["---", *(f"{k}: {v}" for k, v in extra.items())]
    (group_vars / "all.yml").write_text("\n".join(lines) + "\n")


def backups(box: Sandbox) -> Path:
    return box.inventory.parent / "etcd-backups" / "kubernetes"


def configmaps(box: Sandbox, node: str = "cp1") -> set[str]:
    out = box.ssh(node, f"{KUBECTL} -n default get configmaps -o name").stdout
    return {line.removeprefix("configmap/") for line in out.split()}


def create_configmaps(box: Sandbox, names: list[str]) -> None:
    for name in names:
        box.ssh("cp1", f"{KUBECTL} -n default create configmap {name} --from-literal=name={name}")


def control_plane_untouched(box: Sandbox, node: str = "cp1") -> None:
    """The API answers, both manifests are in the kubelet's directory, and no restore left anything behind."""
    assert box.ssh(node, f"{KUBECTL} get --raw /readyz").stdout.strip() == "ok"
    box.ssh(node, "test -e /etc/kubernetes/manifests/etcd.yaml "
            "&& test -e /etc/kubernetes/manifests/kube-apiserver.yaml")
    left = box.ssh(node, "ls -d /etc/kubernetes/kubeboot-etcd-restore /var/lib/kubeboot-etcd-restore "
                   "/var/lib/etcd.before-restore-* 2>/dev/null || true").stdout.split()
    assert left == [], left


def restore(box: Sandbox, snapshot: Path | str, *extra: str) -> Any:
    return box.playbook("playbooks/etcd_restore.yml", "-e", f"etcd_restore_snapshot={snapshot}", *extra, check=False)


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestetcd", "--layout", "1cp1w", "--standin", "--subnet", "10.213.49.0/24")
    write_vars(sandbox)
    sandbox.playbook("site.yml")
    create_configmaps(sandbox, KEPT)
    return sandbox


@pytest.fixture(scope="module")
def backup(box: Sandbox) -> tuple[Path, str]:
    """The first backup: its snapshot on the controller and the playbook's output."""
    run = box.playbook("playbooks/etcd_backup.yml")
    snapshots = sorted(backups(box).glob("*.db"))
    assert len(snapshots) == 1, snapshots
    return snapshots[0], run.stdout


def test_backup_fetches_a_checked_snapshot(box: Sandbox, backup: tuple[Path, str]) -> None:
    snapshot, output = backup
    assert ready_nodes(box) == HOSTS
    assert snapshot.stat().st_mode & 0o777 == 0o600 and backups(box).stat().st_mode & 0o777 == 0o700
    line = (snapshot.parent / f"{snapshot.name}.sha256").read_text()
    assert line == f"{hashlib.sha256(snapshot.read_bytes()).hexdigest()}  {snapshot.name}\n"
    summary = flat(output)
    assert f"etcd backup: {snapshot}, {snapshot.stat().st_size} bytes, revision" in summary
    assert "keys, hash" in summary and "(from cp1)" in summary
    counts = recap(output)
    assert counts["cp1"]["changed"] > 0 and counts["cp1"]["failed"] == 0
    assert "worker1" not in counts or counts["worker1"]["changed"] == 0
    assert box.ssh("cp1", "ls -d /tmp/kubeboot-etcd-backup.* 2>/dev/null || true").stdout.strip() == ""


@pytest.mark.usefixtures("backup")
def test_check_mode_takes_no_snapshot(box: Sandbox) -> None:
    before = sorted(backups(box).iterdir())
    run = box.playbook("playbooks/etcd_backup.yml", "--check")
    assert "Check mode: no etcd snapshot is taken" in run.stdout
    assert recap(run.stdout)["cp1"]["failed"] == 0
    assert sorted(backups(box).iterdir()) == before


@pytest.mark.usefixtures("backup")
def test_the_backup_timer_comes_and_goes_with_the_schedule(box: Sandbox) -> None:
    write_vars(box, etcd_backup_schedule='"*-*-* 03:30:00"', etcd_backup_keep=2)
    box.playbook("playbooks/etcd_backup.yml", "-e", "etcd_backup_now=false")
    assert box.ssh("cp1", "systemctl is-enabled kubeboot-etcd-backup.timer").stdout.strip() == "enabled"
    assert "OnCalendar=*-*-* 03:30:00" in box.ssh("cp1", "cat /etc/systemd/system/kubeboot-etcd-backup.timer").stdout
    assert_unchanged(box.playbook("playbooks/etcd_backup.yml", "-e", "etcd_backup_now=false").stdout, {"cp1"})
    # A full second run takes a new snapshot (a change) and leaves the timer as it is.
    run = box.playbook("playbooks/etcd_backup.yml")
    changed = task_results(run.stdout, ("changed",))
    assert "Snapshot | Save it" in changed and "Timer" not in changed, changed
    # The service saves local snapshots and keeps the newest two.
    for _ in range(3):
        box.ssh("cp1", "systemctl start kubeboot-etcd-backup.service")
    listed = box.ssh("cp1", "ls /var/backups/kubeboot-etcd").stdout.split()
    assert len([n for n in listed if n.endswith(".db")]) == 2 and len(listed) == 4, listed
    box.ssh("cp1", "cd /var/backups/kubeboot-etcd && sha256sum -c *.sha256")
    write_vars(box, etcd_backup_keep=2)
    box.playbook("playbooks/etcd_backup.yml", "-e", "etcd_backup_now=false")
    gone = box.ssh("cp1", "test -e /etc/systemd/system/kubeboot-etcd-backup.timer "
                   "|| test -e /usr/local/sbin/kubeboot-etcd-backup", check=False)
    assert gone.returncode != 0
    assert_unchanged(box.playbook("playbooks/etcd_backup.yml", "-e", "etcd_backup_now=false").stdout, {"cp1"})
    # The controller keeps the etcd_backup_keep newest.
    assert len(list(backups(box).glob("*.db"))) == 2 and len(list(backups(box).glob("*.db.sha256"))) == 2
    write_vars(box)


@pytest.mark.usefixtures("backup")
def test_a_backup_at_vvv_prints_no_key(box: Sandbox) -> None:
    run = box.playbook("playbooks/etcd_backup.yml", "-vvv")
    assert recap(run.stdout)["cp1"]["changed"] > 0
    for secret in ("PRIVATE KEY", "client-key-data"):
        assert secret not in run.stdout + run.stderr, secret


@pytest.fixture(scope="module")
def changed_after_backup(box: Sandbox, backup: tuple[Path, str]) -> Path:
    """The kept ConfigMaps deleted and others made after the first backup; that backup's snapshot."""
    box.ssh("cp1", f"{KUBECTL} -n default delete configmap {' '.join(KEPT)}")
    create_configmaps(box, LATER)
    assert set(LATER) <= configmaps(box) and not set(KEPT) & configmaps(box)
    return backup[0]


def test_restore_without_confirmation_touches_nothing(box: Sandbox, changed_after_backup: Path) -> None:
    run = restore(box, changed_after_backup)
    assert run.returncode != 0
    assert "Nothing was stopped or restored: set etcd_restore_confirm to true" in flat(run.stdout)
    assert all(c["changed"] == 0 for c in recap(run.stdout).values())
    assert "cp1" not in recap(run.stdout)  # refused on the controller, before any host
    control_plane_untouched(box)


def test_restore_without_a_snapshot_touches_nothing(box: Sandbox, changed_after_backup: Path) -> None:
    run = restore(box, changed_after_backup.parent / "nope.db", "-e", "etcd_restore_confirm=true")
    assert run.returncode != 0
    assert "is not a file on the controller" in flat(run.stdout) and "cp1" not in recap(run.stdout)
    control_plane_untouched(box)


def damaged_copy(snapshot: Path, dest: Path) -> Path:
    data = bytearray(snapshot.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    dest.write_bytes(bytes(data))
    return dest


def test_a_damaged_snapshot_is_refused_before_anything_stops(box: Sandbox, changed_after_backup: Path,
                                                             tmp_path: Path) -> None:
    damaged = damaged_copy(changed_after_backup, tmp_path / "damaged.db")
    run = restore(box, damaged, "-e", "etcd_restore_confirm=true")
    assert run.returncode != 0
    text = flat(run.stdout)
    assert f"etcd_restore_snapshot = {damaged} fails etcd's integrity check in a trial restore on cp1" in text
    assert "Nothing was stopped." in text
    control_plane_untouched(box)
    # With the good snapshot's .sha256 beside it, the checksum refuses it before it is even copied.
    (tmp_path / "damaged.db.sha256").write_text(
        (changed_after_backup.parent / f"{changed_after_backup.name}.sha256").read_text())
    run = restore(box, damaged, "-e", "etcd_restore_confirm=true")
    assert run.returncode != 0
    assert f"etcd_restore_snapshot = {damaged} does not match {damaged}.sha256" in flat(run.stdout)
    control_plane_untouched(box)
    assert set(LATER) <= configmaps(box)


def test_restore_brings_the_backed_up_objects_back(box: Sandbox, changed_after_backup: Path) -> None:
    run = restore(box, changed_after_backup, "-e", "etcd_restore_confirm=true")
    assert run.returncode == 0, task_results(run.stdout, ("fatal", "failed")) + run.stdout[-3000:]
    found = configmaps(box)
    assert set(KEPT) <= found and not set(LATER) & found, found
    assert f"etcd restored from {changed_after_backup}" in flat(run.stdout)
    aside = box.ssh("cp1", "ls -d /var/lib/etcd.before-restore-*").stdout.split()
    assert len(aside) == 1
    box.ssh("cp1", f"test -d {shlex.quote(aside[0])}/member")
    assert box.ssh("cp1", "stat -c %a /var/lib/etcd").stdout.strip() == "700"
    left = box.ssh("cp1", "ls -d /etc/kubernetes/kubeboot-etcd-restore /var/lib/kubeboot-etcd-restore "
                   "2>/dev/null || true").stdout.split()
    assert left == []
    assert ready_nodes(box) == HOSTS
    for secret in ("PRIVATE KEY", "client-key-data"):
        assert secret not in run.stdout, secret

