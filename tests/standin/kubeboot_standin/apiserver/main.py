"""kube-apiserver stand-in entry point: takes the real kube-apiserver flags from the static pod manifest."""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from pathlib import Path

from .. import faults, paths
from ..etcd import Etcd
from .api import Api
from .authz import default_objects
from .controllers import Controllers
from .server import Server, ssl_context
from .store import EtcdStore, Store


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kube-apiserver", allow_abbrev=False)
    p.add_argument("--advertise-address", default="")
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument("--secure-port", type=int, default=6443)
    p.add_argument("--client-ca-file", default="/etc/kubernetes/pki/ca.crt")
    p.add_argument("--tls-cert-file", default="/etc/kubernetes/pki/apiserver.crt")
    p.add_argument("--tls-private-key-file", default="/etc/kubernetes/pki/apiserver.key")
    p.add_argument("--etcd-servers", default="")
    p.add_argument("--etcd-cafile", default="/etc/kubernetes/pki/etcd/ca.crt")
    p.add_argument("--etcd-certfile", default="/etc/kubernetes/pki/apiserver-etcd-client.crt")
    p.add_argument("--etcd-keyfile", default="/etc/kubernetes/pki/apiserver-etcd-client.key")
    p.add_argument("--standin-data-dir", default="/var/lib/etcd")
    p.add_argument("--standin-controller-manifest", default="/etc/kubernetes/manifests/kube-controller-manager.yaml")
    p.add_argument("-v", "--v", default="0")
    args, _unknown = p.parse_known_args(argv)  # the other real flags are accepted and ignored
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    store = open_store(args)
    addr = f"{args.advertise_address or args.bind_address}:{args.secure_port}"
    api = Api(store, version_info(), addr)
    bootstrap(api)
    ctl = Controllers(api, paths.host(args.standin_controller_manifest), addr)
    ctl.start()
    ctx = ssl_context(
        str(paths.host(args.tls_cert_file)),
        str(paths.host(args.tls_private_key_file)),
        str(paths.host(args.client_ca_file)),
    )
    verbose = args.v not in ("0", "")
    while True:
        server = Server((args.bind_address, args.secure_port), api, ctx, verbose)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        print(f"kube-apiserver stand-in serving on https://{args.bind_address}:{args.secure_port}", flush=True)
        down = None
        while down is None:
            time.sleep(0.5)
            down = faults.take_apiserver_outage()
        server.stopping = True
        server.shutdown()
        server.server_close()
        print(f"fault injection: refusing connections for {down}s", flush=True)
        time.sleep(down)


def open_store(args: argparse.Namespace) -> Store:
    """The cluster's etcd on a node (the etcd static pod the kubelet runs); a file of its own where the tests
    simulate a node on the host (KUBEBOOT_STANDIN_ROOT), which runs no etcd."""
    if paths.simulated() or not args.etcd_servers:
        return Store(paths.host(args.standin_data_dir) / "member" / "standin-store.json")
    client = Etcd(
        args.etcd_servers.split(","),
        str(paths.host(args.etcd_cafile)),
        str(paths.host(args.etcd_certfile)),
        str(paths.host(args.etcd_keyfile)),
    )
    return EtcdStore(client)


def image_version() -> str:
    """The version of the kube-apiserver image the kubelet started this process for (the tag of the static pod's
    image, KUBEBOOT_STANDIN_IMAGE), else the stand-in package's own."""
    tag = os.environ.get("KUBEBOOT_STANDIN_IMAGE", "").rpartition("/")[2].partition(":")[2].split("@")[0]
    return tag if re.fullmatch(r"v\d+\.\d+\.\d+", tag) else paths.VERSION


def version_info() -> dict[str, str]:
    v = image_version()
    major, minor, _ = v.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(int(minor) - 1),
        "gitVersion": v,
        "gitCommit": paths.GIT_COMMIT,
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T09:46:45Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def bootstrap(api: Api) -> None:
    """What a fresh apiserver creates: the system namespaces and the default RBAC roles."""
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        if api.store.get(("", "namespaces", "", ns)) is None:
            api.store.create(
                ("", "namespaces", "", ns),
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
    for plural, obj in default_objects():
        key = ("rbac.authorization.k8s.io", plural, "", obj["metadata"]["name"])
        if api.store.get(key) is None:
            api.store.create(key, obj)


if __name__ == "__main__":
    sys.exit(main())

_ = Path
