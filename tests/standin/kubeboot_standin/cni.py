"""CNI simulation: what the flannel or calico DaemonSet pod would do to this host once its manifest is applied.

On a node (root "/") links are created with iproute2; under a test root they are recorded in
<root>/run/kubeboot-standin/links.json so nothing touches the host running the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import cniplugin, netfilter, paths
from .client import ApiError, Client


class Links:
    def __init__(self) -> None:
        self.simulated = paths.root() != Path("/") or not shutil.which("ip")
        self.file = paths.host("/run/kubeboot-standin/links.json")

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self.file.read_text()))
        except (OSError, ValueError):
            return {}

    def get(self, name: str) -> dict[str, Any] | None:
        if self.simulated:
            return self._load().get(name)
        cp = subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True, text=True, check=False)
        if cp.returncode != 0:
            return None
        info = json.loads(cp.stdout or "[]")
        if not info:
            return None
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in info[0].get("addr_info", []) if a.get("family") == "inet"]
        return {"name": name, "addresses": addrs}

    def ensure(self, name: str, kind: str, address: str, **opts: Any) -> None:
        if self.simulated:
            data = self._load()
            cur = data.get(name) or {"name": name, "kind": kind, "addresses": [], **opts}
            if address not in cur["addresses"]:
                cur["addresses"].append(address)
            data[name] = cur
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.file.write_text(json.dumps(data, indent=1))
            return
        if self.get(name) is None:
            cmd = ["ip", "link", "add", name, "type", kind]
            if kind == "vxlan":
                cmd += ["id", str(opts.get("vni", 1)), "dstport", str(opts.get("port", 8472)), "nolearning"]
                if opts.get("dev"):
                    cmd += ["dev", opts["dev"]]
                if opts.get("local"):
                    cmd += ["local", opts["local"]]
            elif kind == "ipip":
                cmd = ["ip", "tunnel", "add", name, "mode", "ipip"]
            subprocess.run(cmd, check=False, capture_output=True)
        subprocess.run(["ip", "addr", "replace", address, "dev", name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=False, capture_output=True)

    def mac(self, name: str) -> str:
        """The link's MAC address (a made-up one for a recorded link under a test root)."""
        if self.simulated:
            return "02:42:" + ":".join(hashlib.sha256(name.encode()).hexdigest()[i:i + 2] for i in range(0, 8, 2))
        cp = subprocess.run(["ip", "-j", "link", "show", "dev", name], capture_output=True, text=True, check=False)
        try:
            return str(json.loads(cp.stdout or "[]")[0].get("address", ""))
        except (ValueError, IndexError):
            return ""


def default_iface() -> tuple[str, str]:
    if paths.root() != Path("/") or not shutil.which("ip"):
        return "eth0", "127.0.0.1"
    cp = subprocess.run(["ip", "-j", "route", "get", "10.255.255.255"], capture_output=True, text=True, check=False)
    try:
        r = json.loads(cp.stdout)[0]
        return r.get("dev", "eth0"), r.get("prefsrc", "")
    except (ValueError, IndexError):
        return "eth0", ""


def iface_address(name: str) -> str | None:
    """The first IPv4 address of an interface, None when it does not exist (test roots: every name exists, on
    loopback, unless listed as missing in <root>/run/kubeboot-standin/missing-ifaces)."""
    if paths.root() != Path("/") or not shutil.which("ip"):
        missing = paths.host("/run/kubeboot-standin/missing-ifaces")
        if missing.exists() and name in missing.read_text().split():
            return None
        return "127.0.0.1"
    cp = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", name], capture_output=True, text=True, check=False)
    if cp.returncode != 0:
        return None
    try:
        infos = json.loads(cp.stdout or "[]")
        return next((a["local"] for i in infos for a in i.get("addr_info", []) if a.get("family") == "inet"), "")
    except ValueError:
        return None


def flannel_ifaces(ds: dict[str, Any]) -> list[str]:
    """The --iface values of the kube-flannel container (flanneld accepts it repeated, first match wins)."""
    out: list[str] = []
    for cont in ds.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        argv = [*(cont.get("command") or []), *(cont.get("args") or [])]
        for i, a in enumerate(argv):
            if a.startswith("--iface="):
                out.append(a.split("=", 1)[1])
            elif a == "--iface" and i + 1 < len(argv):
                out.append(argv[i + 1])
    return out


