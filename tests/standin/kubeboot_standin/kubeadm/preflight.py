"""kubeadm 1.33 preflight checks (the ones that matter on these nodes), with kubeadm's names and wording."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field

from .. import config, images, paths


class PreflightError(Exception):
    pass


@dataclass
class Results:
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def _proc_value(path: str) -> str | None:
    try:
        return paths.host(path).read_text().strip()
    except OSError:
        return None


def port_in_use(port: int) -> bool:
    host = "127.0.0.1" if os.environ.get("KUBEBOOT_STANDIN_ROOT") else ""
    s = socket.socket()
    # As Go's net.Listen (kubeadm's check): SO_REUSEADDR, so that connections of a stopped server left in TIME_WAIT
    # do not count; a socket listening there still does.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        return True
    finally:
        s.close()
    return False


def cri_answers(cri_socket: str) -> str | None:
    """None if the CRI socket accepts connections, else crictl's error text."""
    path = cri_socket.removeprefix("unix://")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(str(paths.host(path)))
    except OSError as exc:
        reason = "no such file or directory" if isinstance(exc, FileNotFoundError) else "connection refused"
        return (
            f'output: time="" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
            f'endpoint \\"{cri_socket}\\": rpc error: code = Unavailable desc = connection error: desc = '
            f'\\"transport: Error while dialing: dial unix {path}: connect: {reason}\\""\n, error: exit status 1'
        )
    finally:
        s.close()
    return None


def swap_on() -> bool:
    try:
        lines = paths.host("/proc/swaps").read_text().splitlines()
    except OSError:
        return False
    return len([ln for ln in lines if ln.strip()]) > 1


def mem_mb() -> int:
    try:
        for line in paths.host("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1 << 20


def run(
    kind: str,
    cri_socket: str,
    ports: list[int],
    ignore: list[str],
    kubelet_dir: str = paths.KUBELET_DIR,
    control_plane: bool = False,
) -> Results:
    r = Results()
    if os.geteuid() != 0:
        r.errors.append(("IsPrivilegedUser", "user is not running as root"))
    if control_plane:
        cpus = os.cpu_count() or 1
        if cpus < 2:
            r.errors.append(("NumCPU", f"the number of available CPUs {cpus} is less than the required 2"))
        mem = mem_mb()
        if mem < 1700:
            r.errors.append(("Mem", f"the system RAM ({mem} MB) is less than the minimum 1700 MB"))
    err = cri_answers(cri_socket)
    if err:
        r.errors.append(("CRI", f"container runtime is not running: {err}"))
    if swap_on():
        r.warnings.append(
            (
                "Swap",
                "swap is supported for cgroup v2 only. The kubelet must be properly configured "
                "to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/"
                "#swap-memory, or disable swap on the node",
            )
        )
    for port in ports:
        if port_in_use(port):
            r.errors.append((f"Port-{port}", f"Port {port} is in use"))
    files = []
    if kind == "init":
        files = [
            f"{paths.MANIFESTS}/{c}.yaml"
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
        ]
    else:
        files = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt"]
    for f in files:
        if paths.host(f).exists():
            r.errors.append((f"FileAvailable-{f.replace('/', '-')}", f"{f} already exists"))
    if kind == "init" or control_plane:
        etcd = paths.host(paths.ETCD_DIR)
        if etcd.is_dir() and any(etcd.iterdir()):
            r.errors.append(("DirAvailable--var-lib-etcd", "/var/lib/etcd is not empty"))
    if kind == "join":
        man = paths.host(paths.MANIFESTS)
        if man.is_dir() and any(man.iterdir()):
            r.errors.append(("DirAvailable--etc-kubernetes-manifests", "/etc/kubernetes/manifests is not empty"))
    fwd = _proc_value("/proc/sys/net/ipv4/ip_forward")
    if fwd is None:
        r.errors.append(("FileContent--proc-sys-net-ipv4-ip_forward", "/proc/sys/net/ipv4/ip_forward does not exist"))
    elif fwd != "1":
        r.errors.append(
            ("FileContent--proc-sys-net-ipv4-ip_forward", "/proc/sys/net/ipv4/ip_forward contents are not set to 1")
        )
    _ = kubelet_dir
    lowered = {i.lower() for i in ignore}
    kept = []
    for name, msg in r.errors:
        if "all" in lowered or name.lower() in lowered:
            r.warnings.append((name, msg))
        else:
            kept.append((name, msg))
    r.errors = kept
    return r


def pull_images(image_list: list[str], policy: str, ignore: list[str]) -> Results:
    """kubeadm's ImagePullCheck (init, and join --control-plane): each image not on the node is pulled through the
    runtime (IfNotPresent, the default imagePullPolicy), every image with Always, none with Never. The runtime
    client tries a failing pull PullImageRetry (5) times and wraps the last error."""
    r = Results()
    if policy == "Never":
        return r
    for image in image_list:
        if policy != "Always" and images.exists(image):
            continue
        try:
            images.pull(image)
        except images.PullError as exc:
            r.errors.append(("ImagePull", f"failed to pull image {image}: failed to pull image {image}: {exc}"))
    lowered = {i.lower() for i in ignore}
    if "all" in lowered or "imagepull" in lowered:
        r.warnings, r.errors = r.errors, []
    return r


def validate_ignore(from_cli: list[str], from_file: list[str]) -> list[str]:
    """kubeadm's ValidateIgnorePreflightErrors: names are case-insensitive; 'all' is refused in a config file and
    cannot be combined with individual names."""
    names = {n.lower() for n in from_file}
    if "all" in names:
        raise config.ConfigError(
            "ignorePreflightErrors: Invalid value: \"all\": 'all' cannot be used in configuration file"
        )
    names |= {n.lower() for n in from_cli}
    if "all" in names and len(names) > 1:
        raise config.ConfigError(
            f'ignore-preflight-errors: Invalid value: "{",".join(sorted(names))}": '
            "don't specify individual checks if 'all' is used"
        )
    return sorted(names)


def report(r: Results) -> None:
    for name, msg in r.warnings:
        print(f"\t[WARNING {name}]: {msg}", file=sys.stderr)
    if r.errors:
        lines = "".join(f"\t[ERROR {n}]: {m}\n" for n, m in r.errors)
        raise PreflightError(
            "[preflight] Some fatal errors occurred:\n"
            + lines
            + "[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`"
        )
