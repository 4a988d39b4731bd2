"""`kubeadm upgrade plan`, `kubeadm upgrade apply` and `kubeadm upgrade node`, as kubeadm 1.33 does them on the
stand-in's files (cmd/kubeadm/app/cmd/upgrade, app/phases/upgrade).

- The cluster's version is the API server's /version (kubeadm's versionGetter); the target of `plan` is kubeadm's
  own version (the real one asks dl.k8s.io for the stable release of its minor and falls back to its own version
  offline).
- `apply` enforces kubeadm's version policies (no downgrade, one minor at a time, not above kubeadm's own minor,
  not below its minimum control-plane version) before it changes anything.
- The control-plane phase rewrites the static pod manifests of this node (the kube-apiserver, kube-controller-manager
  and kube-scheduler images, tagged with the target) after backing them up in /etc/kubernetes/tmp; the kubelet
  restarts the API server whose manifest changed, and kubeadm waits until this node's API server answers /version
  with the target; on failure the old manifests are put back, as kubeadm rolls back.
- Phases (the `upgrade` fault marker names one; a parent matches its sub-phases): apply runs preflight,
  control-plane, upload-config (kubeadm, kubelet), kubelet-config, bootstrap-token, addon (coredns, kube-proxy),
  post-upgrade; node runs preflight, control-plane, kubelet-config, addon, post-upgrade (kubeadm 1.32+ phases).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .. import certs, config, paths
from ..client import ApiError, Client
from ..tabwriter import table
from . import files
from .common import run_phases
from .files import say
from .preflight import PreflightError, Results, pull_images, report, validate_ignore

KS = "/api/v1/namespaces/kube-system"
CONTROL_PLANE = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
APPLY_PHASES = ["preflight", "control-plane", "upload-config", "kubelet-config", "bootstrap-token", "addon",
                "post-upgrade"]
NODE_PHASES = ["preflight", "control-plane", "kubelet-config", "addon", "post-upgrade"]


class VersionPolicyError(RuntimeError):
    pass


def add_parsers(sub: Any) -> None:
    up = sub.add_parser("upgrade").add_subparsers(dest="sub", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    common.add_argument("--kubeconfig", default="/etc/kubernetes/admin.conf")
    common.add_argument("--ignore-preflight-errors", type=lambda v: [x for x in v.split(",") if x], default=[])
    common.add_argument("--v", "-v", default="0")
    plan = up.add_parser("plan", parents=[common])
    plan.add_argument("version", nargs="?")
    plan.add_argument("-o", "--output", default="text")
    plan.add_argument("--print-config", action="store_true")
    plan.add_argument("--allow-experimental-upgrades", action="store_true")
    plan.add_argument("--allow-release-candidate-upgrades", action="store_true")
    apply = up.add_parser("apply", parents=[common])
    apply.add_argument("version", nargs="?")
    apply.add_argument("-y", "--yes", action="store_true")
    apply.add_argument("-f", "--force", action="store_true")
    apply.add_argument("--dry-run", action="store_true")
    apply.add_argument("--etcd-upgrade", default="true")
    apply.add_argument("--certificate-renewal", default="true")
    apply.add_argument("--skip-phases", type=lambda v: [x for x in v.split(",") if x], default=[])
    apply.add_argument("--print-config", action="store_true")
    apply.add_argument("--patches")
    node = up.add_parser("node", parents=[common])
    node.add_argument("--dry-run", action="store_true")
    node.add_argument("--etcd-upgrade", default="true")
    node.add_argument("--certificate-renewal", default="true")
    node.add_argument("--skip-phases", type=lambda v: [x for x in v.split(",") if x], default=[])
    node.add_argument("--patches")
    # `kubeadm upgrade node phase <name>`
    node_phase = node.add_subparsers(dest="sub2")
    ph = node_phase.add_parser("phase").add_subparsers(dest="phase", required=True)
    for name in NODE_PHASES:
        ph.add_parser(name, parents=[common])


def parse_version(v: str) -> tuple[int, int, int]:
    m = _SEMVER.match(v.strip())
    if not m:
        raise config.ConfigError(f'couldn\'t parse Kubernetes version "{v}"')
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def vstr(v: tuple[int, int, int]) -> str:
    return "v" + ".".join(map(str, v))


def target_of(version: str | None) -> str:
    """The version argument as kubeadm normalizes it: a label (stable, stable-1.33...) is kubeadm's own version
    offline; a bare 1.33.1 gets its "v"."""
    if not version or version.startswith(("stable", "latest")):
        return paths.VERSION
    return vstr(parse_version(version))


def version_policy_errors(target: str, cluster: str) -> list[str]:
    """kubeadm's EnforceVersionPolicies, the mandatory ones."""
    new, cur, kubeadm_v = parse_version(target), parse_version(cluster), parse_version(paths.VERSION)
    minimum = (1, kubeadm_v[1] - 1, 0)
    errs = []
    if new < minimum:
        errs.append(
            f'Specified version to upgrade to "{target}" is equal to or lower than the minimum supported version '
            f'"{vstr(minimum)}". Please specify a higher version to upgrade to'
        )
    if new < cur:
        errs.append(
            f'Specified version to upgrade to "{target}" is lower than the cluster version "{cluster}". '
            "Downgrades are not supported yet"
        )
    if new[1] > cur[1] + 1:
        errs.append(
            f'Specified version to upgrade to "{target}" is too high; kubeadm can upgrade only 1 minor version at a '
            "time"
        )
    if kubeadm_v[1] > new[1]:
        errs.append(
            f"Kubeadm version {paths.VERSION} can only be used to upgrade to Kubernetes version "
            f"{kubeadm_v[0]}.{kubeadm_v[1]}"
        )
    if new[:2] > kubeadm_v[:2]:
        errs.append(
            f'Specified version to upgrade to "{target}" is higher than the kubeadm version "{paths.VERSION}". '
            "Upgrade kubeadm first using the tool you used to install kubeadm"
        )
    return errs


