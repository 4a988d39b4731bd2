"""kubeadm reset: removes what the real one removes, leaves CNI config, links, iptables/IPVS rules, $HOME/.kube."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .. import paths
from .common import run_phases, systemctl
from .files import say

FILES = [
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
]
DIRS = ["/etc/kubernetes/manifests", "/var/lib/kubelet", "/etc/kubernetes/pki"]

REMINDER = """
The reset process does not perform cleanup of CNI plugin configuration,
network filtering rules and kubeconfig files.

For information on how to perform this cleanup manually, please see:
    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/
"""


def _clean_dir(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> None:
    if not args.force:
        print("[reset] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
        answer = input()
        if answer.strip().lower() not in ("y", "yes"):
            raise SystemExit("error execution phase preflight: aborted reset operation")
    is_cp = paths.host("/etc/kubernetes/manifests/etcd.yaml").exists()

    def preflight() -> None:
        say("[preflight] Running pre-flight checks")

    def remove_etcd_member() -> None:
        if is_cp:
            say("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
            _clean_dir(paths.host(paths.ETCD_DIR))

    def cleanup_node() -> None:
        say("[reset] Stopping the kubelet service")
        systemctl("stop", "kubelet")
        say('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
        dirs = list(DIRS)
        if args.cleanup_tmp_dir:
            dirs.append("/etc/kubernetes/tmp")
        say(f"[reset] Deleting contents of directories: [{' '.join(dirs)}]")
        for d in dirs:
            _clean_dir(paths.host(d))
        say(f"[reset] Deleting files: [{' '.join(FILES)}]")
        for f in FILES:
            paths.host(f).unlink(missing_ok=True)

    run_phases(
        [("preflight", preflight), ("remove-etcd-member", remove_etcd_member), ("cleanup-node", cleanup_node)],
        args.skip_phases,
        "reset",
    )
    print(REMINDER)
