#!/usr/bin/env python3
"""Build the stand-in's Debian packages and an apt repository laid out like pkgs.k8s.io.

    python3 tests/standin/build_repo.py --out /var/cache/kubeboot/standin-repo

Produces, under --out, for each minor it serves (1.32 and 1.33; 1.33 is the default the sandbox points at):
  core:/stable:/v1.MM/deb/            flat apt repo (Packages, Release, InRelease, Release.gpg, Release.key)
  core:/stable:/v1.MM/deb/amd64/*.deb kubeadm, kubelet, kubectl (the real kubectl of that minor), cri-tools,
                                      kubernetes-cni
  release/v1.MM.P/bin/linux/amd64/    kubeadm, kubelet, kubectl + .sha256 (like dl.k8s.io)
  release/stable-1.MM.txt
and once:
  release/cri-tools/v1.33.0/crictl-v1.33.0-linux-amd64.tar.gz (+ .sha256, like the cri-tools releases)
  release/cni-plugins/v1.6.0/cni-plugins-linux-amd64-v1.6.0.tgz (+ .sha256, like the CNI plugins releases)
  kubernetes-release/cmd/krel/templates/latest/{kubelet/kubelet.service,kubeadm/10-kubeadm.conf}
Rebuilds only when the stand-in's sources changed (stamp file), under a file lock so that two builders of the
same output wait for each other. Test infrastructure only.

From Python (the sandbox integration): `ensure_built(cache_dir) -> Path` returns the web root to serve;
`describe(web_root) -> dict` tells where the pieces are (see README.md beside this file).

Host needs (Debian packages): dpkg-dev (dpkg-scanpackages), gpg, python3, apt (apt-get download of
containernetworking-plugins for kubernetes-cni and of etcd-server for the etcd the kubelet runs), gcc and libc6-dev
(the static pause binary of the pause image the kubelet zipapp carries, pause/) and the real kubectl of each
minor (google-cloud-cli's kubectl.1.32 and kubectl.1.33).

Each build of kubeadm and kubelet carries its version as package data (kubeboot_standin/VERSION), which the stand-in
reads at run time (paths.VERSION): kubeadm version, kubelet --version, the control-plane images kubeadm writes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipapp
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
PKG_SRC = HERE / "kubeboot_standin"
PACKAGING = HERE / "packaging"
MANIFESTS = HERE / "manifests"
PAUSE = HERE / "pause"
sys.path.insert(0, str(HERE))

from kubeboot_standin.paths import DEFAULT_VERSION, deb_version  # noqa: E402
from pause import archive as pause_archive  # noqa: E402


def minor_of(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def repo_path(minor: str) -> str:
    return f"core:/stable:/v{minor}/deb"


# The releases served, one per minor (each in its own repository, as pkgs.k8s.io lays them out): the versions of
# the real kubectl.1.32 and kubectl.1.33 of this machine image, so that every package of a release reports it.
VERSIONS = {"1.32": "v1.32.5", minor_of(DEFAULT_VERSION): DEFAULT_VERSION}
# The default the sandbox points the roles at (describe()'s repo/version).
VERSION = DEFAULT_VERSION
DEB_VERSION = deb_version(VERSION)
MINOR = minor_of(VERSION)
REPO_PATH = repo_path(MINOR)
CRI_TOOLS_VERSION = "1.33.0-1.1"
CNI_VERSION = "1.6.0-1.1"
_CRICTL_V = "v" + CRI_TOOLS_VERSION.split("-", maxsplit=1)[0]
_CNI_V = "v" + CNI_VERSION.split("-", maxsplit=1)[0]
CRICTL_TARBALL = f"release/cri-tools/{_CRICTL_V}/crictl-{_CRICTL_V}-linux-amd64.tar.gz"
CNI_TARBALL = f"release/cni-plugins/{_CNI_V}/cni-plugins-linux-amd64-{_CNI_V}.tgz"
PY_DEPS = "python3 (>= 3.11), python3-cryptography, python3-yaml"
# The kubelet and crictl speak CRI gRPC to containerd (cri.py).
GRPC_DEPS = f"{PY_DEPS}, python3-grpcio"
# Package data of the kubelet zipapp (read with pkgutil.get_data, which works from a zipapp).
PAUSE_DATA = "kubeboot_standin/pause.tar"
# The etcd the kubelet runs for the etcd static pod (the etcd image's content): Debian's etcd-server binary.
ETCD_DATA = "kubeboot_standin/etcd"
# The version a build reports (paths.VERSION reads it at run time).
VERSION_DATA = "kubeboot_standin/VERSION"
HOST_TOOLS = {"dpkg-deb": "dpkg", "dpkg-scanpackages": "dpkg-dev", "gpg": "gpg", "apt-get": "apt", "gcc": "gcc"}


def fail(msg: str) -> NoReturn:
    raise SystemExit(f"build_repo: {msg}")


def kubectl_path(minor: str) -> Path:
    """The real kubectl of a minor in this machine image (google-cloud-cli's kubectl.1.MM)."""
    return Path(f"/usr/lib/google-cloud-sdk/bin/kubectl.{minor}")


def check_host() -> dict[str, Path]:
    """The real kubectl of each minor served, after checking the host tools."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        fail(f"missing host tools; install with: apt-get install -y {' '.join(missing)}")
    kubectls = {minor: kubectl_path(minor) for minor in VERSIONS}
    for minor, kubectl in kubectls.items():
        if not kubectl.exists():
            fail(f"the real kubectl {minor} is needed (looked at {kubectl})")
    return kubectls


def source_hash(kubectls: dict[str, Path]) -> str:
    h = hashlib.sha256()
    inputs = [*PKG_SRC.rglob("*.py"), *PACKAGING.iterdir(), *MANIFESTS.glob("*.yaml"), *PAUSE.glob("*.[cp]*"),
              Path(__file__)]
    for f in sorted(f for f in inputs if f.is_file()):
        h.update(str(f.relative_to(HERE)).encode())
        h.update(f.read_bytes())
    for minor, kubectl in sorted(kubectls.items()):
        st = kubectl.stat()
        h.update(f"{VERSIONS[minor]}:{kubectl}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def make_zipapp(target: Path, module: str, func: str, data: dict[str, Path] | None = None) -> None:
    """A zipapp of the stand-in package running module.func; data: extra files by their path in the archive."""
    with tempfile.TemporaryDirectory() as d:
        stage = Path(d)
        shutil.copytree(PKG_SRC, stage / "kubeboot_standin", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name, src in (data or {}).items():
            shutil.copy(src, stage / name)
        (stage / "__main__.py").write_text(f"import sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        zipapp.create_archive(stage, target, interpreter="/usr/bin/python3")
    target.chmod(0o755)


def control(name: str, version: str, depends: str, description: str, installed_kb: int) -> str:
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: amd64",
        "Maintainer: Kubernetes Authors <dev@kubernetes.io>",
        f"Installed-Size: {installed_kb}",
        "Section: admin",
        "Priority: optional",
        "Homepage: https://kubernetes.io",
    ]
    if depends:
        lines.append(f"Depends: {depends}")
    lines.append(f"Description: {description}")
    return "\n".join(lines) + "\n"


def build_deb(
    stage: Path,
    out_dir: Path,
    name: str,
    version: str,
    depends: str,
    description: str,
    scripts: dict[str, Path] | None = None,
) -> Path:
    size_kb = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024 + 1
    debian = stage / "DEBIAN"
    debian.mkdir(parents=True, exist_ok=True)
    (debian / "control").write_text(control(name, version, depends, description, size_kb))
    for script, src in (scripts or {}).items():
        shutil.copy(src, debian / script)
        (debian / script).chmod(0o755)
    out = out_dir / f"{name}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z3", "--build", str(stage), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """An exclusive flock on lock_file for the duration of the block (waits for another holder)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cni_plugins(cache: Path) -> Path:
    """Debian's containernetworking-plugins binaries (fetched with apt-get download, cached)."""
    with locked(cache / ".lock"):
        return _cni_plugins(cache)


def _cni_plugins(cache: Path) -> Path:
    return debian_files(cache, "containernetworking-plugins", "cni", "usr/lib/cni")


def etcd_binary(cache: Path) -> Path:
    """Debian's etcd (etcd-server), which the kubelet runs for kubeadm's etcd static pod (fetched, cached)."""
    with locked(cache / ".lock"):
        return debian_files(cache, "etcd-server", "etcd", "usr/bin/etcd")


def debian_files(cache: Path, package: str, name: str, wanted: str) -> Path:
    """A path inside a Debian package of the host's mirror, fetched with apt-get download and unpacked once."""
    extracted = cache / f"{name}-extract"
    path = extracted / wanted
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        return path
    dl = cache / f"{name}-download"
    dl.mkdir(parents=True, exist_ok=True)
    cp = subprocess.run(["apt-get", "download", package], cwd=dl, capture_output=True, text=True, check=False)
    debs = sorted(dl.glob(f"{package}_*.deb"))
    if not debs:
        fail(f"could not download {package} (apt-get update first?): {cp.stderr.strip()}")
    shutil.rmtree(extracted, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(extracted)], check=True)
    return path


