"""Root-relative paths: every file the stand-in touches goes through here.

KUBEBOOT_STANDIN_ROOT is set only by the tests (a temp dir); on a node it is unset, so the
root is "/".
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = "v1.33.1"
DEB_VERSION = "1.33.1-1.1"
GIT_COMMIT = "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828"


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