def enforce(target: str, cluster: str) -> None:
    errs = version_policy_errors(target, cluster)
    if errs:
        raise VersionPolicyError(
            "[upgrade/version] FATAL: the version argument is invalid due to these fatal errors:\n\n"
            + "".join(f"\t- {e}\n" for e in errs)
            + "\nPlease fix the misalignments highlighted above and try upgrading again"
        )


# ---- the cluster and this node ----


class State:
    def __init__(self, kubeconfig: str, prefix: str = "upgrade/config") -> None:
        self.kubeconfig = kubeconfig
        self.client = Client.from_kubeconfig(paths.host(kubeconfig), timeout=15)
        say(f'[{prefix}] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
        say(f"[{prefix}] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.")
        try:
            cm = self.client.get(f"{KS}/configmaps/kubeadm-config")
        except (ApiError, OSError) as exc:
            raise RuntimeError(f'unable to fetch the kubeadm-config ConfigMap: {_api_msg(exc)}') from exc
        self.cluster_doc: dict[str, Any] = yaml.safe_load(cm["data"]["ClusterConfiguration"]) or {}

    def cluster_version(self) -> str:
        return str(self.client.get("/version")["gitVersion"])

    def settings(self, version: str) -> config.ClusterSettings:
        return config.cluster_settings({**self.cluster_doc, "kubernetesVersion": version}, version)

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.client.get("/api/v1/nodes")["items"])


def _api_msg(exc: Exception) -> str:
    if isinstance(exc, ApiError) and isinstance(exc.body, dict):
        return str(exc.body.get("message", exc))
    return str(exc)


def manifest_path(name: str) -> Path:
    return paths.host(f"{paths.MANIFESTS}/{name}.yaml")


def is_control_plane() -> bool:
    return manifest_path("kube-apiserver").exists()


def manifest_version(name: str) -> str:
    """The tag of a static pod manifest's image on this node ("" when there is none)."""
    try:
        pod = yaml.safe_load(manifest_path(name).read_text())
        return str(pod["spec"]["containers"][0]["image"]).rpartition(":")[2]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return ""


