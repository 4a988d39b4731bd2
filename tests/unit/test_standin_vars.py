"""The sandbox's stand-in variables: the default release, or another minor the stand-in repository serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeboot.errors import UsageError
from kubeboot.sandbox.standin import StandinRepo, inventory_vars

REPO = StandinRepo(
    Path("/srv/web"),
    "core:/stable:/v1.33/deb",
    "v1.33.1",
    ("release/cri-tools/v1.33.0/crictl-v1.33.0-linux-amd64.tar.gz",
     "release/cri-tools/v1.33.0/crictl-v1.33.0-linux-amd64.tar.gz.sha256"),
    {"1.32": ("core:/stable:/v1.32/deb", "v1.32.5"), "1.33": ("core:/stable:/v1.33/deb", "v1.33.1")},
)
URL = "http://10.0.0.1:8080"


def test_default_release() -> None:
    v = inventory_vars(REPO, URL)
    assert v["kube_version"] == "1.33.1"
    assert v["kube_package_repo_url"] == f"{URL}/core:/stable:/v1.33"
    assert v["kube_packages_crictl_url"] == f"{URL}/release/cri-tools/v1.33.0/crictl-v1.33.0-linux-amd64.tar.gz"


def test_another_minor() -> None:
    v = inventory_vars(REPO, URL, minor="1.32")
    assert v["kube_version"] == "1.32.5"
    assert v["kube_package_repo_url"] == f"{URL}/core:/stable:/v1.32"
    assert v["kube_download_url"] == f"{URL}/release"


def test_a_minor_not_served_is_refused() -> None:
    with pytest.raises(UsageError, match=r"serves no Kubernetes 1\.31 \(it serves 1\.32, 1\.33\)"):
        inventory_vars(REPO, URL, minor="1.31")
