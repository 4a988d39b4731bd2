"""The apt repository and release downloads, laid out like pkgs.k8s.io and dl.k8s.io."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import HERE, KUBECTL

REPO = "core:/stable:/v1.33/deb"
REPO_132 = "core:/stable:/v1.32/deb"
KUBECTL_132 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")
CACHE = Path(os.environ.get("KUBEBOOT_STANDIN_CACHE", "/var/cache/kubeboot/standin-build"))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("dpkg-deb", "dpkg-scanpackages", "gpg", "apt-get") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"host tools missing for the package build: {', '.join(missing)}")
    for k in (KUBECTL, KUBECTL_132):
        if not k.exists():
            pytest.skip(f"the real kubectl is not installed at {k}")
    o = tmp_path_factory.mktemp("repo") / "out"
    cp = subprocess.run(
        [sys.executable, str(HERE / "build_repo.py"), "--out", str(o), "--cache", str(CACHE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cp.returncode == 0, cp.stderr
    for v, minor in (("v1.32.5", "1.32"), ("v1.33.1", "1.33")):
        assert (
            f"apt line ({v}): deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
            f"http://HOST:PORT/core:/stable:/v{minor}/deb/ /"
        ) in cp.stdout
    return o


def test_layout_like_pkgs_k8s_io(out: Path) -> None:
    repo = out / REPO
    for f in ("Release", "InRelease", "Release.gpg", "Release.key", "Packages", "Packages.gz"):
        assert (repo / f).is_file(), f
    debs = sorted(p.name for p in (repo / "amd64").glob("*.deb"))
    assert debs == [
        "cri-tools_1.33.0-1.1_amd64.deb",
        "kubeadm_1.33.1-1.1_amd64.deb",
        "kubectl_1.33.1-1.1_amd64.deb",
        "kubelet_1.33.1-1.1_amd64.deb",
        "kubernetes-cni_1.6.0-1.1_amd64.deb",
    ]
    rel = out / "release/v1.33.1/bin/linux/amd64"
    for b in ("kubeadm", "kubelet", "kubectl"):
        assert (rel / f"{b}.sha256").read_text() == hashlib.sha256((rel / b).read_bytes()).hexdigest()


def test_rebuild_is_skipped_when_sources_unchanged(out: Path) -> None:
    cp = subprocess.run(
        [sys.executable, str(HERE / "build_repo.py"), "--out", str(out), "--cache", str(CACHE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert cp.stdout.startswith("up to date:")


def test_release_is_signed_by_the_published_key(out: Path, tmp_path: Path) -> None:
    repo = out / REPO
    keyring = tmp_path / "kubernetes-apt-keyring.gpg"
    subprocess.run(["gpg", "--dearmor", "-o", str(keyring), str(repo / "Release.key")], check=True)
    subprocess.run(["gpgv", "--keyring", str(keyring), str(repo / "InRelease")], check=True, capture_output=True)
    subprocess.run(
        ["gpgv", "--keyring", str(keyring), str(repo / "Release.gpg"), str(repo / "Release")],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize(("repo_path", "version"), [(REPO, "1.33.1"), (REPO_132, "1.32.5")])
def test_apt_reads_the_repo_with_signed_by(out: Path, tmp_path: Path, repo_path: str, version: str) -> None:
    repo = out / repo_path
    keyring = tmp_path / "kubernetes-apt-keyring.gpg"
    subprocess.run(["gpg", "--dearmor", "-o", str(keyring), str(repo / "Release.key")], check=True)
    sources = tmp_path / "kubernetes.list"
    sources.write_text(f"deb [signed-by={keyring}] file://{repo}/ /\n")
    for d in ("lists/partial", "cache/archives/partial"):
        (tmp_path / d).mkdir(parents=True)
    opts = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={tmp_path / 'lists'}",
        f"-oDir::Cache={tmp_path / 'cache'}",
        "-oAPT::Sandbox::User=root",
    ]
    upd = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True, check=False)
    assert upd.returncode == 0 and "W:" not in upd.stderr, upd.stderr
    pol = subprocess.run(
        ["apt-cache", *opts, "policy", "kubeadm", "kubelet", "kubectl"], capture_output=True, text=True, check=True
    ).stdout
    assert pol.count(f"Candidate: {version}-1.1") >= 2  # kubectl may be pinned higher by the host's google-cloud-cli
    assert pol.count(f"{version}-1.1 500") == 3


def test_packages_ship_the_real_paths(out: Path) -> None:
    def contents(name: str) -> str:
        deb = next((out / REPO / "amd64").glob(f"{name}_*.deb"))
        return subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout

    assert "./usr/lib/systemd/system/kubelet.service\n" in contents("kubelet")
    assert "./usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf\n" in contents("kubeadm")
    assert "./usr/bin/kubectl\n" in contents("kubectl")
    assert "./usr/bin/crictl\n" in contents("cri-tools")
    assert "./opt/cni/bin/bridge\n" in contents("kubernetes-cni")


def test_downloaded_binaries_run(out: Path, tmp_path: Path) -> None:
    rel = out / "release/v1.33.1/bin/linux/amd64"
    v = subprocess.run([str(rel / "kubeadm"), "version", "-o", "short"], capture_output=True, text=True, check=True)
    assert v.stdout == "v1.33.1\n"
    assert (
        "v1.33"
        in subprocess.run(
            [str(rel / "kubectl"), "version", "--client"], capture_output=True, text=True, check=True
        ).stdout
    )
    env = {**os.environ, "KUBEBOOT_STANDIN_ROOT": str(tmp_path)}
    k = subprocess.run(
        [str(rel / "kubelet"), "--config=/var/lib/kubelet/config.yaml"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert k.returncode == 1
    assert "open /var/lib/kubelet/config.yaml: no such file or directory" in k.stderr


def test_release_tarballs_with_sha256(out: Path) -> None:
    crictl = out / "release/cri-tools/v1.33.0/crictl-v1.33.0-linux-amd64.tar.gz"
    cni = out / "release/cni-plugins/v1.6.0/cni-plugins-linux-amd64-v1.6.0.tgz"
    assert (crictl.parent / f"{crictl.name}.sha256").read_text() == hashlib.sha256(
        crictl.read_bytes()
    ).hexdigest() + "\n"
    assert (cni.parent / f"{cni.name}.sha256").read_text() == (
        f"{hashlib.sha256(cni.read_bytes()).hexdigest()}  {cni.name}\n"
    )
    with tarfile.open(crictl) as t:
        assert t.getnames() == ["crictl"]
    with tarfile.open(cni) as t:
        names = t.getnames()
        assert {"./bridge", "./host-local", "./loopback", "./portmap"} <= set(names)
        assert all(m.mode & 0o111 for m in t.getmembers())


_ENSURE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import build_repo
web = build_repo.ensure_built(build_repo.Path(sys.argv[2]), downloads=build_repo.Path(sys.argv[3]))
print(json.dumps({"web": str(web), "stamp": (web / ".stamp").stat().st_mtime_ns}))
"""


