"""kubeadm reset: removes what the real one removes, leaves CNI config, links, iptables/IPVS rules, $HOME/.kube."""

from __future__ import annotations

import argparse
import re
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .. import config, cri, paths
from . import etcdmember
from .common import klog_warning, run_phases, systemctl
from .files import say
from .preflight import cri_answers

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


def cri_socket(args: argparse.Namespace) -> str:
    """--cri-socket, else the kubelet's --container-runtime-endpoint of kubeadm-flags.env, else containerd's."""
    if args.cri_socket:
        return str(args.cri_socket)
    try:
        flags = paths.host(paths.KUBEADM_FLAGS).read_text()
    except OSError:
        flags = ""
    found = re.search(r"--container-runtime-endpoint=([^\s\"]+)", flags)
    return found[1] if found else config.DEFAULT_CRI


def remove_containers(socket: str, attempts: int = 5) -> None:
    """kubeadm's removeContainers (no output at the default verbosity): every container of the CRI stopped and
    removed, then every pod sandbox, each tried a few times; what still fails is one klog warning. Skipped quietly
    under a test root, without python3-grpcio, or when the socket does not answer."""
    if str(paths.root()) != "/" or not cri.available() or cri_answers(socket) is not None:
        return
    errors: list[str] = []

    def retried(what: str, stop: Callable[[], None], remove: Callable[[], None]) -> None:
        for attempt in range(attempts):
            try:
                stop()
                remove()
                return
            except cri.CriError as exc:
                if attempt == attempts - 1:
                    errors.append(f"failed to remove {what}: {exc}")
                time.sleep(0.2 * (attempt + 1))

    try:
        with cri.Runtime(socket, timeout=60) as rt:
            for c in rt.list_containers():
                retried(f"container {c['id']}", partial(rt.stop_container, c["id"], 0),
                        partial(rt.remove_container, c["id"]))
            for pod in rt.list_pod_sandboxes():
                retried(f"pod sandbox {pod['id']}", partial(rt.stop_pod_sandbox, pod["id"]),
                        partial(rt.remove_pod_sandbox, pod["id"]))
    except cri.CriError as exc:
        errors.append(str(exc))
    if errors:
        klog_warning(f"[reset] Failed to remove containers: [{', '.join(errors)}]", "cleanupnode.go:106")


def run(args: argparse.Namespace) -> None:
    if not args.force:
        print("[reset] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
        answer = input()
        if answer.strip().lower() not in ("y", "yes"):
            raise SystemExit("error execution phase preflight: aborted reset operation")
    is_cp = paths.host("/etc/kubernetes/manifests/etcd.yaml").exists()
    socket = cri_socket(args)

    def preflight() -> None:
        say("[preflight] Running pre-flight checks")

    def remove_etcd_member() -> None:
        if is_cp:
            etcdmember.remove_local_member("/etc/kubernetes/pki")
            say("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
            _clean_dir(paths.host(paths.ETCD_DIR))

    def cleanup_node() -> None:
        say("[reset] Stopping the kubelet service")
        systemctl("stop", "kubelet")
        say('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
        remove_containers(socket)
        if is_cp:  # what the etcd the kubelet ran may have written after remove-etcd-member emptied it
            _clean_dir(paths.host(paths.ETCD_DIR))
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
