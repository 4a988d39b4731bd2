"""Node preparation (playbooks/prepare.yml, the part of site.yml before cluster formation) against sandbox nodes with
the stand-in package repository served. Cluster formation on top of it is tests/sandbox/test_cluster.py.

cp1 and worker2 install by package (pkgs.k8s.io layout, apt), worker1 by release binaries. Failures (a download that
does not match its SHA-256, a repository that does not answer) are shown on worker2 before it converges, and leave
nothing installed; an image repository the control plane cannot reach is shown on cp1 before it converges. The
stand-in's crictl reaches registry.k8s.io (tests/standin/README.md), and no name under .invalid resolves.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, recap, task_results

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.14"
PREPARE = "playbooks/prepare.yml"
BAD_PORT = 8099
KUBE_BINARIES = ("kubeadm", "kubelet", "kubectl")
UNREACHABLE_REGISTRY = "registry.invalid"


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestpkg", "--layout", "1cp2w", "--standin", "--subnet", f"{SUBNET}.0/24")
    host_vars = sandbox.inventory.parent / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / "worker1.yml").write_text("---\nkube_install_method: binary\n")
    # The stand-in's kubeadm, kubelet and crictl are Python programs: with the package method apt brings what they
    # need as dependencies; for the binary method (real ones are static binaries) the test node gets it beforehand.
    sandbox.ssh("worker1", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive"
                " apt-get install -y -qq python3-yaml python3-cryptography >/dev/null")
    return sandbox


def nodes_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP of the nodes."""
    counts = recap(output)
    assert "localhost" not in counts
    return counts


def installed_nothing(box: Sandbox, node: str) -> None:
    for name in KUBE_BINARIES:
        assert box.ssh(node, f"test ! -e /usr/local/bin/{name} && test ! -e /usr/bin/{name}", check=False).returncode \
            == 0, f"{node}: {name} was installed"
    assert box.ssh(node, "dpkg-query -W kubeadm kubelet kubectl", check=False).returncode != 0


def test_fresh_check_mode_runs_without_failing_and_installs_nothing(box: Sandbox) -> None:
    run = box.playbook(PREPARE, "--check", check=False)
    counts = nodes_recap(run.stdout)
    assert run.returncode == 0, run.stdout[-4000:]
    assert set(counts) == {"cp1", "worker1", "worker2"}
    assert all(c["failed"] == 0 and c["changed"] > 0 for c in counts.values())
    for node in ("cp1", "worker1"):
        installed_nothing(box, node)


def test_a_download_that_does_not_match_its_sha256_fails_clearly_and_installs_nothing(box: Sandbox) -> None:
    # A mirror on worker2's loopback: kubeadm and kubelet match their .sha256, kubectl does not.
    tree = f"/srv/mirror/v{box_version(box)}/bin/linux/amd64"
    script = [f"mkdir -p {tree} /srv/mirror/tools && cd {tree}"]
    for name in KUBE_BINARIES:
        content = f"#!/bin/sh\necho {name}\n"
        digest = hashlib.sha256(content.encode()).hexdigest() if name != "kubectl" else "0" * 64
        script.append(f"printf '%s' '{content}' > {name} && echo {digest} > {name}.sha256")
    script.append("cd /srv/mirror/tools && mkdir -p t && echo x > t/crictl && tar -C t -czf crictl.tar.gz crictl")
    script.append("tar -C t -czf cni.tgz crictl && sha256sum crictl.tar.gz cni.tgz > SUMS")
    script.append(f"systemd-run --unit kb-test-mirror python3 -m http.server {BAD_PORT} --bind 127.0.0.1"
                  " --directory /srv/mirror")
    box.ssh("worker2", " && ".join(script))
    try:
        sums = dict(reversed(line.split()) for line in box.ssh("worker2", "cat /srv/mirror/tools/SUMS").stdout.split(
            "\n") if line)
        base = f"http://127.0.0.1:{BAD_PORT}"
        run = box.playbook(
            PREPARE, "--limit", "worker2",
            "-e", "kube_install_method=binary", "-e", f"kube_download_url={base}",
            "-e", f"kube_packages_crictl_url={base}/tools/crictl.tar.gz",
            "-e", f"kube_packages_crictl_checksum={sums['crictl.tar.gz']}",
            "-e", f"kube_packages_cni_plugins_url={base}/tools/cni.tgz",
            "-e", f"kube_packages_cni_plugins_checksum={sums['cni.tgz']}",
            check=False,
        )
    finally:
        box.ssh("worker2", "systemctl stop kb-test-mirror; rm -rf /srv/mirror", check=False)
    assert run.returncode != 0
    failure = " ".join(run.stdout.split())  # the message as one line, whatever the callback's wrapping
    assert "Nothing was installed" in failure
    assert f"worker2: {base}/v{box_version(box)}/bin/linux/amd64/kubectl:" in failure
    assert "checksum" in failure.split("Nothing was installed")[0].lower()
    installed_nothing(box, "worker2")


