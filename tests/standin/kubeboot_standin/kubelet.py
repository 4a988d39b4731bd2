"""kubelet stand-in: runs under the kubelet systemd unit with the real flags.

It exits (and systemd restarts it) until /var/lib/kubelet/config.yaml exists, serves /healthz,
runs the API server of the static pod manifests as its own process and the etcd of the etcd
static pod as a real etcd (Debian's, carried by the package), performs the TLS bootstrap
with the bootstrap token, registers its Node with the labels and taints from its flags, reports
Ready only when a CNI configuration exists and containerd answers, and runs every pod it is given
(static pods, pods bound to its node) as a real pod sandbox through containerd's CRI (pods.py).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import os
import pkgutil
import platform
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from . import certs, cni, netfilter, paths, pods
from .client import ApiError, Client
from .kubeadm.preflight import cri_answers, swap_on

STATIC_RUNNABLE = {"kube-apiserver", "etcd"}
ETCD_LOG = "/var/log/kubeboot-standin/etcd.log"


def log(msg: str) -> None:
    now = dt.datetime.now(dt.UTC)
    print(f"I{now:%m%d %H:%M:%S.%f} {os.getpid():>7} kubelet.go] {msg}", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubelet", allow_abbrev=False)
    p.add_argument("--config")
    p.add_argument("--kubeconfig")
    p.add_argument("--bootstrap-kubeconfig")
    p.add_argument("--node-labels", default="")
    p.add_argument("--register-with-taints", default="")
    p.add_argument("--hostname-override", default="")
    p.add_argument("--node-ip", default="")
    p.add_argument("--container-runtime-endpoint", default="unix:///var/run/containerd/containerd.sock")
    p.add_argument("--fail-swap-on", default="")
    args, _ = p.parse_known_args(argv)
    return args


def parse_taints(spec: str) -> list[dict[str, str]]:
    out = []
    for item in filter(None, spec.split(",")):
        kv, _, effect = item.partition(":")
        key, _, value = kv.partition("=")
        t = {"key": key, "effect": effect}
        if value:
            t["value"] = value
        out.append(t)
    return out


def parse_labels(spec: str) -> dict[str, str]:
    out = {}
    for item in filter(None, spec.split(",")):
        k, _, v = item.partition("=")
        out[k] = v
    return out


class StaticPods:
    """Runs the static pods the stand-in implements as child processes; the rest are accepted as no-ops."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        self.manifests: list[tuple[str, dict[str, Any]]] = []

    @staticmethod
    def runs(name: str) -> bool:
        if name == "etcd":  # a real etcd on a node; none where the tests simulate a node on the host
            return not paths.simulated()
        return name in STATIC_RUNNABLE

    @staticmethod
    def _start(name: str, cmd: list[str], image: str = "") -> subprocess.Popen[bytes]:
        if name != "etcd":
            # The API server reports the version of its image (the manifest's tag), as a real one runs the binary
            # of that image: `kubeadm upgrade apply` rewrites the tag and the restarted API server follows it.
            env = {**os.environ, "KUBEBOOT_STANDIN_IMAGE": image}
            return subprocess.Popen(StaticPods._command(name, cmd[1:]), env=env)
        ensure_etcd()
        logfile = paths.host(ETCD_LOG)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("ab") as out:
            return subprocess.Popen([str(paths.host(paths.ETCD_BIN)), *cmd[1:]], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL)

    @staticmethod
    def _command(name: str, args: list[str]) -> list[str]:
        main = sys.modules["__main__"]
        if getattr(main, "__loader__", None) is not None and type(main.__loader__).__name__ == "zipimporter":
            return [sys.executable, sys.argv[0], f"--standin-run={name}", *args]
        return [sys.executable, "-m", "kubeboot_standin.apiserver.main", *args]

    def sync(self) -> list[str]:
        seen = []
        self.manifests = []
        for f in sorted(self.dir.glob("*.yaml")) if self.dir.is_dir() else []:
            try:
                text = f.read_text()
                pod = yaml.safe_load(text)
                name = pod["metadata"]["name"]
                cmd = pod["spec"]["containers"][0]["command"]
                image = str(pod["spec"]["containers"][0].get("image") or "")
            except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
                continue
            seen.append(name)
            self.manifests.append((text, pod))
            if not self.runs(name):
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            cur = self.procs.get(name)
            if cur and cur[0] == digest and cur[1].poll() is None:
                continue
            if cur:
                self._stop(cur[1])
            log(f'"Starting static pod" pod="kube-system/{name}"')
            self.procs[name] = (digest, self._start(name, cmd, image))
        for name in [n for n in self.procs if n not in seen]:
            log(f'"Killing static pod" pod="kube-system/{name}"')
            self._stop(self.procs.pop(name)[1])
        return seen

    @staticmethod
    def _stop(p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def stop_all(self) -> None:
        for _, p in self.procs.values():
            self._stop(p)
        self.procs.clear()


def ensure_etcd() -> None:
    """Put the etcd binary this zipapp carries (the etcd image's content) where the etcd static pod runs it."""
    target = paths.host(paths.ETCD_BIN)
    data = pkgutil.get_data(__package__ or "kubeboot_standin", "etcd")
    if not data:
        raise FileNotFoundError("kubeboot_standin/etcd is not packaged here (it is in the kubelet zipapp)")
    if target.exists() and target.stat().st_size == len(data):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".new")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, target)