GPG_BASE = ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]


def gpg_key(work: Path) -> dict[str, str]:
    """A signing key of the build (one for every repository, as the pkgs.k8s.io minors share theirs): the
    environment that uses it."""
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    base = GPG_BASE
    subprocess.run(
        [
            *base,
            "--quick-gen-key",
            "kubeboot stand-in repository <standin@kubeboot.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def gpg_sign(repo: Path, env: dict[str, str]) -> None:
    base = GPG_BASE
    key = subprocess.run(["gpg", "--batch", "--armor", "--export"], env=env, check=True, capture_output=True).stdout
    (repo / "Release.key").write_bytes(key)
    subprocess.run(
        [*base, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release")],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*base, "-abs", "-o", str(repo / "Release.gpg"), str(repo / "Release")],
        env=env,
        check=True,
        capture_output=True,
    )


def write_release(repo: Path, minor: str) -> None:
    files = ["Packages", "Packages.gz"]
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
    lines = [
        f"Origin: obs://build.opensuse.org/isv:kubernetes:core:stable:v{minor}/deb",
        f"Label: isv:kubernetes:core:stable:v{minor}",
        "Architectures: amd64",
        f"Date: {date}",
    ]
    for algo, field in (("md5", "MD5Sum"), ("sha1", "SHA1"), ("sha256", "SHA256"), ("sha512", "SHA512")):
        lines.append(f"{field}:")
        for f in files:
            data = (repo / f).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>16} {f}")
    (repo / "Release").write_text("\n".join(lines) + "\n")


def pause_image(target: Path) -> Path:
    """The pause image (docker-archive tar) from pause/pause.c, compiled with the host's gcc."""
    try:
        return pause_archive.build(target)
    except pause_archive.BuildError as exc:
        fail(str(exc))


def build(out: Path, cache: Path, kubectls: dict[str, Path]) -> None:
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        pause_tar = pause_image(work / "pause.tar")
        etcd = etcd_binary(cache)
        crictl = work / "crictl"
        make_zipapp(crictl, "kubeboot_standin.crictl", "main")
        new = out.with_name(out.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        gpg = gpg_key(work)

        def stage(name: str, files: dict[str, Path]) -> Path:
            s = work / f"stage-{name}"
            for dest, src in files.items():
                t = s / dest.lstrip("/")
                t.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, t)
                else:
                    shutil.copy(src, t)
                    t.chmod(0o755 if "/bin/" in dest else 0o644)
            return s

        # Packages of every minor: cri-tools and kubernetes-cni are the same in each repository.
        common = work / "common"
        common.mkdir()
        build_deb(
            stage("cri-tools", {"/usr/bin/crictl": crictl}),
            common,
            "cri-tools",
            CRI_TOOLS_VERSION,
            GRPC_DEPS,
            "Command-line utility for interacting with a container runtime (offline test stand-in)",
        )
        cni_stage = work / "stage-cni"
        (cni_stage / "opt/cni").mkdir(parents=True)
        shutil.copytree(cni_plugins(cache), cni_stage / "opt/cni/bin")
        build_deb(
            cni_stage,
            common,
            "kubernetes-cni",
            CNI_VERSION,
            "",
            "Binaries required to provision kubernetes container networking (Debian's plugins)",
        )
        for minor, version in sorted(VERSIONS.items()):
            build_minor(new, work, minor, version, kubectls[minor], common, stage, pause_tar, etcd, gpg)
        subprocess.run(["gpgconf", "--kill", "all"], env=gpg, check=False, capture_output=True)
        tarball(new / CRICTL_TARBALL, {"crictl": crictl}, with_hash_name=False)
        cni_bin = cni_stage / "opt/cni/bin"
        tarball(
            new / CNI_TARBALL,
            {f"./{f.name}": f for f in sorted(cni_bin.iterdir()) if f.is_file()},
            with_hash_name=True,
        )
        tmpl = new / "kubernetes-release/cmd/krel/templates/latest"
        (tmpl / "kubelet").mkdir(parents=True)
        (tmpl / "kubeadm").mkdir(parents=True)
        shutil.copy(PACKAGING / "kubelet.service", tmpl / "kubelet/kubelet.service")
        shutil.copy(PACKAGING / "10-kubeadm.conf", tmpl / "kubeadm/10-kubeadm.conf")
        publish_manifests(new)
        shutil.rmtree(out, ignore_errors=True)
        new.rename(out)


def build_minor(
    new: Path,
    work: Path,
    minor: str,
    version: str,
    kubectl: Path,
    common: Path,
    stage: Callable[[str, dict[str, Path]], Path],
    pause_tar: Path,
    etcd: Path,
    gpg: dict[str, str],
) -> None:
    """One minor's repository (core:/stable:/v<minor>/deb) and release binaries (release/<version>/...)."""
    bins = work / f"bin-{version}"
    bins.mkdir()
    version_file = work / f"VERSION-{version}"
    version_file.write_text(version + "\n")
    make_zipapp(bins / "kubeadm", "kubeboot_standin.kubeadm.cli", "main", {VERSION_DATA: version_file})
    make_zipapp(
        bins / "kubelet",
        "kubeboot_standin.kubelet",
        "main",
        {PAUSE_DATA: pause_tar, ETCD_DATA: etcd, VERSION_DATA: version_file},
    )
    shutil.copy(kubectl, bins / "kubectl")
    deb = deb_version(version)
    repo = new / repo_path(minor)
    debs = repo / "amd64"
    debs.mkdir(parents=True)
    build_deb(
        stage(
            f"kubeadm-{version}",
            {
                "/usr/bin/kubeadm": bins / "kubeadm",
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": PACKAGING / "10-kubeadm.conf",
            },
        ),
        debs,
        "kubeadm",
        deb,
        f"cri-tools (>= 1.30.0), {PY_DEPS}",
        "Command-line utility for administering a Kubernetes cluster (offline test stand-in)",
    )
    build_deb(
        stage(
            f"kubelet-{version}",
            {
                "/usr/bin/kubelet": bins / "kubelet",
                "/usr/lib/systemd/system/kubelet.service": PACKAGING / "kubelet.service",
            },
        ),
        debs,
        "kubelet",
        deb,
        f"iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, util-linux, {GRPC_DEPS}",
        "Node agent for Kubernetes clusters (offline test stand-in)",
        {"postinst": PACKAGING / "kubelet.postinst", "postrm": PACKAGING / "kubelet.postrm"},
    )
    build_deb(
        stage(f"kubectl-{version}", {"/usr/bin/kubectl": bins / "kubectl"}),
        debs,
        "kubectl",
        deb,
        "",
        "Command-line utility for interacting with a Kubernetes cluster",
    )
    for f in sorted(common.glob("*.deb")):
        shutil.copy(f, debs / f.name)
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "amd64"], cwd=repo, check=True, capture_output=True
    ).stdout
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    write_release(repo, minor)
    gpg_sign(repo, gpg)
    rel = new / "release" / version / "bin/linux/amd64"
    rel.mkdir(parents=True)
    for b in ("kubeadm", "kubelet", "kubectl"):
        shutil.copy(bins / b, rel / b)
        (rel / b).chmod(0o755)
        (rel / f"{b}.sha256").write_text(hashlib.sha256((rel / b).read_bytes()).hexdigest())
    (new / "release" / f"stable-{minor}.txt").write_text(version + "\n")


