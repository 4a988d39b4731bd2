"""`kubeadm` command line: the subcommands and flags the roles use."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .. import certs, config, paths, tokens
from .. import images as image_store
from ..client import Client
from . import renewal
from .common import PhaseError, config_warnings
from .files import certificate_key, images
from .preflight import PreflightError

VERSION_FIELDS = [
    ("Major", "1"),
    ("Minor", str(paths.MINOR)),
    ("EmulationMajor", ""),
    ("EmulationMinor", ""),
    ("MinCompatibilityMajor", ""),
    ("MinCompatibilityMinor", ""),
    ("GitVersion", paths.VERSION),
    ("GitCommit", paths.GIT_COMMIT),
    ("GitTreeState", "clean"),
    ("BuildDate", "2025-05-15T09:55:04Z"),
    ("GoVersion", "go1.24.2"),
    ("Compiler", "gc"),
    ("Platform", "linux/amd64"),
]


def _csv(v: str) -> list[str]:
    return [x for x in v.split(",") if x]


def _common_init_join(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config")
    p.add_argument("--ignore-preflight-errors", type=_csv, default=[])
    p.add_argument("--skip-phases", type=_csv, default=[])
    p.add_argument("--node-name")
    p.add_argument("--cri-socket")
    p.add_argument("--apiserver-advertise-address")
    p.add_argument("--apiserver-bind-port")
    p.add_argument("--certificate-key")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--v", "-v", default="0")
    p.add_argument("--patches")


def _init_flags(p: argparse.ArgumentParser) -> None:
    _common_init_join(p)
    p.add_argument("--upload-certs", action="store_true")
    p.add_argument("--pod-network-cidr")
    p.add_argument("--service-cidr")
    p.add_argument("--control-plane-endpoint")
    p.add_argument("--kubernetes-version")
    p.add_argument("--apiserver-cert-extra-sans")
    p.add_argument("--token")
    p.add_argument("--token-ttl")
    p.add_argument("--skip-token-print", action="store_true")
    p.add_argument("--skip-certificate-key-print", action="store_true")
    p.add_argument("--image-repository")
    p.add_argument("--feature-gates")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubeadm", allow_abbrev=False)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("version")
    v.add_argument("-o", "--output", default="")
    cfg = sub.add_parser("config").add_subparsers(dest="sub", required=True)
    val = cfg.add_parser("validate")
    val.add_argument("--config", required=True)
    val.add_argument("--allow-experimental-api", action="store_true")
    img = cfg.add_parser("images").add_subparsers(dest="sub2", required=True)
    il = img.add_parser("list")
    il.add_argument("--config")
    il.add_argument("--kubernetes-version")
    il.add_argument("--image-repository")
    il.add_argument("-o", "--output", default="text")
    ip = img.add_parser("pull")
    ip.add_argument("--config")
    ip.add_argument("--kubernetes-version")
    ip.add_argument("--image-repository")
    ip.add_argument("--cri-socket")
    ip.add_argument("--feature-gates")
    pr = cfg.add_parser("print").add_subparsers(dest="sub2", required=True)
    pr.add_parser("init-defaults")
    pr.add_parser("join-defaults")
    init = sub.add_parser("init")
    _init_flags(init)
    phase_sub = init.add_subparsers(dest="sub")
    ph = phase_sub.add_parser("phase").add_subparsers(dest="phase", required=True)
    for name in (
        "preflight",
        "certs",
        "kubeconfig",
        "etcd",
        "control-plane",
        "kubelet-start",
        "upload-config",
        "upload-certs",
        "mark-control-plane",
        "bootstrap-token",
        "kubelet-finalize",
        "addon",
        "show-join-command",
        "wait-control-plane",
    ):
        pp = ph.add_parser(name)
        _init_flags(pp)
        pp.add_argument("rest", nargs="*")
    certs_p = sub.add_parser("certs").add_subparsers(dest="sub", required=True)
    certs_p.add_parser("certificate-key")
    ce = certs_p.add_parser("check-expiration")
    renewal.add_flags(ce)
    ce.add_argument("-o", "--output", default="text")
    rn = certs_p.add_parser("renew")
    rn.add_argument("name", choices=[*renewal.NAMES, "all"])
    renewal.add_flags(rn)
    tok = sub.add_parser("token").add_subparsers(dest="sub", required=True)
    for name in ("create", "list", "delete", "generate"):
        t = tok.add_parser(name)
        t.add_argument("--kubeconfig", default="/etc/kubernetes/admin.conf")
        t.add_argument("--dry-run", action="store_true")
        if name == "create":
            t.add_argument("token", nargs="?")
            t.add_argument("--ttl", default="24h0m0s")
            t.add_argument("--print-join-command", action="store_true")
            t.add_argument("--description", default="")
            t.add_argument("--usages", type=_csv, default=["signing", "authentication"])
            t.add_argument("--groups", type=_csv, default=[tokens.DEFAULT_GROUP])
            t.add_argument("--certificate-key")
            t.add_argument("--config")
        if name == "list":
            t.add_argument("-o", "--output", default="text")
        if name == "delete":
            t.add_argument("tokens", nargs="+")
    from . import upgrade

    upgrade.add_parsers(sub)
    join = sub.add_parser("join")
    _common_init_join(join)
    join.add_argument("endpoint", nargs="?")
    join.add_argument("--token")
    join.add_argument("--discovery-token")
    join.add_argument("--tls-bootstrap-token")
    join.add_argument("--discovery-token-ca-cert-hash", action="append")
    join.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    join.add_argument("--discovery-file")
    join.add_argument("--control-plane", action="store_true")
    reset = sub.add_parser("reset")
    reset.add_argument("-f", "--force", action="store_true")
    reset.add_argument("--cri-socket")
    reset.add_argument("--cleanup-tmp-dir", action="store_true")
    reset.add_argument("--ignore-preflight-errors", type=_csv, default=[])
    reset.add_argument("--skip-phases", type=_csv, default=[])
    reset.add_argument("--config")
    reset.add_argument("--kubeconfig")
    reset.add_argument("--dry-run", action="store_true")
    reset.add_argument("--v", "-v", default="0")
    return p


def cmd_version(args: argparse.Namespace) -> None:
    if args.output == "short":
        print(paths.VERSION)
        return
    info = {k[0].lower() + k[1:]: v for k, v in VERSION_FIELDS}
    if args.output == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump({"clientVersion": info}, sort_keys=False), end="")
    else:
        print("kubeadm version: &version.Info{" + ", ".join(f'{k}:"{v}"' for k, v in VERSION_FIELDS) + "}")


def cmd_token(args: argparse.Namespace) -> None:
    if args.sub == "generate":
        print(tokens.generate())
        return
    kc_path = paths.host(args.kubeconfig)
    c = Client.from_kubeconfig(kc_path)
    if args.sub == "create":
        token = args.token or tokens.generate()
        try:
            tokens.parse(token)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        from .cluster import create_token

        create_token(c, token, args.ttl, args.description, args.usages, args.groups)
        if args.print_join_command:
            kc = certs.read_kubeconfig(kc_path)
            ca_hash = certs.ca_cert_hash(
                certs.load_cert(paths.host("/etc/kubernetes/pki/ca.crt"))
                if paths.host("/etc/kubernetes/pki/ca.crt").exists()
                else _cert(kc["ca_pem"])
            )
            line = (
                f"kubeadm join {kc['server'].removeprefix('https://')} --token {token} "
                f"--discovery-token-ca-cert-hash {ca_hash} "
            )
            if args.certificate_key:
                line += f"--control-plane --certificate-key {args.certificate_key}"
            print(line)
        else:
            print(token)
    elif args.sub == "list":
        items = c.get("/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken")
        print(tokens.list_table(items.get("items", [])), end="")
    elif args.sub == "delete":
        for t in args.tokens:
            tid = t.split(".")[0]
            c.delete(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}")
            print(f'bootstrap token "{tid}" deleted')


def _cert(pem: bytes):  # type: ignore[no-untyped-def]
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem)


# Flags that kubeadm's ValidateMixedArguments refuses next to --config (they have a config-file field instead).
NOT_WITH_CONFIG = (
    "pod_network_cidr",
    "service_cidr",
    "service_dns_domain",
    "kubernetes_version",
    "control_plane_endpoint",
    "apiserver_advertise_address",
    "apiserver_bind_port",
    "apiserver_cert_extra_sans",
    "image_repository",
    "token",
    "token_ttl",
    "discovery_token",
    "discovery_token_ca_cert_hash",
    "discovery_token_unsafe_skip_ca_verification",
    "discovery_file",
    "tls_bootstrap_token",
    "control_plane",
)


def check_mixed_arguments(args: argparse.Namespace) -> None:
    if not getattr(args, "config", None):
        return
    mixed = sorted(f.replace("_", "-") for f in NOT_WITH_CONFIG if getattr(args, f, None) not in (None, False, []))
    if mixed:
        raise config.ConfigError(f"can not mix '--config' with arguments [{' '.join(mixed)}]")


def images_output(images_: list[str], output: str) -> str:
    if output == "json":
        doc = {"kind": "Images", "apiVersion": "output.kubeadm.k8s.io/v1alpha3", "images": images_}
        return json.dumps(doc, indent=4) + "\n"
    if output == "yaml":
        doc = {"apiVersion": "output.kubeadm.k8s.io/v1alpha3", "images": images_, "kind": "Images"}
        return yaml.safe_dump(doc, sort_keys=False)
    return "".join(f"{i}\n" for i in images_)


def pull_control_plane_images(images_: list[str]) -> None:
    """`kubeadm config images pull`: every image, pulled again even when present, stopping at the first failure."""
    for image in images_:
        try:
            image_store.pull(image)
        except image_store.PullError as exc:
            raise RuntimeError(f'failed to pull image "{image}": failed to pull image {image}: {exc}') from None
        print(f"[config/images] Pulled {image}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.cmd == "version":
            cmd_version(args)
        elif args.cmd == "config" and args.sub == "validate":
            text = Path(args.config).read_text()
            docs = config.split_documents(text, strict=True)
            if not (
                {
                    "InitConfiguration",
                    "ClusterConfiguration",
                    "JoinConfiguration",
                    "ResetConfiguration",
                    "UpgradeConfiguration",
                }
                & set(docs.docs)
            ):
                raise config.ConfigError(
                    "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
                )
            config.cluster_settings(docs.docs.get("ClusterConfiguration"), paths.VERSION)
            for kind in ("InitConfiguration", "JoinConfiguration"):
                if kind in docs.docs:
                    config.validate_node_registration(docs.docs[kind].get("nodeRegistration") or {}, "nodeRegistration")
            for i, bt in enumerate(docs.docs.get("InitConfiguration", {}).get("bootstrapTokens") or []):
                if bt.get("token"):
                    config.validate_token(bt["token"], f"bootstrapTokens[{i}].token")
            print("ok")
        elif args.cmd == "config" and args.sub == "images":
            # As kubeadm's LoadOrDefaultInitConfiguration: with --config the file decides and the
            # --kubernetes-version/--image-repository flags are not used; without it the flags apply.
            cdoc = None
            if args.config:
                docs = config.split_documents(Path(args.config).read_text(), strict=False)
                config_warnings(docs.warnings)
                cdoc = docs.docs.get("ClusterConfiguration")
            cdoc = dict(cdoc or {})
            if not args.config and args.kubernetes_version:
                cdoc["kubernetesVersion"] = args.kubernetes_version
            if not args.config and args.image_repository:
                cdoc["imageRepository"] = args.image_repository
            cs = config.cluster_settings(cdoc or None, paths.VERSION)
            if args.sub2 == "list":
                print(images_output(images(cs), args.output), end="")
            else:
                pull_control_plane_images(images(cs))
        elif args.cmd == "config" and args.sub == "print":
            kind = "InitConfiguration" if args.sub2 == "init-defaults" else "JoinConfiguration"
            print(f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: {kind}\n")
        elif args.cmd == "certs" and args.sub == "check-expiration":
            renewal.check_expiration(args)
        elif args.cmd == "certs" and args.sub == "renew":
            renewal.renew(args)
        elif args.cmd == "certs":
            print(certificate_key())
        elif args.cmd == "token":
            cmd_token(args)
        elif args.cmd == "init":
            from . import init

            check_mixed_arguments(args)
            if getattr(args, "sub", None) == "phase":
                init.run(args, only=args.phase)
            else:
                init.run(args)
        elif args.cmd == "join":
            from . import join

            check_mixed_arguments(args)
            join.run(args)
        elif args.cmd == "upgrade":
            from . import upgrade

            upgrade.run(args)
        elif args.cmd == "reset":
            from . import reset

            reset.run(args)
    except PreflightError as exc:
        print(
            f"error execution phase preflight: {exc}\nTo see the stack trace of this error execute with --v=5 or "
            "higher",
            file=sys.stderr,
        )
        return 1
    except PhaseError as exc:
        cause = exc.__cause__
        msg = f"error execution phase preflight: {cause}" if isinstance(cause, PreflightError) else str(exc)
        print(f"{msg}\nTo see the stack trace of this error execute with --v=5 or higher", file=sys.stderr)
        return 1
    except (config.ConfigError, RuntimeError, OSError) as exc:
        print(f"{exc}\nTo see the stack trace of this error execute with --v=5 or higher", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