def serve_healthz(address: str, port: int) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok"
            self.send_response(200 if self.path.startswith("/healthz") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    srv = ThreadingHTTPServer((address, port), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def tls_bootstrap(bootstrap: Path, kubeconfig: Path, node: str) -> bool:
    kc = certs.read_kubeconfig(bootstrap)
    c = Client(kc["server"], kc.get("ca_pem"), token=kc.get("token"), timeout=10)
    key = certs.new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    pem = csr.public_bytes(serialization.Encoding.PEM)
    try:
        obj = c.create(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"generateName": "csr-"},
                "spec": {
                    "request": base64.b64encode(pem).decode(),
                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                    "usages": ["digital signature", "client auth"],
                },
            },
        )
    except (ApiError, OSError) as exc:
        log(f'"Failed to request signed certificate from the API server" err="{exc}"')
        return False
    name = obj["metadata"]["name"]
    for _ in range(60):
        cur = c.get(f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}")
        cert_b64 = (cur.get("status") or {}).get("certificate")
        if cert_b64:
            cert_pem = base64.b64decode(cert_b64)
            ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
            pki = paths.host(f"{paths.KUBELET_DIR}/pki")
            target = pki / f"kubelet-client-{ts}.pem"
            certs.write_private(target, cert_pem + certs.key_pem(key))
            link = pki / "kubelet-client-current.pem"
            link.unlink(missing_ok=True)
            link.symlink_to(target.name)
            cfg = certs.kubeconfig(
                kc["server"],
                kc["ca_pem"],
                "default-auth",
                cert_file="/var/lib/kubelet/pki/kubelet-client-current.pem",
                key_file="/var/lib/kubelet/pki/kubelet-client-current.pem",
                cluster="default-cluster",
            )
            cfg["contexts"][0]["name"] = "default-context"
            cfg["current-context"] = "default-context"
            certs.write_kubeconfig(kubeconfig, cfg)
            log('"Certificate rotation detected, shutting down client connections to start using new credentials"')
            return True
        time.sleep(0.5)
    return False


def node_address(flag: str) -> str:
    if flag:
        return flag
    from .kubeadm.common import default_address

    try:
        return default_address()
    except RuntimeError:
        return "127.0.0.1"


def ready_condition(cri: str) -> tuple[str, str, str]:
    if cri_answers(cri) is not None:
        return "False", "KubeletNotReady", "container runtime is down"
    conf = paths.host(paths.CNI_CONF_DIR)
    confs = [p for p in conf.glob("*") if p.suffix in (".conf", ".conflist", ".json")] if conf.is_dir() else []
    if not confs:
        return (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        )
    return "True", "KubeletReady", "kubelet is posting ready status"


def node_object(node: str, args: argparse.Namespace, address: str) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        **parse_labels(args.node_labels),
    }
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
    }
    taints = parse_taints(args.register_with_taints)
    if taints:
        obj["spec"]["taints"] = taints
    _ = address
    return obj