def test_ensure_built_is_cached_and_safe_to_call_concurrently(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-c", _ENSURE, str(HERE), str(cache), str(CACHE)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e
        results.append(json.loads(o))
    web = cache / "web"
    assert [r["web"] for r in results] == [str(web), str(web)]
    assert results[0]["stamp"] == results[1]["stamp"]  # built once: the second caller waited, then reused it
    assert not (cache / "web.new").exists()
    for f in (
        "core:/stable:/v1.33/deb/Release",
        "core:/stable:/v1.33/deb/InRelease",
        "core:/stable:/v1.33/deb/Release.gpg",
        "core:/stable:/v1.33/deb/Release.key",
        "core:/stable:/v1.33/deb/Packages",
        "release/v1.33.1/bin/linux/amd64/kubeadm.sha256",
        "release/v1.33.1/bin/linux/amd64/kubelet.sha256",
        "release/v1.33.1/bin/linux/amd64/kubectl.sha256",
    ):
        assert (web / f).is_file(), f
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(again.stdout)["stamp"] == results[0]["stamp"]
    sys.path.insert(0, str(HERE))
    import build_repo

    info = build_repo.describe(web)
    assert info["crictl_tarball"] in info["files"] and f"{info['crictl_tarball']}.sha256" in info["files"]
    assert info["cni_plugins_tarball"] in info["files"] and f"{info['cni_plugins_tarball']}.sha256" in info["files"]


def test_both_minors_each_in_its_own_repository(out: Path) -> None:
    for repo, version, other in ((REPO_132, "1.32.5", "1.33"), (REPO, "1.33.1", "1.32")):
        debs = sorted(p.name for p in (out / repo / "amd64").glob("*.deb"))
        assert debs == [
            "cri-tools_1.33.0-1.1_amd64.deb",
            f"kubeadm_{version}-1.1_amd64.deb",
            f"kubectl_{version}-1.1_amd64.deb",
            f"kubelet_{version}-1.1_amd64.deb",
            "kubernetes-cni_1.6.0-1.1_amd64.deb",
        ]
        stanzas = (out / repo / "Packages").read_text().split("\n\n")
        versions = {
            (line.split(": ")[1], st.split("\nVersion: ")[1].split("\n")[0])
            for st in stanzas
            for line in st.splitlines()
            if line.startswith("Package: ") and line.split(": ")[1] in ("kubeadm", "kubelet", "kubectl")
        }
        assert versions == {(p, f"{version}-1.1") for p in ("kubeadm", "kubelet", "kubectl")}, other
        release = (out / repo / "Release").read_text()
        assert f"Label: isv:kubernetes:core:stable:v{version.rsplit('.', 1)[0]}\n" in release
        assert (out / f"release/stable-{version.rsplit('.', 1)[0]}.txt").read_text() == f"v{version}\n"
    # One signing key for both, as the minors of pkgs.k8s.io share theirs.
    assert (out / REPO / "Release.key").read_bytes() == (out / REPO_132 / "Release.key").read_bytes()


def _out(*cmd: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=True, env=env).stdout


def test_each_release_reports_its_own_version(out: Path, tmp_path: Path) -> None:
    for version in ("v1.32.5", "v1.33.1"):
        rel = out / f"release/{version}/bin/linux/amd64"
        assert _out(str(rel / "kubeadm"), "version", "-o", "short") == f"{version}\n"
        info = json.loads(_out(str(rel / "kubeadm"), "version", "-o", "json"))
        assert info["clientVersion"]["gitVersion"] == version
        assert info["clientVersion"]["minor"] == version.split(".")[1]
        assert _out(str(rel / "kubelet"), "--version") == f"Kubernetes {version}\n"
        kubectl = json.loads(_out(str(rel / "kubectl"), "version", "--client", "-o", "json"))
        assert kubectl["clientVersion"]["gitVersion"] == version  # the real kubectl of that minor
        # The images kubeadm of that release writes into the control-plane manifests.
        listed = _out(str(rel / "kubeadm"), "config", "images", "list",
                      env={**os.environ, "KUBEBOOT_STANDIN_ROOT": str(tmp_path)})
        assert f"registry.k8s.io/kube-apiserver:{version}\n" in listed
    # The package inside the .deb is the same build as the release binary.
    deb = next((out / REPO_132 / "amd64").glob("kubeadm_*.deb"))
    x = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(x)], check=True)
    assert (x / "usr/bin/kubeadm").read_bytes() == (out / "release/v1.32.5/bin/linux/amd64/kubeadm").read_bytes()


def test_describe_names_every_minor(out: Path) -> None:
    sys.path.insert(0, str(HERE))
    import build_repo

    info = build_repo.describe(out)
    assert (info["repo"], info["version"]) == (REPO, "v1.33.1")  # the default the sandbox points at
    assert info["minors"]["1.32"] == {
        "repo": REPO_132,
        "version": "v1.32.5",
        "deb_version": "1.32.5-1.1",
        "release": "release/v1.32.5/bin/linux/amd64",
    }
    assert info["minors"]["1.33"]["repo"] == REPO
    for m in info["minors"].values():
        assert f"{m['repo']}/InRelease" in info["files"] and f"{m['release']}/kubeadm.sha256" in info["files"]