def node_name() -> str:
    """This node's name: the kubelet's client certificate's (system:node:<name>), else the host's."""
    try:
        kc = certs.read_kubeconfig(paths.host(f"{paths.ETC_K8S}/kubelet.conf"))
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(kc["cert_pem"])
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        return str(cn).removeprefix("system:node:")
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return files.node_default_name()


def local_apiserver(state: State) -> Client:
    """A client of this node's API server (its manifest's advertise address and port), with the admin credentials:
    the control-plane endpoint may be another node's."""
    pod = yaml.safe_load(manifest_path("kube-apiserver").read_text())
    flags = dict(
        a.removeprefix("--").split("=", 1) for a in pod["spec"]["containers"][0]["command"][1:] if "=" in a
    )
    host = flags.get("advertise-address") or "127.0.0.1"
    if flags.get("bind-address", "0.0.0.0") not in ("0.0.0.0", "::"):
        host = flags["bind-address"]
    kc = certs.read_kubeconfig(paths.host(state.kubeconfig))
    return Client(
        f"https://{host}:{flags.get('secure-port', '6443')}",
        kc.get("ca_pem"),
        kc.get("cert_pem"),
        kc.get("key_pem"),
        kc.get("token"),
        timeout=5,
    )


def health_checks(state: State, ignore: list[str]) -> None:
    """kubeadm's CheckClusterHealth, the part that matters here: every control-plane node Ready
    (ControlPlaneNodesReady, ignorable by name)."""
    say("[upgrade] Running cluster health checks")
    not_ready = sorted(
        n["metadata"]["name"]
        for n in state.nodes()
        if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {})
        and not any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or []
        )
    )
    if not_ready:
        r = Results()
        msg = f"there are NotReady control-planes in the cluster: [{' '.join(not_ready)}]"
        if "controlplanenodesready" in ignore or "all" in ignore:
            r.warnings.append(("ControlPlaneNodesReady", msg))
        else:
            r.errors.append(("ControlPlaneNodesReady", msg))
        try:
            report(r)
        except PreflightError as exc:
            raise RuntimeError(f"[upgrade/health] FATAL: {exc}") from None


def upgrade_static_pods(state: State, target: str, timeout: float) -> None:
    """Rewrite this node's control-plane manifests for the target, wait for the kubelet to restart the API server
    with it, and roll back to the old manifests when it does not come."""
    cs = state.settings(target)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    tmp = paths.host(f"{paths.ETC_K8S}/tmp")
    new_dir = tmp / f"kubeadm-upgraded-manifests{int(time.time())}"
    backup = tmp / f"kubeadm-backup-manifests-{stamp}"
    new_dir.mkdir(parents=True, exist_ok=True)
    backup.mkdir(parents=True, exist_ok=True)
    say(f'[upgrade/staticpods] Writing new Static Pod manifests to "{paths.ETC_K8S}/tmp/{new_dir.name}"')
    moved: list[str] = []
    try:
        for name in CONTROL_PLANE:
            src = manifest_path(name)
            if not src.exists():
                raise RuntimeError(f'the static Pod manifest of "{name}" does not exist: {paths.MANIFESTS}/{name}.yaml')
            pod = yaml.safe_load(src.read_text())
            pod["spec"]["containers"][0]["image"] = f"{cs.image_repository}/{name}:{target}"
            text = yaml.safe_dump(pod, sort_keys=False)
            say(f'[upgrade/staticpods] Preparing for "{name}" upgrade')
            if text == src.read_text():
                say(f'[upgrade/staticpods] Current and new manifests of {name} are equal, skipping upgrade')
                continue
            (new_dir / f"{name}.yaml").write_text(text)
            say(
                f'[upgrade/staticpods] Moving new manifest to "{paths.MANIFESTS}/{name}.yaml" and backing up old '
                f'manifest to "{paths.ETC_K8S}/tmp/{backup.name}/{name}.yaml"'
            )
            shutil.copy2(src, backup / f"{name}.yaml")
            moved.append(name)
            src.write_text(text)
            os.chmod(src, 0o600)
            say("[upgrade/staticpods] Waiting for the kubelet to restart the component")
            say(f"[upgrade/staticpods] This can take up to {_duration(timeout)}")
            if name == "kube-apiserver":
                wait_version(state, target, timeout)
            say(f"[apiclient] Found 1 Pods for label selector component={name}")
            say(f'[upgrade/staticpods] Component "{name}" upgraded successfully!')
    except Exception as exc:
        for name in moved:
            shutil.copy2(backup / f"{name}.yaml", manifest_path(name))
        raise RuntimeError(
            f"couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. "
            f"Errors faced: {exc}"
        ) from exc
    finally:
        shutil.rmtree(new_dir, ignore_errors=True)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s}s"