def node_status(address: str, node: str, cri: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, reason, message = ready_condition(cri)
    conds = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now, "lastTransitionTime": now}
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conds.append(
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    return {
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": node}],
        "conditions": conds,
        "capacity": {"cpu": str(os.cpu_count() or 1), "memory": "2Gi", "pods": "110"},
        "allocatable": {"cpu": str(os.cpu_count() or 1), "memory": "2Gi", "pods": "110"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64",
            "containerRuntimeVersion": "containerd://1.6.20",
            "kernelVersion": platform.release(),
            "kubeProxyVersion": "",
            "kubeletVersion": paths.VERSION,
            "operatingSystem": "linux",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def run(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["--version=true"]):
        print(f"Kubernetes {paths.VERSION}")
        return 0
    args = parse(argv)
    cfg_path = paths.host(args.config) if args.config else None
    if cfg_path is None or not cfg_path.exists():
        print(
            f'E0000 00:00:00.000000 {os.getpid():>7} run.go:72] "command failed" err="failed to load kubelet config '
            f"file, path: {args.config}, error: failed to load Kubelet config file {args.config}, error failed to "
            f'read kubelet config file \\"{args.config}\\", error: open {args.config}: no such file or directory"',
            file=sys.stderr,
            flush=True,
        )
        return 1
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    fail_swap = cfg.get("failSwapOn", True) if args.fail_swap_on == "" else args.fail_swap_on == "true"
    if fail_swap and swap_on():
        print(
            f'E0000 00:00:00.000000 {os.getpid():>7} run.go:72] "command failed" err="failed to run Kubelet: running '
            'with swap on is not supported, please disable swap or set --fail-swap-on flag to false"',
            file=sys.stderr,
            flush=True,
        )
        return 1
    cri = cfg.get("containerRuntimeEndpoint") or args.container_runtime_endpoint
    # The kubelet's iptables canaries (KUBE-KUBELET-CANARY in mangle, nat and filter), as the real one makes them.
    netfilter.ensure("kubelet", netfilter.KUBELET_CANARY)
    node = (args.hostname_override or platform.node()).lower()
    address = node_address(args.node_ip)
    serve_healthz(cfg.get("healthzBindAddress", "127.0.0.1"), paths.healthz_port(cfg))
    static_dir = paths.host(cfg.get("staticPodPath", paths.MANIFESTS))
    static_dir.mkdir(parents=True, exist_ok=True)
    static = StaticPods(static_dir)
    stop = threading.Event()

    def on_term(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    kubeconfig = paths.host(args.kubeconfig) if args.kubeconfig else None
    registered = False
    period = float(cfg.get("standinStatusPeriodSeconds", 0) or 0) or 5.0
    agent = cni.Agent(node)
    workers = pods.PodWorkers(node, address, cri, str(cfg.get("cgroupDriver") or "cgroupfs"), log)
    last_status = last_pods = 0.0
    try:
        while not stop.is_set():
            static.sync()
            client = None
            if kubeconfig is not None:
                if (
                    not kubeconfig.exists()
                    and args.bootstrap_kubeconfig
                    and paths.host(args.bootstrap_kubeconfig).exists()
                ):
                    tls_bootstrap(paths.host(args.bootstrap_kubeconfig), kubeconfig, node)
                if kubeconfig.exists() and time.monotonic() - last_status >= period:
                    try:
                        c = Client.from_kubeconfig(kubeconfig, timeout=5)
                        if not registered:
                            registered = register(c, node, args, address)
                        if registered:
                            obj = c.patch(f"/api/v1/nodes/{node}/status", {"status": node_status(address, node, cri)})
                            agent.sync(c, obj)
                            last_status = time.monotonic()
                            client = c
                    except (ApiError, OSError) as exc:
                        if isinstance(exc, ApiError) and exc.code == 404:
                            registered = False
                        log(f'"Error updating node status, will retry" err="{exc}"')
                elif registered and kubeconfig.exists():
                    with contextlib.suppress(OSError):
                        client = Client.from_kubeconfig(kubeconfig, timeout=5)
            if time.monotonic() - last_pods >= 2.0 and pods.usable(cri):
                last_pods = time.monotonic()
                try:
                    workers.sync(static.manifests, client)
                except (pods.cri.CriError, ApiError, OSError, KeyError, TypeError, ValueError) as exc:
                    log(f'"Error syncing pods, will retry" err="{exc!r}"')
            stop.wait(1.0)
    finally:
        static.stop_all()
    return 0


def register(c: Client, node: str, args: argparse.Namespace, address: str) -> bool:
    log(f'"Attempting to register node" node="{node}"')
    try:
        c.create("/api/v1/nodes", node_object(node, args, address))
    except ApiError as exc:
        if exc.code != 409:
            log(f'"Unable to register node with API server" err="{exc}" node="{node}"')
            return False
    log(f'"Successfully registered node" node="{node}"')
    return True


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0].startswith("--standin-cni="):
        from .cniplugin import main as plugin_main

        return plugin_main(argv[0].split("=", 1)[1])
    if argv and argv[0].startswith("--standin-run="):
        from .apiserver.main import main as apiserver_main

        return apiserver_main(argv[1:])
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
