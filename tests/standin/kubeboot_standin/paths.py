"""Root-relative paths: every file the stand-in touches goes through here.

KUBEBOOT_STANDIN_ROOT is set only by the tests (a temp dir); on a node it is unset, so the
root is "/".
"""

from __future__ import annotations

import os
import pkgutil
from pathlib import Path

# The version a build of the stand-in reports (kubeadm version, kubelet --version, the API server's /version, the
# control-plane images kubeadm writes): build_repo.py writes it into each package as kubeboot_standin/VERSION, read
# here at run time; from the source tree (the stand-in's own tests) it is DEFAULT_VERSION unless
# KUBEBOOT_STANDIN_VERSION says otherwise (tests only: a "node" of another minor).
DEFAULT_VERSION = "v1.33.1"
# v1.33.1's commit; builds of other versions report it too (only its shape matters to the callers).
GIT_COMMIT = "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828"


def _packaged_version() -> str:
    override = os.environ.get("KUBEBOOT_STANDIN_VERSION", "").strip()
    if override:
        return override if override.startswith("v") else f"v{override}"
    try:
        data = pkgutil.get_data(__package__ or "kubeboot_standin", "VERSION")
    except OSError:
        data = None
    return data.decode().strip() if data else DEFAULT_VERSION


def deb_version(version: str) -> str:
    """The pkgs.k8s.io package version of a release: v1.33.1 -> 1.33.1-1.1."""
    return f"{version.lstrip('v')}-1.1"


def minor_of(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


VERSION = _packaged_version()
DEB_VERSION = deb_version(VERSION)
MINOR = minor_of(VERSION)


def root() -> Path:
    return Path(os.environ.get("KUBEBOOT_STANDIN_ROOT", "/"))


def simulated() -> bool:
    """Whether the tests simulate a node on the host (no etcd, no containerd)."""
    return str(root()) != "/"


def host(path: str | os.PathLike[str]) -> Path:
    """Map an absolute node path (e.g. /etc/kubernetes/admin.conf) into the root."""
    p = str(path)
    r = root()
    if str(r) == "/":
        return Path(p)
    return r / p.lstrip("/")


def fault_dir() -> Path:
    return host("/etc/kubeboot-standin/faults")


ETC_K8S = "/etc/kubernetes"
PKI = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
ETCD_DIR = "/var/lib/etcd"
# Where the stand-in's kubelet puts the etcd it runs for the etcd static pod (Debian's etcd-server binary, carried
# in the kubelet zipapp as the etcd image's content).
ETCD_BIN = "/usr/lib/kubeboot-standin/bin/etcd"
CNI_CONF_DIR = "/etc/cni/net.d"
CONTAINERD_SOCK = "/var/run/containerd/containerd.sock"


def healthz_port(cfg: dict[str, object]) -> int:
    """The kubelet healthz port; tests running several "nodes" on one host give each its own."""
    override = os.environ.get("KUBEBOOT_STANDIN_HEALTHZ_PORT")
    if override:
        return int(override)
    return int(str(cfg.get("healthzPort", 10248)))
