#!/usr/bin/python
"""Ansible module: remove the netfilter and IPVS state kube-proxy and the pod network left on a node."""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.kubeboot_netreset import (
        our_ipvs_services,
        our_nft_tables,
        parse_ipvs,
        parse_nft_tables,
        parse_save,
        plan_tables,
        render_full_flush,
        render_restore,
        summary,
    )
except ImportError:  # run from the source tree (unit tests)
    from kubeboot.netreset import (
        our_ipvs_services,
        our_nft_tables,
        parse_ipvs,
        parse_nft_tables,
        parse_save,
        plan_tables,
        render_full_flush,
        render_restore,
        summary,
    )

DOCUMENTATION = r"""
---
module: kubeboot_netfilter_reset
short_description: Remove the iptables, nftables and IPVS state of kube-proxy and the pod network
description:
  - Removes the iptables and ip6tables chains kube-proxy, the kubelet, flannel, calico and the CNI plugins make
    (C(KUBE-*), C(FLANNEL*), C(cali-*), C(CNI-*)) with the rules of other chains that jump to them or that flanneld
    or calico put there directly; every other rule and chain stays.
  - Deletes the nftables tables C(kube-proxy) and C(calico) (any family) and the IPVS virtual services of
    kube-proxy (address on O(ipvs_interface) or in O(service_subnets), or port in O(nodeport_range)).
  - Handles the nft and the legacy iptables backends when both are installed.
  - With O(full_flush), empties every iptables table and clears IPVS instead (the operator's rules go too).
  - Reports changed only when something was (or in check mode would be) removed.
options:
  full_flush:
    description: Flush every iptables/ip6tables table and clear every IPVS service, not only the Kubernetes ones.
    type: bool
    default: false
  service_subnets:
    description: Service networks; IPVS virtual services with an address in them are kube-proxy's.
    type: list
    elements: str
    default: []
  nodeport_range:
    description: NodePort range (kube-apiserver --service-node-port-range); IPVS services on its ports are kube-proxy's.
    type: str
    default: 30000-32767
  ipvs_interface:
    description: The dummy interface kube-proxy binds service addresses to in ipvs mode.
    type: str
    default: kube-ipvs0
  nft_tables:
    description: Names of the nftables tables to delete (every family).
    type: list
    elements: str
    default: [kube-proxy, calico]
author: kubeboot
"""

EXAMPLES = r"""
- name: Remove what kube-proxy and the CNI left in netfilter and IPVS
  kubeboot_netfilter_reset:
    service_subnets: [10.96.0.0/12]
"""

RETURN = r"""
iptables:
  description: Per backend command (iptables-nft, ip6tables-legacy, ...) and table, the chains and rules removed.
  returned: always
  type: dict
nftables:
  description: The nftables tables deleted, as "family name".
  returned: always
  type: list
ipvs:
  description: The IPVS virtual services deleted, as "flag address".
  returned: always
  type: list
"""

ENV = {"LC_ALL": "C"}
# (save, restore) per backend: both backends when both are installed, else the distribution's default command.
FAMILIES = (("iptables", ("iptables-nft", "iptables-legacy")), ("ip6tables", ("ip6tables-nft", "ip6tables-legacy")))


def backends(module: AnsibleModule) -> list[tuple[str, str, str]]:
    """(name, save binary, restore binary) of every iptables backend installed."""
    found = []
    for default, variants in FAMILIES:
        pairs = [(v, module.get_bin_path(f"{v}-save"), module.get_bin_path(f"{v}-restore")) for v in variants]
        usable = [(n, s, r) for n, s, r in pairs if s and r]
        if not usable:
            save, restore = module.get_bin_path(f"{default}-save"), module.get_bin_path(f"{default}-restore")
            usable = [(default, save, restore)] if save and restore else []
        found += [(n, str(s), str(r)) for n, s, r in usable]
    return found


def run(module: AnsibleModule, args: list[str], data: str | None = None) -> str:
    rc, out, err = module.run_command(args, data=data, binary_data=data is not None, environ_update=ENV)
    if rc != 0:
        module.fail_json(msg=f"{' '.join(args)} failed (rc {rc}): {err.strip() or out.strip()}", rc=rc, stdin=data)
    return str(out)


def reset_iptables(module: AnsibleModule, full: bool) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for name, save, restore in backends(module):
        plans = plan_tables(parse_save(run(module, [save])), full_flush=full)
        if not plans:
            continue
        done[name] = summary(plans)
        if module.check_mode:
            continue
        if full:
            run(module, [restore, "-w", "5"], render_full_flush(plans))
        else:
            run(module, [restore, "-w", "5", "--noflush"], render_restore(plans))
    return done


def reset_nftables(module: AnsibleModule, names: list[str]) -> list[str]:
    nft = module.get_bin_path("nft")
    if not nft:
        return []
    tables = our_nft_tables(parse_nft_tables(run(module, [nft, "list", "tables"])), tuple(names))
    for family, name in tables:
        if not module.check_mode:
            run(module, [nft, "delete", "table", family, name])
    return [f"{family} {name}" for family, name in tables]


def interface_addresses(module: AnsibleModule, interface: str) -> list[str]:
    ip = module.get_bin_path("ip")
    if not ip:
        return []
    rc, out, _ = module.run_command([ip, "-j", "addr", "show", "dev", interface], environ_update=ENV)
    if rc != 0:
        return []
    try:
        return [str(a["local"]) for link in json.loads(out or "[]") for a in link.get("addr_info", []) if "local" in a]
    except (ValueError, TypeError, KeyError):
        return []


def reset_ipvs(module: AnsibleModule, full: bool) -> list[str]:
    ipvsadm = module.get_bin_path("ipvsadm")
    if not ipvsadm:
        return []
    rc, out, _ = module.run_command([ipvsadm, "-Sn"], environ_update=ENV)
    if rc != 0:  # no IPVS in this kernel: nothing to remove
        return []
    services = parse_ipvs(out)
    if full:
        if services and not module.check_mode:
            run(module, [ipvsadm, "--clear"])
        return [f"{s.flag} {s.address}" for s in services]
    p = module.params
    ours = our_ipvs_services(
        services, interface_addresses(module, p["ipvs_interface"]), p["service_subnets"], p["nodeport_range"]
    )
    for service in ours:
        if not module.check_mode:
            run(module, [ipvsadm, "--delete-service", service.flag, service.address])
    return [f"{s.flag} {s.address}" for s in ours]


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "full_flush": {"type": "bool", "default": False},
            "service_subnets": {"type": "list", "elements": "str", "default": []},
            "nodeport_range": {"type": "str", "default": "30000-32767"},
            "ipvs_interface": {"type": "str", "default": "kube-ipvs0"},
            "nft_tables": {"type": "list", "elements": "str", "default": ["kube-proxy", "calico"]},
        },
        supports_check_mode=True,
    )
    full = bool(module.params["full_flush"])
    # IPVS first: kube-ipvs0's addresses say which services are kube-proxy's.
    ipvs = reset_ipvs(module, full)
    nftables = reset_nftables(module, module.params["nft_tables"])
    iptables = reset_iptables(module, full)
    module.exit_json(changed=bool(ipvs or nftables or iptables), iptables=iptables, nftables=nftables, ipvs=ipvs)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