def test_a_repository_that_does_not_answer_fails_fast_naming_the_url(box: Sandbox) -> None:
    url = f"http://{SUBNET}.1:9/core:/stable:/v1.33"  # the bridge address, a closed port
    started = time.monotonic()
    run = box.playbook(PREPARE, "--limit", "worker2", "-e", f"kube_package_repo_url={url}", check=False)
    seconds = time.monotonic() - started
    assert run.returncode != 0
    failure = " ".join(run.stdout.split())
    assert f"worker2: the Kubernetes package repository {url}/deb/ does not answer" in failure
    assert "kube_packages_repo_url" in failure
    print(f"unreachable repository: playbook failed after {seconds:.1f}s")
    assert box.ssh("worker2", "test ! -e /etc/apt/sources.list.d/kubernetes.list", check=False).returncode == 0
    installed_nothing(box, "worker2")


def kubeadm_images(box: Sandbox, repository: str = "registry.k8s.io") -> list[str]:
    return box.ssh("cp1", f"kubeadm config images list --kubernetes-version v{box_version(box)}"
                          f" --image-repository {repository}").stdout.split()


def node_images(box: Sandbox, node: str) -> set[str]:
    """repository:tag of every image on the node, from `crictl images`."""
    rows = box.ssh(node, "crictl images").stdout.splitlines()
    assert rows[0].split()[:2] == ["IMAGE", "TAG"], rows
    return {":".join(row.split()[:2]) for row in rows[1:]}


def test_an_image_repository_the_control_plane_cannot_reach_fails_clearly(
        box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # On the fresh cp1 (the converge below puts back the repository everything else uses). JSON results: the
    # failure is one line of the callback's output exactly when its message is one line.
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")
    run = box.playbook(PREPARE, "--limit", "cp1", "-e", f"kube_image_repository={UNREACHABLE_REGISTRY}", check=False)
    assert run.returncode != 0
    fatal = [line for line in run.stdout.splitlines() if line.startswith("fatal: [cp1]")]
    assert len(fatal) == 1, task_results(run.stdout, ("fatal", "failed"))
    assert "Stop when an image cannot be pulled" in run.stdout.split(fatal[0])[0].rsplit("TASK [", 1)[-1]
    msg = json.loads(fatal[0].split(" => ", 1)[1])["msg"]
    wanted = kubeadm_images(box, UNREACHABLE_REGISTRY)
    assert len(wanted) == 7 and all(image.startswith(f"{UNREACHABLE_REGISTRY}/") for image in wanted)
    assert msg.startswith(f"cp1: cannot pull {', '.join(wanted)} from {UNREACHABLE_REGISTRY}: pulling image: ")
    assert f"dial tcp: lookup {UNREACHABLE_REGISTRY} on " in msg and "no such host" in msg
    assert msg.endswith("Set kube_image_repository to a registry (a mirror of registry.k8s.io) that this node can"
                        " reach.")
    assert "\n" not in msg
    assert node_images(box, "cp1") == set()


@pytest.fixture(scope="module")
def converged(box: Sandbox) -> dict[str, str]:
    first = box.playbook(PREPARE)
    second = box.playbook(PREPARE)
    check = box.playbook(PREPARE, "--check", "--diff")
    return {"first": first.stdout, "second": second.stdout, "check": check.stdout}


def test_converge_then_second_run_and_check_mode_change_nothing(converged: dict[str, str]) -> None:
    assert all(c["changed"] > 0 and c["failed"] == 0 for c in nodes_recap(converged["first"]).values())
    for run in ("second", "check"):
        counts = nodes_recap(converged[run])
        assert set(counts) == {"cp1", "worker1", "worker2"}
        assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), \
            task_results(converged[run], ("changed", "fatal", "failed"))


# The includes that hold each role's work on a node. A prepared node with packages (cp1, with its images pulled, and
# worker2) ends its preparation at the one read of the node and reaches none of them; worker1, which installs the
# Kubernetes binaries, not packages, goes on and skips them all.
WORK_INCLUDES = (
    "os_prep : OS prep | Bring the node in line",
    "containerd : Containerd | Install, configure, enable and start",
    "kube_packages : Kube packages | The repository",
    "kube_packages : Kube packages | Install by package and enable the kubelet",
)
READ = "Prepare | Read what the node has of its preparation"
ALL_NODES = ("cp1", "worker1", "worker2")