def wait_version(state: State, target: str, timeout: float) -> None:
    c = local_apiserver(state)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = str(c.get("/version")["gitVersion"])
            if last == target:
                return
        except (ApiError, OSError, KeyError, TypeError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(
        f"timed out waiting for the condition: the kube-apiserver of this node did not come back with version "
        f"{target} (last answer: {last})"
    )


def upgrade_kubelet_config(state: State) -> None:
    """The kubelet-config ConfigMap to /var/lib/kubelet/config.yaml (the old one backed up), as kubeadm does."""
    try:
        cm = state.client.get(f"{KS}/configmaps/kubelet-config")
    except (ApiError, OSError) as exc:
        raise RuntimeError(f"failed to get the kubelet configuration: {_api_msg(exc)}") from exc
    cfg = yaml.safe_load(cm["data"]["kubelet"]) or {}
    target = paths.host(paths.KUBELET_CONFIG)
    if target.exists():
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
        bdir = paths.host(f"{paths.ETC_K8S}/tmp/kubeadm-kubelet-config-{stamp}")
        bdir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, bdir / "config.yaml")
        say(f'[upgrade] Backing up kubelet config file to {paths.ETC_K8S}/tmp/{bdir.name}/config.yaml')
        old = yaml.safe_load(target.read_text()) or {}
        # What the node keeps of its own (the stand-in's tests give each "node" its healthz port this way).
        for k in ("healthzPort", "nodeStatusUpdateFrequency", "standinStatusPeriodSeconds"):
            if k in old and k not in cfg:
                cfg[k] = old[k]
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f'[kubelet-start] Writing kubelet configuration to file "{paths.KUBELET_CONFIG}"')
    target.write_text(yaml.safe_dump(cfg, sort_keys=True))
    say("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")


