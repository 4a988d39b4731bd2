"""NFS on real kernels: one VM serves the MongoDB export, the other is a cluster node that mounts it.

playbooks/nfs.yml with vm1 in nfs_server and vm2 the (only) cluster node, so vm2's address is the export's default
client: it converges, a second run changes nothing, vm2 mounts over NFSv4 (NFSv3 is not served) and a file root
creates there is root's on the server (no_root_squash); a mount from an address that is not a client is refused;
changing the export's options re-exports without restarting the server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import kubeboot, recap, run_ansible, task_results
from tests.vagrant.conftest import HOST_SUBNET, VagrantVMs

pytestmark = [pytest.mark.vagrant, pytest.mark.slow]

EXPORT = "/nfs_mongodb"
DATA = f"{EXPORT}/mongodb"
MOUNT = "/mnt/kubeboot-nfs-test"
# An address of the VMs' network outside libvirt's DHCP range (.100-.199): never a client of the export.
SPARE = str(ipaddress.ip_network(HOST_SUBNET).network_address + 250)


@dataclass
class NfsLab:
    vms: VagrantVMs
    inventory: Path
    server: str
    client: str

    @property
    def server_address(self) -> str:
        return self.vms.vms[self.server].address

    @property
    def client_address(self) -> str:
        return self.vms.vms[self.client].address

    def root(self, name: str, command: str, check: bool = True) -> Any:
        quoted = command.replace("'", "'\\''")
        return self.vms.ssh(name, f"sudo sh -c '{quoted}'", check=check)

    def playbook(self) -> Any:
        return run_ansible("ansible-playbook", "-i", str(self.inventory), "playbooks/nfs.yml", timeout=1800)

    def set_export(self, **fields: Any) -> None:
        export = {"path": EXPORT, "directories": [{"path": "mongodb", "owner": "999", "group": "999", "mode": "0700"}],
                  "volume": {"name": "mongodb", "path": DATA}, **fields}
        (self.inventory.parent / "host_vars").mkdir(exist_ok=True)
        (self.inventory.parent / "host_vars" / f"{self.server}.yml").write_text(
            "---\n" + yaml.safe_dump({"nfs_exports": [export]}, sort_keys=False))

    def nfs_server_state(self) -> tuple[str, str]:
        unit = self.root(self.server, "systemctl show nfs-server -p MainPID -p ActiveEnterTimestamp "
                                      "-p InvocationID").stdout
        threads = self.root(self.server, "pgrep -x nfsd | sort -n | tr '\\n' ' '").stdout
        return unit, threads


@pytest.fixture(scope="module")
def lab(vagrant_vms: VagrantVMs, tmp_path_factory: pytest.TempPathFactory) -> NfsLab:
    server, client = sorted(vagrant_vms.vms)[:2]
    connection = yaml.safe_load(vagrant_vms.inventory.read_text())["all"]["hosts"]
    inventory = tmp_path_factory.mktemp("nfs-inventory") / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "kube_control_plane": {"hosts": {client: connection[client]}},
        "k8s_cluster": {"children": {"kube_control_plane": None}},
        "nfs_server": {"hosts": {server: connection[server]}},
    }}}))
    (inventory.parent / "group_vars").mkdir()
    (inventory.parent / "group_vars/all.yml").write_text("---\nnfs_check_mounts: true\n")
    nfs_lab = NfsLab(vms=vagrant_vms, inventory=inventory, server=server, client=client)
    nfs_lab.set_export()
    return nfs_lab


@pytest.fixture(scope="module")
def runs(lab: NfsLab) -> dict[str, str]:
    validated = kubeboot("validate", "-i", str(lab.inventory))
    assert "0 error(s)" in validated.stdout
    first = lab.playbook()
    second = lab.playbook()
    return {"first": first.stdout, "second": second.stdout}


def test_converges_and_a_second_run_changes_nothing(lab: NfsLab, runs: dict[str, str]) -> None:
    first, second = recap(runs["first"]), recap(runs["second"])
    assert first[lab.server]["changed"] > 0 and first[lab.client]["changed"] > 0
    for name in (lab.server, lab.client):
        assert second[name]["changed"] == 0 and second[name]["failed"] == 0, task_results(runs["second"])
    # the client's mount check ran (and found NFS) on both runs
    assert "NFS client | Mount each volume once" in runs["second"]
    assert f"ok: [{lab.client}] => (item={lab.server_address}:{DATA})" in runs["second"]


@pytest.mark.usefixtures("runs")
def test_server_serves_nfsv4_only_to_the_cluster_nodes(lab: NfsLab) -> None:
    versions = lab.root(lab.server, "cat /proc/fs/nfsd/versions").stdout.split()
    assert "-3" in versions and "+4.2" in versions, versions
    exports = lab.root(lab.server, "cat /etc/exports.d/kubeboot.exports").stdout
    assert re.search(rf"^{EXPORT} \\\n\s+{re.escape(lab.client_address)}\(rw,sync,no_subtree_check,no_root_squash\)$",
                     exports, re.MULTILINE), exports
    active = lab.root(lab.server, "exportfs -v").stdout
    assert re.search(rf"^{EXPORT}\s+{re.escape(lab.client_address)}\(.*\bno_root_squash\b", active, re.MULTILINE), \
        active
    owner = lab.root(lab.server, f"stat -c '%u:%g %a' {EXPORT} {DATA}").stdout.split("\n")
    assert owner[:2] == ["0:0 755", "999:999 700"]
    assert lab.root(lab.server, "systemctl is-enabled nfs-server").stdout.strip() == "enabled"


@pytest.fixture
def mounted(lab: NfsLab) -> Iterator[str]:
    lab.root(lab.client, f"mkdir -p {MOUNT} && mount -t nfs -o nfsvers=4.2,hard {lab.server_address}:{EXPORT} "
                         f"{MOUNT}")
    try:
        yield MOUNT
    finally:
        lab.root(lab.client, f"umount {MOUNT}; rmdir {MOUNT}", check=False)


@pytest.mark.usefixtures("runs")
def test_root_on_the_client_stays_root_on_the_server(lab: NfsLab, mounted: str) -> None:
    fstype = lab.root(lab.client, f"findmnt -n -o FSTYPE,OPTIONS {mounted}").stdout
    assert fstype.startswith("nfs4 ") and "vers=4.2" in fstype, fstype
    lab.root(lab.client, f"echo written-by-root > {mounted}/mongodb/root-file && "
                         f"chown 999:999 {mounted}/mongodb && touch {mounted}/mongodb/root-file-2")
    owners = lab.root(lab.server, f"stat -c '%n %u:%g' {DATA}/root-file {DATA}/root-file-2").stdout.splitlines()
    assert owners == [f"{DATA}/root-file 0:0", f"{DATA}/root-file-2 0:0"]
    assert lab.root(lab.server, f"cat {DATA}/root-file").stdout.strip() == "written-by-root"
    lab.root(lab.server, f"rm -f {DATA}/root-file {DATA}/root-file-2")


@pytest.mark.usefixtures("runs")
def test_nfsv3_is_not_served(lab: NfsLab) -> None:
    result = lab.root(lab.client, f"mkdir -p {MOUNT}v3 && timeout 120 mount -t nfs -o nfsvers=3,retry=0 "
                                  f"{lab.server_address}:{EXPORT} {MOUNT}v3; rc=$?; "
                                  f"umount {MOUNT}v3 2>/dev/null; rmdir {MOUNT}v3; exit $rc", check=False)
    assert result.returncode != 0, result.stdout + result.stderr


@pytest.mark.usefixtures("runs")
def test_an_address_not_in_the_client_list_is_refused(lab: NfsLab) -> None:
    """vm2 reaches the server from a second address of its own (a host route with that source): refused."""
    assert lab.root(lab.client, "findmnt -t nfs4,nfs -n", check=False).stdout.strip() == ""  # no shared transport
    device = lab.root(lab.client, f"ip -4 route get {lab.server_address}").stdout.split(" dev ")[1].split()[0]
    lab.root(lab.client, f"ip addr add {SPARE}/32 dev {device} && "
                         f"ip route add {lab.server_address}/32 dev {device} src {SPARE}")
    try:
        route = lab.root(lab.client, f"ip -4 route get {lab.server_address}").stdout
        assert f"src {SPARE}" in route, route
        result = lab.root(lab.client, f"mkdir -p {MOUNT}x && timeout 120 mount -t nfs -o nfsvers=4.2,retry=0 "
                                      f"{lab.server_address}:{EXPORT} {MOUNT}x", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert re.search(r"access denied|Permission denied", output), output
    finally:
        lab.root(lab.client, f"umount {MOUNT}x 2>/dev/null; rmdir {MOUNT}x; "
                             f"ip route del {lab.server_address}/32 dev {device} src {SPARE}; "
                             f"ip addr del {SPARE}/32 dev {device}", check=False)
    assert SPARE not in lab.root(lab.client, "ip -4 -o addr show").stdout


@pytest.mark.usefixtures("runs")
def test_changed_options_re_export_without_restarting_the_server(lab: NfsLab) -> None:
    before = lab.nfs_server_state()
    lab.set_export(options="rw,async,no_subtree_check,no_root_squash")
    run = lab.playbook()
    counts = recap(run.stdout)
    assert counts[lab.server]["changed"] > 0 and counts[lab.client]["changed"] == 0
    assert "RUNNING HANDLER [nfs_server : NFS server | Re-export]" in run.stdout
    assert "Restart the NFS server" not in run.stdout
    assert lab.nfs_server_state() == before
    active = re.sub(r"\n\s+", " ", lab.root(lab.server, "exportfs -v").stdout)
    line = next(line for line in active.splitlines() if line.startswith(EXPORT))
    assert re.search(rf"{re.escape(lab.client_address)}\(.*\basync\b", line) and "(sync" not in line, line