def _write(path: str, text: str) -> None:
    p = paths.host(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists() or p.read_text() != text:
        p.write_text(text)


class Agent:
    def __init__(self, node: str) -> None:
        self.node = node
        self.links = Links()
        self.routes = Routes()
        self.reported: set[str] = set()

    def _find(self, c: Client, group: str, plural: str, name: str) -> dict[str, Any] | None:
        prefix = f"/apis/{group}" if group else "/api/v1"
        try:
            lst = c.get(f"{prefix}/{plural}?fieldSelector=metadata.name%3D{name}")
        except ApiError:
            return None
        items = lst.get("items") or []
        return items[0] if items else None

    def sync(self, c: Client, node: dict[str, Any]) -> None:
        self.kube_proxy(c)
        ds = self._find(c, "apps/v1", "daemonsets", "kube-flannel-ds")
        if ds:
            self.flannel(c, node, ds)
        elif self._find(c, "apps/v1", "daemonsets", "calico-node"):
            self.calico(c, node)
        elif self._find(c, "apps/v1", "deployments", "tigera-operator"):
            installation = self._find(c, "operator.tigera.io/v1", "installations", "default")
            if installation:
                self.calico_operator(c, installation)

    def kube_proxy(self, c: Client) -> None:
        """What kube-proxy's DaemonSet pod does to this host in iptables mode (its default): its KUBE-* chains."""
        if not self._find(c, "apps/v1", "daemonsets", "kube-proxy"):
            return
        cm = self._find(c, "", "configmaps", "kube-proxy") or {}
        try:
            conf = yaml.safe_load((cm.get("data") or {}).get("config.conf", "")) or {}
        except yaml.YAMLError:
            conf = {}
        if str(conf.get("mode") or "iptables") == "iptables":
            netfilter.ensure("kube-proxy", netfilter.KUBE_PROXY_IPTABLES)

    def _event(self, c: Client, reason: str, message: str) -> None:
        if message in self.reported:
            return
        self.reported.add(message)
        print(f"E kubelet cni] {message}", flush=True)
        with contextlib.suppress(ApiError, OSError):
            c.create(
                "/api/v1/namespaces/default/events",
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"generateName": f"{self.node}."},
                    "involvedObject": {"kind": "Node", "name": self.node, "apiVersion": "v1"},
                    "reason": reason,
                    "message": message,
                    "type": "Warning",
                    "count": 1,
                    "source": {"component": "kubelet", "host": self.node},
                },
            )

    def flannel(self, c: Client, node: dict[str, Any], ds: dict[str, Any] | None = None) -> None:
        cm = self._find(c, "", "configmaps", "kube-flannel-cfg")
        if cm is None:
            return
        net_conf = json.loads((cm.get("data") or {}).get("net-conf.json", "{}"))
        cni_conf = (cm.get("data") or {}).get("cni-conf.json", "")
        network = net_conf.get("Network", "10.244.0.0/16")
        backend = (net_conf.get("Backend") or {}).get("Type", "vxlan")
        if not paths.host("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            self._event(
                c,
                "FlannelFailed",
                "Failed to check br_netfilter: stat /proc/sys/net/bridge/"
                "bridge-nf-call-iptables: no such file or directory",
            )
            return
        pod_cidr = (node.get("spec") or {}).get("podCIDR")
        if not pod_cidr:
            self._event(
                c,
                "FlannelFailed",
                f'Error registering network: failed to acquire lease: node "{self.node}" pod cidr not assigned',
            )
            return
        subnet = ipaddress.ip_network(pod_cidr)
        if not subnet.subnet_of(ipaddress.ip_network(network)):  # type: ignore[arg-type]
            self._event(
                c,
                "FlannelFailed",
                f'Error registering network: failed to acquire lease: subnet "{pod_cidr}"'
                f' specified in the flannel net config doesn\'t contain "{network}" PodCIDR of the '
                f'"{self.node}" node',
            )
            return
        gw = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        _write(
            "/run/flannel/subnet.env",
            f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={gw}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
        )
        if cni_conf:
            _write("/etc/cni/net.d/10-flannel.conflist", cni_conf if cni_conf.endswith("\n") else cni_conf + "\n")
        wanted = flannel_ifaces(ds or {})
        if wanted:
            found = [(i, iface_address(i)) for i in wanted]
            usable = [(i, a) for i, a in found if a is not None]
            if not usable:
                self._event(
                    c,
                    "FlannelFailed",
                    "Failed to find interface to use that matches the interfaces and/or regexes provided",
                )
                return
            dev, local = usable[0][0], usable[0][1] or ""
        else:
            dev, local = default_iface()
        if backend == "vxlan":
            self.links.ensure(
                "flannel.1", "vxlan", f"{subnet.network_address}/32", vni=1, port=8472, dev=dev, local=local
            )
        # flanneld --ip-masq sets up its chains before any pod (and whatever the bridge plugin then finds).
        containers = (ds or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        if any("--ip-masq" in [*(cont.get("command") or []), *(cont.get("args") or [])] for cont in containers):
            netfilter.ensure("flannel", netfilter.flannel_rules(network, str(subnet)))
        install_plugin("flannel")
        mac = self.links.mac("flannel.1") if backend == "vxlan" else ""
        direct = backend == "host-gw" or bool((net_conf.get("Backend") or {}).get("DirectRouting"))
        if not self.links.simulated:
            self.routes.sync(flannel_peers(c, self.node, backend, direct, dev, local))
        ann = (node.get("metadata") or {}).get("annotations") or {}
        data = json.dumps({"VNI": 1, "VtepMAC": mac}) if backend == "vxlan" else "null"
        if (ann.get("flannel.alpha.coreos.com/backend-type"), ann.get("flannel.alpha.coreos.com/backend-data"),
                ann.get("flannel.alpha.coreos.com/public-ip")) != (backend, data, local or ""):
            c.patch(
                f"/api/v1/nodes/{self.node}",
                {
                    "metadata": {
                        "annotations": {
                            "flannel.alpha.coreos.com/backend-type": backend,
                            "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                            "flannel.alpha.coreos.com/public-ip": local or "",
                            "flannel.alpha.coreos.com/backend-data": data,
                        }
                    }
                },
            )

    def calico_operator(self, c: Client, installation: dict[str, Any]) -> None:
        """What the tigera operator and calico-node do for an Installation (operator.tigera.io/v1): the first IPv4
        pool's cidr, blockSize and encapsulation decide this node's block and tunnel device."""
        network = (installation.get("spec") or {}).get("calicoNetwork") or {}
        pools = [p for p in network.get("ipPools") or [] if ":" not in str(p.get("cidr", ""))]
        pool = pools[0] if pools else {}
        encapsulation = str(pool.get("encapsulation", "IPIP"))
        mode = "CrossSubnet" if encapsulation.endswith("CrossSubnet") else "Always"
        self._calico_node(
            c,
            str(pool.get("cidr", "192.168.0.0/16")),
            int(pool.get("blockSize", 26)),
            mode if encapsulation.startswith("IPIP") else "Never",
            mode if encapsulation.startswith("VXLAN") else "Never",
            "",
        )

    def calico(self, c: Client, node: dict[str, Any]) -> None:
        ds = self._find(c, "apps/v1", "daemonsets", "calico-node") or {}
        env: dict[str, str] = {}
        for cont in ds.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if cont.get("name") == "calico-node":
                env = {e["name"]: str(e.get("value", "")) for e in cont.get("env") or [] if "name" in e}
        pool = env.get("CALICO_IPV4POOL_CIDR", "192.168.0.0/16")
        ipip = env.get("CALICO_IPV4POOL_IPIP", "Always")
        vxlan = env.get("CALICO_IPV4POOL_VXLAN", "Never")
        try:
            pools = c.get("/apis/crd.projectcalico.org/v1/ippools").get("items") or []
        except ApiError:
            pools = []
        if pools:
            spec = pools[0].get("spec") or {}
            pool = spec.get("cidr", pool)
            ipip = spec.get("ipipMode", ipip)
            vxlan = spec.get("vxlanMode", vxlan)
        block_size = int(pools[0].get("spec", {}).get("blockSize", 26)) if pools else 26
        cm = self._find(c, "", "configmaps", "calico-config")
        template = ((cm or {}).get("data") or {}).get("cni_network_config", "")
        self._calico_node(c, pool, block_size, ipip, vxlan, template)

    def _calico_node(self, c: Client, pool: str, block_size: int, ipip: str, vxlan: str, template: str) -> None:
        node_objs = c.get("/api/v1/nodes").get("items", [])
        blocks = calico_blocks(pool, block_size, [n["metadata"]["name"] for n in node_objs])
        block = blocks.get(self.node) or next(iter(blocks.values()))
        if not template:
            template = json.dumps(
                {
                    "name": "k8s-pod-network",
                    "cniVersion": "0.3.1",
                    "plugins": [
                        {
                            "type": "calico",
                            "nodename": "__KUBERNETES_NODE_NAME__",
                            "mtu": "__CNI_MTU__",
                            "ipam": {"type": "calico-ipam"},
                            "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"},
                        },
                        {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            ).replace('"__CNI_MTU__"', "__CNI_MTU__") + "\n"
        if template:
            conf = (
                template.replace("__KUBERNETES_NODE_NAME__", self.node)
                .replace("__CNI_MTU__", "1440")
                .replace("__KUBECONFIG_FILEPATH__", "/etc/cni/net.d/calico-kubeconfig")
            )
            _write("/etc/cni/net.d/10-calico.conflist", conf)
            _write("/etc/cni/net.d/calico-kubeconfig", f"# calico kubeconfig for {self.node}\n")
        _write("/var/lib/calico/nodename", self.node)
        _write("/var/lib/calico/mtu", "1440")
        _write(cniplugin.CALICO_BLOCK_FILE, f"{block}\n")
        install_plugin("calico")
        dev, local = default_iface()
        tunnel_ip = f"{block.network_address}/32"
        mac = ""
        if vxlan in ("Always", "CrossSubnet"):
            self.links.ensure("vxlan.calico", "vxlan", tunnel_ip, vni=4096, port=4789, dev=dev, local=local)
            mac = self.links.mac("vxlan.calico")
        elif ipip in ("Always", "CrossSubnet"):
            self.links.ensure("tunl0", "ipip", tunnel_ip)
        me = next((n for n in node_objs if n["metadata"]["name"] == self.node), {})
        ann = (me.get("metadata") or {}).get("annotations") or {}
        if mac and ann.get(VXLAN_MAC_ANNOTATION) != mac:
            c.patch(f"/api/v1/nodes/{self.node}", {"metadata": {"annotations": {
                VXLAN_MAC_ANNOTATION: mac, "projectcalico.org/IPv4VXLANTunnelAddr": str(block.network_address)}}})
        if not self.links.simulated:
            mode = "vxlan" if vxlan != "Never" else ("ipip" if ipip != "Never" else "direct")
            cross = "CrossSubnet" in (vxlan, ipip)
            self.routes.sync(calico_peers(node_objs, blocks, self.node, mode, cross, dev, local))
        _ = os


def links_file() -> Path:
    return paths.host("/run/kubeboot-standin/links.json")


VXLAN_MAC_ANNOTATION = "standin.kubeboot.io/vxlan-tunnel-mac"


def run_ip(*args: str) -> None:
    subprocess.run(list(args), check=False, capture_output=True)


def install_plugin(kind: str) -> None:
    """The DaemonSet's install-cni step: our flannel or calico plugin in /opt/cni/bin (a launcher of the kubelet)."""
    kubelet = os.path.abspath(sys.argv[0])
    target = paths.host(f"/opt/cni/bin/{kind}")
    text = cniplugin.launcher(kind, kubelet)
    if not target.exists() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)


@dataclass(frozen=True)
class Peer:
    """How this node reaches another node's pod range: straight through its address on the node network, or
    through a VXLAN device with the other end's MAC (the route goes via the other node's tunnel address)."""

    cidr: str
    address: str
    via_vxlan: str = ""
    mac: str = ""

    def commands(self, dev: str) -> list[list[str]]:
        if not self.via_vxlan:
            return [["ip", "route", "replace", self.cidr, "via", self.address, "dev", dev]]
        gw = str(ipaddress.ip_network(self.cidr).network_address)
        return [
            ["ip", "neigh", "replace", gw, "lladdr", self.mac, "dev", self.via_vxlan, "nud", "permanent"],
            ["bridge", "fdb", "replace", self.mac, "dev", self.via_vxlan, "dst", self.address, "self", "permanent"],
            ["ip", "route", "replace", self.cidr, "via", gw, "dev", self.via_vxlan, "onlink"],
        ]


class Routes:
    """The routes to the other nodes' pod ranges, as flanneld (vxlan, host-gw) and calico (BIRD, Felix) program
    them; applied when they change, and a node's route removed when the node is gone."""

    def __init__(self) -> None:
        self.applied: dict[str, tuple[Peer, str]] = {}

    def sync(self, wanted: tuple[str, list[Peer]]) -> None:
        dev, peers = wanted
        want = {p.cidr: (p, dev) for p in peers}
        for cidr, (old, _) in list(self.applied.items()):
            if want.get(cidr, (None, ""))[0] != old:
                run_ip("ip", "route", "del", cidr)
                del self.applied[cidr]
        for cidr, (peer, d) in want.items():
            if cidr not in self.applied:
                for cmd in peer.commands(d):
                    run_ip(*cmd)
                self.applied[cidr] = (peer, d)


def same_subnet(local: str, dev: str, address: str) -> bool:
    cp = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", dev], capture_output=True, text=True, check=False)
    try:
        nets = [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
                for i in json.loads(cp.stdout or "[]") for a in i.get("addr_info", []) if a.get("local") == local]
    except (ValueError, KeyError):
        return False
    return any(ipaddress.ip_address(address) in n for n in nets)


def node_ip(node: dict[str, Any]) -> str:
    return next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), "")