def upload_config(state: State, target: str) -> None:
    say('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    doc = {**state.cluster_doc, "kubernetesVersion": target}
    cm = state.client.get(f"{KS}/configmaps/kubeadm-config")
    cm["data"]["ClusterConfiguration"] = yaml.safe_dump(doc, sort_keys=True)
    state.client.request("PUT", f"{KS}/configmaps/kubeadm-config", cm)
    state.cluster_doc = doc
    say(
        '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the '
        "kubelets in the cluster"
    )
    kcm = state.client.get(f"{KS}/configmaps/kubelet-config")
    state.client.request("PUT", f"{KS}/configmaps/kubelet-config", kcm)


def upgrade_addons(state: State, target: str) -> None:
    cs = state.settings(target)
    c = state.client
    dep = c.get_or_none("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    if dep is not None:
        for ct in dep["spec"]["template"]["spec"].get("containers") or []:
            if ct.get("name") == "coredns":
                ct["image"] = files.dns_image(cs)
        c.request("PUT", "/apis/apps/v1/namespaces/kube-system/deployments/coredns", dep)
        say("[addons] Applied essential addon: CoreDNS")
    ds = c.get_or_none("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
    if ds is not None:
        for ct in ds["spec"]["template"]["spec"].get("containers") or []:
            if ct.get("name") == "kube-proxy":
                ct["image"] = f"{cs.image_repository}/kube-proxy:{target}"
        c.request("PUT", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", ds)
        say("[addons] Applied essential addon: kube-proxy")


def ask(question: str) -> None:
    print(f"[upgrade] {question} [y/N]: ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        print("")
        raise RuntimeError("won't proceed; the user didn't answer (Y|y) in order to continue")


def timeout_seconds() -> float:
    # UpgradeConfiguration's timeouts.upgradeManifests (5m0s); the stand-in's tests shorten it.
    return float(os.environ.get("KUBEBOOT_STANDIN_UPGRADE_TIMEOUT", "300"))


# ---- commands ----


def plan(args: argparse.Namespace) -> None:
    say("[preflight] Running pre-flight checks.")
    state = State(args.kubeconfig)
    health_checks(state, validate_ignore(args.ignore_preflight_errors, []))
    say("[upgrade] Fetching available versions to upgrade to")
    cluster = state.cluster_version()
    target = target_of(args.version)
    say(f"[upgrade/versions] Cluster version: {cluster}")
    say(f"[upgrade/versions] kubeadm version: {paths.VERSION}")
    say(f"[upgrade/versions] Target version: {target}")
    say(f"[upgrade/versions] Latest version in the v1.{parse_version(cluster)[1]} series: {cluster}")
    say("")
    if parse_version(target) <= parse_version(cluster) and all(
        n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion") == target for n in state.nodes()
    ):
        say("Awesome, you're up-to-date! Enjoy!")
        return
    enforce(target, cluster)
    cur_cs = state.settings(cluster)
    new_cs = state.settings(target)
    nodes = sorted(state.nodes(), key=lambda n: n["metadata"]["name"])
    say(
        "Components that must be upgraded manually after you have upgraded the control plane with "
        "'kubeadm upgrade apply':"
    )
    rows = [["COMPONENT", "NODE", "CURRENT", "TARGET"]]
    for n in nodes:
        rows.append(["kubelet", n["metadata"]["name"], n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion",
                                                                                                  ""), target])
    print(table(rows, 10, 3), end="")
    say("")
    say("Upgrade to the latest stable version:")
    say("")
    cps = [n["metadata"]["name"] for n in nodes
           if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {})]
    rows = [["COMPONENT", "NODE", "CURRENT", "TARGET"]]
    here = node_name()
    for comp in CONTROL_PLANE:
        for cp in cps:
            cur = manifest_version(comp) if cp == here else cluster
            rows.append([comp, cp, cur or cluster, target])
    rows.append(["kube-proxy", "", cluster.lstrip("v"), target])
    rows.append(["CoreDNS", "", files.dns_image(cur_cs).rpartition(":")[2], files.dns_image(new_cs).rpartition(":")[2]])
    for cp in cps:
        etcd = files.etcd_image(cur_cs).rpartition(":")[2]
        rows.append(["etcd", cp, etcd, files.etcd_image(new_cs).rpartition(":")[2]])
    print(table(rows, 10, 3), end="")
    say("")
    say("You can now apply the upgrade by executing the following command:")
    say("")
    say(f"\tkubeadm upgrade apply {target}")
    say("")
    say("_____________________________________________________________________")
    say("")
    say("The table below shows the current state of component configs as understood by this version of kubeadm.")
    say('Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column require manual config upgrade or')
    say("resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually")
    say('upgrade to is denoted in the "PREFERRED VERSION" column.')
    say("")
    print(
        table(
            [
                ["API GROUP", "CURRENT VERSION", "PREFERRED VERSION", "MANUAL UPGRADE REQUIRED"],
                ["kubeproxy.config.k8s.io", "v1alpha1", "v1alpha1", "no"],
                ["kubelet.config.k8s.io", "v1beta1", "v1beta1", "no"],
            ],
            10,
            3,
        ),
        end="",
    )
    say("_____________________________________________________________________")
    say("")


def apply(args: argparse.Namespace) -> None:
    if not args.version:
        raise RuntimeError("missing one or more required arguments. Required arguments: [version]")
    target = target_of(args.version)
    ignore = validate_ignore(args.ignore_preflight_errors, [])
    state = State(args.kubeconfig, "upgrade")
    timeout = timeout_seconds()

    def preflight() -> None:
        say("[upgrade/preflight] Running preflight checks")
        health_checks(state, ignore)
        if not is_control_plane():
            raise RuntimeError(
                f"the static Pod manifest of kube-apiserver was not found in {paths.MANIFESTS}: `kubeadm upgrade "
                "apply` runs on a control plane node"
            )
        say(f'[upgrade/preflight] You have chosen to upgrade the cluster version to "{target}"')
        cluster = state.cluster_version()
        say(f"[upgrade/versions] Cluster version: {cluster}")
        say(f"[upgrade/versions] kubeadm version: {paths.VERSION}")
        enforce(target, cluster)
        if not args.yes and not args.dry_run:
            ask("Are you sure you want to proceed?")
        say("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster")
        say("[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection")
        say("[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'")
        report(pull_images(files.images(state.settings(target)), "IfNotPresent", ignore))

    def control_plane() -> None:
        say(f'[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version "{target}" '
            f"(timeout: {_duration(timeout)})...")
        if args.dry_run:
            return
        upgrade_static_pods(state, target, timeout)
        say("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!")

    phases = [
        ("preflight", preflight),
        ("control-plane", control_plane),
        ("upload-config/kubeadm", lambda: None if args.dry_run else upload_config(state, target)),
        ("kubelet-config", lambda: None if args.dry_run else upgrade_kubelet_config(state)),
        ("bootstrap-token", lambda: say("[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC "
                                        "rules")),
        ("addon", lambda: None if args.dry_run else upgrade_addons(state, target)),
        ("post-upgrade", lambda: None),
    ]
    run_phases(phases, args.skip_phases, "upgrade")
    if args.dry_run:
        say("[dryrun] Finished dryrunning successfully!")
        return
    say("")
    say(f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".')
    say("")
    say("[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")


def node(args: argparse.Namespace) -> None:
    cp = is_control_plane()
    kubeconfig = args.kubeconfig if cp else f"{paths.ETC_K8S}/kubelet.conf"
    state = State(kubeconfig, "upgrade")
    target = target_of(str(state.cluster_doc.get("kubernetesVersion") or paths.VERSION))
    timeout = timeout_seconds()
    dry = bool(getattr(args, "dry_run", False))

    def preflight() -> None:
        say("[upgrade/preflight] Running pre-flight checks")
        if cp:
            say("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster")
            say("[upgrade/preflight] This might take a minute or two, depending on the speed of your internet "
                "connection")
            say("[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'")
            report(pull_images(files.images(state.settings(target)), "IfNotPresent",
                               validate_ignore(args.ignore_preflight_errors, [])))
        else:
            say("[upgrade/preflight] Skipping prepull. Not a control plane node.")

    def control_plane() -> None:
        if not cp:
            say("[upgrade/control-plane] Skipping phase. Not a control plane node.")
            return
        say(f'[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version "{target}"...')
        if dry:
            return
        upgrade_static_pods(state, target, timeout)
        say("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!")

    def addon() -> None:
        if not cp:
            say("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.")
            say("[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.")

    phases = [
        ("preflight", preflight),
        ("control-plane", control_plane),
        ("kubelet-config", lambda: None if dry else upgrade_kubelet_config(state)),
        ("addon", addon),
        ("post-upgrade", lambda: None),
    ]
    only = args.phase if getattr(args, "sub2", None) == "phase" else None
    run_phases(phases, getattr(args, "skip_phases", []) or [], "upgrade", only)
    if only is None:
        say("[upgrade] The upgrade for this node was successfully completed!")


def run(args: argparse.Namespace) -> None:
    {"plan": plan, "apply": apply, "node": node}[args.sub](args)