def task_statuses(output: str, name: str) -> dict[str, set[str]]:
    """Each host's statuses (ok, changed, skipping, included, ...) on the tasks named `name` ("role : Task name")."""
    statuses: dict[str, set[str]] = {}
    current = False
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line.startswith(f"TASK [{name}]")
        elif current and (match := re.match(r"^(\w+): \[([^\]\s]+)", line)):
            statuses.setdefault(match.group(2), set()).add(match.group(1))
        elif current and (match := re.match(r"^included: \S+ for (.+)$", line)):
            for host in match.group(1).split(", "):
                statuses.setdefault(host.strip(), set()).add("included")
    return statuses


def test_a_prepared_node_runs_only_the_one_read(converged: dict[str, str]) -> None:
    for name in WORK_INCLUDES:
        first = task_statuses(converged["first"], name)
        assert set().union(*first.values()) - {"skipping"}, f"{name}: not run on fresh nodes: {first}"
        for run in ("second", "check"):
            statuses = task_statuses(converged[run], name)
            assert statuses == {"worker1": {"skipping"}}, f"{run}, {name}: {statuses}"
    for run in ("second", "check"):
        assert task_statuses(converged[run], READ) == {node: {"ok"} for node in ALL_NODES}
        # From the task after the read to the end of the play.
        after_read = converged[run].split(f"TASK [{READ}]", 1)[1].split("\nTASK [", 1)[1].split("PLAY RECAP", 1)[0]
        for node in ("cp1", "worker2"):
            assert f"[{node}]" not in after_read, f"{run}: {node} went on after its read"


def box_version(box: Sandbox) -> str:
    inventory = box.inventory.read_text()
    return next(line.split(":", 1)[1].strip() for line in inventory.splitlines() if "kube_version:" in line)


@pytest.mark.usefixtures("converged")
def test_packages_at_the_pinned_version_and_held(box: Sandbox) -> None:
    version = box_version(box)
    for node in ("cp1", "worker2"):
        shown = box.ssh(node, "dpkg-query -W -f '${Package} ${Version}\\n' kubeadm kubelet kubectl").stdout
        versions = dict(line.split() for line in shown.splitlines())
        assert set(versions) == set(KUBE_BINARIES)
        assert all(v.startswith(f"{version}-") for v in versions.values()), versions
        assert set(box.ssh(node, "apt-mark showhold").stdout.split()) >= set(KUBE_BINARIES)
        sources = box.ssh(node, "cat /etc/apt/sources.list.d/kubernetes.list").stdout
        assert "signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc" in sources
        assert box.ssh(node, "kubeadm version -o short").stdout.strip() == f"v{version}"


@pytest.mark.usefixtures("converged")
def test_binaries_match_the_published_sha256_and_the_kubelet_unit_is_installed(box: Sandbox) -> None:
    version = box_version(box)
    served = Path("/var/cache/kubeboot/standin/web/release") / f"v{version}" / "bin/linux/amd64"
    for name in KUBE_BINARIES:
        remote = box.ssh("worker1", f"sha256sum /usr/local/bin/{name}").stdout.split()[0]
        assert remote == (served / f"{name}.sha256").read_text().split()[0]
    assert box.ssh("worker1", "dpkg-query -W kubeadm", check=False).returncode != 0
    assert box.ssh("worker1", "/usr/local/bin/kubeadm version -o short").stdout.strip() == f"v{version}"
    unit = box.ssh("worker1", "systemctl cat kubelet").stdout
    assert "/usr/local/lib/systemd/system/kubelet.service" in unit and "10-kubeadm.conf" in unit
    assert box.ssh("worker1", "systemctl is-enabled kubelet").stdout.strip() == "enabled"
    assert box.ssh("worker1", "test -x /usr/local/bin/crictl && test -x /opt/cni/bin/bridge", check=False) \
        .returncode == 0


@pytest.mark.usefixtures("converged")
def test_containerd_uses_systemd_cgroups_and_the_pause_image_of_the_version(box: Sandbox) -> None:
    for node in ("cp1", "worker1"):
        config = box.ssh(node, "containerd config dump").stdout
        assert "SystemdCgroup = true" in config
        assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in config
        assert box.ssh(node, "crictl info >/dev/null && echo ok").stdout.strip() == "ok"


def test_the_control_plane_pulled_kubeadms_images_ahead_and_workers_did_not(
        box: Sandbox, converged: dict[str, str]) -> None:
    wanted = kubeadm_images(box)
    assert node_images(box, "cp1") >= set(wanted)
    for node in ("worker1", "worker2"):
        assert box.ssh(node, "crictl images -q").stdout.split() == [], f"{node} pulled images"
    pulls = [entry for entry in task_results(converged["first"]).split("TASK [")
             if entry.splitlines() and entry.splitlines()[0].endswith("Kube packages | Pull the missing images]")]
    # One call on cp1 pulled them all (the images are on cp1, above).
    assert len(pulls) == 1 and "changed: [cp1]" in pulls[0], pulls
