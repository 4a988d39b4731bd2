"""`kubeboot sandbox up --standin`: build the test stand-in's package repository and point the inventory at it.

The stand-in (kubeadm, kubelet and a small API server, packaged like pkgs.k8s.io) is test infrastructure that lives in
the source checkout under tests/standin/. It is only built and served when asked for; no role defaults to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeboot.errors import KubebootError, UsageError
from kubeboot.sandbox.state import cache_root

BUILD_TIMEOUT = 900


@dataclass(frozen=True)
class StandinRepo:
    directory: Path  # the web root to serve
    repo: str  # path of the apt repository below the web root, e.g. core:/stable:/v1.33/deb
    version: str  # Kubernetes version of the stand-in, e.g. v1.33.1
    files: tuple[str, ...]
    # Every minor the web root serves ("1.32" -> ("core:/stable:/v1.32/deb", "v1.32.5")), the default one included.
    minors: dict[str, tuple[str, str]] = field(default_factory=dict)


def builder() -> Path:
    """tests/standin/build_repo.py of the checkout kubeboot runs from."""
    script = Path(__file__).resolve().parents[3] / "tests" / "standin" / "build_repo.py"
    if not script.is_file():
        raise UsageError(
            f"--standin needs a source checkout of kubeboot ({script} not found): "
            "run kubeboot from the repository, or leave out --standin"
        )
    return script


def ensure_built(script: Path | None = None) -> StandinRepo:
    """Build (or reuse, when its sources did not change) the stand-in repository in the kubeboot cache."""
    script = script or builder()
    out = cache_root() / "standin" / "web"
    cmd = [sys.executable, str(script), "--out", str(out), "--cache", str(cache_root() / "standin" / "downloads"),
           "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KubebootError(f"building the stand-in repository took more than {BUILD_TIMEOUT}s: {script}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KubebootError(f"building the stand-in repository failed ({script}): {last}")
    info: dict[str, Any] = json.loads(done.stdout)
    minors = {str(m): (str(v["repo"]), str(v["version"])) for m, v in (info.get("minors") or {}).items()}
    return StandinRepo(
        Path(info["out"]), str(info["repo"]), str(info["version"]), tuple(info.get("files", [])), minors
    )


def _release_file(repo: StandinRepo, suffix: str) -> str | None:
    for name in repo.files:
        if name.startswith("release/") and name.endswith(suffix):
            return name
    return None


def inventory_vars(repo: StandinRepo, url: str, minor: str | None = None) -> dict[str, Any]:
    """Variables that point the cluster's package settings at the served stand-in: its default release, or the
    release of another minor it serves (e.g. "1.32", to build a cluster that an upgrade then takes to 1.33)."""
    repo_path, full = repo.repo, repo.version
    if minor is not None:
        if minor not in repo.minors:
            served = ", ".join(sorted(repo.minors)) or repo.version
            raise UsageError(f"the stand-in repository serves no Kubernetes {minor} (it serves {served})")
        repo_path, full = repo.minors[minor]
    version = full.lstrip("v")
    variables: dict[str, Any] = {
        "kube_version": version,
        "kube_package_repo_url": f"{url}/{repo_path.removesuffix('/deb')}",
        "kube_download_url": f"{url}/release",
    }
    for key, suffix in (("kube_packages_crictl_url", ".tar.gz"), ("kube_packages_cni_plugins_url", ".tgz")):
        found = _release_file(repo, suffix)
        if found and f"{found}.sha256" in repo.files:
            variables[key] = f"{url}/{found}"
            variables[key.replace("_url", "_checksum")] = f"sha256:{url}/{found}.sha256"
    # The pod network role downloads the stand-in's own minimal manifests (tests/standin/manifests), which the
    # stand-in's kubelet turns into what flannel or calico would do on each node.
    for key, name in (
        ("cni_flannel_manifest", "kube-flannel-min.yaml"),
        ("cni_calico_operator_manifest", "tigera-operator-min.yaml"),
    ):
        found = f"manifests/{name}"
        if found in repo.files and f"{found}.sha256" in repo.files:
            variables[f"{key}_url"] = f"{url}/{found}"
            variables[f"{key}_checksum"] = f"sha256:{url}/{found}.sha256"
    if "manifests/tigera-operator-min.yaml" in repo.files:
        # The stand-in API server does not create objects by server-side apply.
        variables["cni_calico_operator_server_side"] = False
    return variables