def flannel_peers(c: Client, me: str, backend: str, direct: bool, dev: str, local: str) -> tuple[str, list[Peer]]:
    peers = []
    for n in c.get("/api/v1/nodes").get("items") or []:
        ann = n["metadata"].get("annotations") or {}
        cidr, address = (n.get("spec") or {}).get("podCIDR"), ann.get("flannel.alpha.coreos.com/public-ip")
        if n["metadata"]["name"] == me or not cidr or not address:
            continue
        if backend == "host-gw" or (direct and same_subnet(local, dev, address)):
            peers.append(Peer(cidr, address))
        elif backend == "vxlan":
            try:
                mac = str(json.loads(ann.get("flannel.alpha.coreos.com/backend-data") or "{}").get("VtepMAC") or "")
            except (ValueError, AttributeError):
                mac = ""
            if mac:
                peers.append(Peer(cidr, address, "flannel.1", mac))
    return dev, peers


def calico_blocks(pool: str, block_size: int, nodes: list[str]) -> dict[str, ipaddress.IPv4Network]:
    """Each node's block of the pool (calico's IPAM hands them out; here one per node, in name order)."""
    blocks = ipaddress.IPv4Network(pool).subnets(new_prefix=block_size)
    return {name: next(blocks) for name in sorted(nodes)}


def calico_peers(nodes: list[dict[str, Any]], blocks: dict[str, ipaddress.IPv4Network], me: str, mode: str,
                 cross_subnet: bool, dev: str, local: str) -> tuple[str, list[Peer]]:
    peers = []
    for n in nodes:
        name, address = n["metadata"]["name"], node_ip(n)
        if name == me or name not in blocks or not address:
            continue
        cidr = str(blocks[name])
        if mode == "direct" or (cross_subnet and same_subnet(local, dev, address)):
            peers.append(Peer(cidr, address))
        elif mode == "vxlan":
            mac = ((n["metadata"].get("annotations") or {}).get(VXLAN_MAC_ANNOTATION)) or ""
            if mac:
                peers.append(Peer(cidr, address, "vxlan.calico", mac))
        # IPIP: this kernel has no ipip tunnels, so there is no datapath to program (see the README)
    return dev, peers