def publish_manifests(web: Path) -> None:
    """Our minimal stand-in manifests (tests/standin/manifests) at <web>/manifests/<file>, each with <file>.sha256
    (bare digest), where the pod network role downloads them from in the sandbox."""
    dest = web / "manifests"
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(MANIFESTS.glob("*.yaml")):
        shutil.copy(src, dest / src.name)
        (dest / f"{src.name}.sha256").write_text(hashlib.sha256(src.read_bytes()).hexdigest() + "\n")


def tarball(target: Path, members: dict[str, Path], with_hash_name: bool) -> None:
    """A release tarball with its .sha256 beside it: the bare digest (cri-tools, dl.k8s.io style) or
    "digest  name" (sha256sum style, as the CNI plugins releases publish)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for arcname, src in members.items():
            info = tar.gettarinfo(str(src), arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755
            with open(src, "rb") as fh:
                tar.addfile(info, fh)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (target.parent / f"{target.name}.sha256").write_text(
        f"{digest}  {target.name}\n" if with_hash_name else f"{digest}\n"
    )


def layout(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != ".stamp")


def build_if_needed(out: Path, cache: Path, force: bool = False) -> bool:
    """Build out unless its stamp matches the sources; True when it (re)built. Holds a lock beside out so that
    concurrent callers for the same out build once and the others wait, then see it up to date."""
    kubectls = check_host()
    with locked(out.with_name(f".{out.name}.lock")):
        digest = source_hash(kubectls)
        stamp = out / ".stamp"
        fresh = stamp.exists() and stamp.read_text().strip() == digest
        if fresh and not force:
            return False
        cache.mkdir(parents=True, exist_ok=True)
        build(out, cache, kubectls)
        stamp.write_text(digest + "\n")
        return True


def ensure_built(cache_dir: Path, *, downloads: Path | None = None, force: bool = False) -> Path:
    """Build (or reuse) the stand-in's web root under cache_dir and return it: serve that directory over HTTP.

    Layout: <dir>/core:/stable:/v1.33/deb/ (apt repo), <dir>/release/v1.33.1/bin/linux/amd64/{kubeadm,kubelet,kubectl}
    with .sha256, the same for 1.32 (core:/stable:/v1.32/deb/, release/v1.32.5/...), <dir>/release/cri-tools/...
    and <dir>/release/cni-plugins/... tarballs with .sha256.
    Cached (rebuilt only when the stand-in's sources change) and safe to call concurrently (file lock).
    downloads: where apt-get download keeps containernetworking-plugins (default cache_dir/downloads)."""
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / "web"
    build_if_needed(out, Path(downloads).resolve() if downloads else cache_dir / "downloads", force)
    return out


def describe(out: Path) -> dict[str, Any]:
    """Where things are below a built web root (all paths relative to it)."""
    return {
        "out": str(out),
        "repo": REPO_PATH,
        "version": VERSION,
        "deb_version": DEB_VERSION,
        "release": f"release/{VERSION}/bin/linux/amd64",
        # Every minor served (the default above is one of them), e.g. for an upgrade from 1.32 to 1.33.
        "minors": {
            minor: {
                "repo": repo_path(minor),
                "version": version,
                "deb_version": deb_version(version),
                "release": f"release/{version}/bin/linux/amd64",
            }
            for minor, version in sorted(VERSIONS.items())
        },
        "crictl_tarball": CRICTL_TARBALL,
        "cni_plugins_tarball": CNI_TARBALL,
        "files": layout(out),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output directory (served as the web root)")
    ap.add_argument("--cache", type=Path, help="download cache (default: OUT.cache)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the sources did not change")
    ap.add_argument("--json", action="store_true", help="print the layout as JSON")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    cache: Path = (args.cache or out.with_name(out.name + ".cache")).resolve()
    rebuilt = build_if_needed(out, cache, args.force)
    info = describe(out)
    files = info["files"]
    if args.json:
        print(json.dumps({**info, "rebuilt": rebuilt}, indent=1))
    else:
        print(f"{'built' if rebuilt else 'up to date'}: {out}")
        for minor in sorted(VERSIONS):
            print(
                f"apt line ({VERSIONS[minor]}): deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                f"http://HOST:PORT/{repo_path(minor)}/ /"
            )
        for f in files:
            print(f"  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
