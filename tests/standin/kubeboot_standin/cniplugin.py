"""The pod network's own CNI plugins, `flannel` and `calico`, which Debian's containernetworking-plugins lack.

Each does what the real plugin does on the way to the real plugins that set up the pod:
- flannel (flannel-io/cni-plugin): reads /run/flannel/subnet.env, builds the delegate configuration (the bridge
  plugin with host-local IPAM over this node's subnet), keeps it in /var/lib/cni/flannel/<container id> for the
  DEL, and runs the delegate; a delegate error comes back as `failed to delegate add: <the delegate's message>`.
- calico: gives the pod a veth with a /32 route on the host side through the ptp plugin, with host-local IPAM over
  this node's block (written by the stand-in's calico-node, /var/lib/calico/kubeboot-standin-block); calico-ipam
  and the Felix datapath stay out.

The agent (cni.Agent, the DaemonSet pods' work) installs them in /opt/cni/bin as small scripts running this module
through the kubelet binary (`kubelet --standin-cni=flannel`), as the DaemonSets' install-cni containers copy theirs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SUPPORTED = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
CALICO_BLOCK_FILE = "/var/lib/calico/kubeboot-standin-block"


class PluginError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def find_plugin(name: str) -> Path:
    for directory in os.environ.get("CNI_PATH", "/opt/cni/bin").split(os.pathsep):
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    raise PluginError(4, f'failed to find plugin "{name}" in path [{os.environ.get("CNI_PATH", "")}]')


def delegate(conf: dict[str, Any], command: str) -> str:
    """Run the delegate plugin with the same CNI_* environment; its stdout on success, PluginError otherwise."""
    plugin = find_plugin(str(conf.get("type")))
    env = {**os.environ, "CNI_COMMAND": command}
    cp = subprocess.run([str(plugin)], input=json.dumps(conf), capture_output=True, text=True, env=env,
                        check=False)
    if cp.returncode != 0:
        try:
            err = json.loads(cp.stdout)
            raise PluginError(int(err.get("code", 999)), str(err.get("msg", "")), str(err.get("details", "")))
        except ValueError:
            raise PluginError(999, (cp.stdout or cp.stderr).strip()) from None
    return cp.stdout


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def flannel_delegate(conf: dict[str, Any]) -> dict[str, Any]:
    subnet_file = Path(str(conf.get("subnetFile") or "/run/flannel/subnet.env"))
    try:
        env = read_env_file(subnet_file)
    except OSError as exc:
        raise PluginError(999, f"failed to load flannel 'subnet.env' file: open {subnet_file}: "
                               f"{os.strerror(exc.errno or 2).lower()}. Check the flannel pod log for this "
                               "node.") from None
    out = dict(conf.get("delegate") or {})
    out.setdefault("name", conf.get("name"))
    out.setdefault("type", "bridge")
    out["cniVersion"] = conf.get("cniVersion", "0.3.1")
    if out["type"] == "bridge":
        out.setdefault("isGateway", True)
        out.setdefault("ipMasq", env.get("FLANNEL_IPMASQ") != "true")
    if env.get("FLANNEL_MTU"):
        out.setdefault("mtu", int(env["FLANNEL_MTU"]))
    routes = [] if out.get("isDefaultGateway") else [{"dst": env.get("FLANNEL_NETWORK", "")}]
    try:
        subnet = str(ipaddress.ip_interface(env.get("FLANNEL_SUBNET", "")).network)
    except ValueError:
        raise PluginError(999, f"invalid FLANNEL_SUBNET in {subnet_file}: {env.get('FLANNEL_SUBNET', '')!r}") from None
    out["ipam"] = {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": routes}
    if "runtimeConfig" in conf:
        out["runtimeConfig"] = conf["runtimeConfig"]
    return out


def flannel(conf: dict[str, Any], command: str) -> str:
    data_dir = Path(str(conf.get("dataDir") or "/var/lib/cni/flannel"))
    saved = data_dir / os.environ.get("CNI_CONTAINERID", "")
    if command == "ADD":
        dconf = flannel_delegate(conf)
        data_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(dconf))
        try:
            return delegate(dconf, "ADD")
        except PluginError as exc:
            raise PluginError(exc.code, f"failed to delegate add: {exc.msg}", exc.details) from None
    if command == "DEL":
        try:
            dconf = json.loads(saved.read_text())
        except (OSError, ValueError):
            return ""  # nothing was set up, or it is gone already: DEL succeeds
        try:
            delegate(dconf, "DEL")
        except PluginError as exc:
            raise PluginError(exc.code, f"failed to delegate del: {exc.msg}", exc.details) from None
        saved.unlink(missing_ok=True)
        return ""
    if command == "CHECK" and saved.exists():
        delegate(json.loads(saved.read_text()), "CHECK")
    return ""


def calico(conf: dict[str, Any], command: str) -> str:
    try:
        block = Path(CALICO_BLOCK_FILE).read_text().strip()
    except OSError:
        if command == "DEL":
            return ""  # calico-node is gone with what it set up
        raise PluginError(999, "stat /var/lib/calico/nodename: no such file or directory: check that the "
                               "calico/node container is running and has mounted /var/lib/calico/") from None
    dconf = {
        "cniVersion": conf.get("cniVersion", "0.3.1"), "name": conf.get("name", "k8s-pod-network"), "type": "ptp",
        "mtu": int(str(conf.get("mtu") or 1440)),
        "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/networks", "ranges": [[{"subnet": block}]]},
    }
    return delegate(dconf, command) if command in ("ADD", "DEL", "CHECK") else ""


def main(kind: str) -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}))
        return 0
    conf: dict[str, Any] = {}
    try:
        conf = json.loads(sys.stdin.read() or "{}")
        out = (flannel if kind == "flannel" else calico)(conf, command)
    except PluginError as exc:
        error = {"cniVersion": conf.get("cniVersion", "0.3.1"), "code": exc.code, "msg": exc.msg}
        if exc.details:
            error["details"] = exc.details
        print(json.dumps(error))
        return 1
    except ValueError as exc:
        print(json.dumps({"cniVersion": "0.3.1", "code": 6, "msg": f"failed to parse network configuration: {exc}"}))
        return 1
    if out:
        sys.stdout.write(out)
    return 0


def launcher(kind: str, kubelet: str) -> str:
    """The script installed as /opt/cni/bin/<kind>."""
    return (f"#!/bin/sh\n# {kind} CNI plugin of the Kubernetes stand-in\n"
            f"exec /usr/bin/python3 {kubelet} --standin-cni={kind}\n")
