"""The configurations of the API endpoint's roles (haproxy, keepalived) as they are rendered, and the VIP in the
API server certificate's SANs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from tests.unit.test_cluster_render import kubeadm_init_vars, render, strict_decode

REPO = Path(__file__).resolve().parents[2]
CONTROL_PLANES = [{"name": "cp1", "address": "10.213.53.11"}, {"name": "cp2", "address": "10.213.53.12"},
                  {"name": "cp3", "address": "10.213.53.13"}]


def role_render(role: str, template: str, **over: Any) -> str:
    values = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text())
    values.update(ansible_managed="Ansible managed", inventory_hostname="cp2", **over)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "roles" / role / "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["quote"] = shlex.quote
    return env.get_template(template).render(**values)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_haproxy_balances_to_every_api_server_with_tls_readyz_checks() -> None:
    text = role_render("haproxy", "haproxy.cfg.j2", haproxy_backends=CONTROL_PLANES,
                       haproxy_bind_addresses=["10.213.53.100", "127.0.0.1"])
    config = lines(text)
    assert "mode tcp" in config
    assert config.index("frontend kube_apiserver") < config.index("bind 10.213.53.100:8443 transparent") \
        < config.index("bind 127.0.0.1:8443") < config.index("backend kube_apiserver")
    backend = config[config.index("backend kube_apiserver"):]
    assert "option httpchk GET /readyz" in backend and "http-check expect status 200" in backend
    assert [line for line in backend if line.startswith("server ")] == [
        f"server {cp['name']} {cp['address']}:6443 check check-ssl verify none" for cp in CONTROL_PLANES]
    assert "default-server inter 2s fall 2 rise 2 on-marked-down shutdown-sessions" in backend
    for timeout in ("client", "server", "tunnel"):
        assert f"timeout {timeout} 4h" in config
    # seamless reloads: the listening sockets are handed to the new workers
    assert any("expose-fd listeners" in line for line in config)


def test_keepalived_multicast_backup_nopreempt() -> None:
    text = role_render("keepalived", "keepalived.conf.j2", keepalived_vip="10.213.53.100", keepalived_router_id=100,
                       keepalived_priority=199)
    config = lines(text)
    instance = config[config.index("vrrp_instance kubeboot_api {"):]
    assert {"state BACKUP", "nopreempt", "interface eth0", "virtual_router_id 100", "priority 199",
            "advert_int 0.50", "10.213.53.100/32 dev eth0", "kubeboot_api"} <= set(instance)
    assert "vrrp_version 3" in config[config.index("global_defs {"):config.index("vrrp_script kubeboot_api {")]
    assert not any(line.startswith("unicast") for line in config)
    assert 'script "/usr/local/sbin/kubeboot-vip-check"' in config
    assert "enable_script_security" in config
    assert text.count("{") == text.count("}")


def test_keepalived_unicast_peers() -> None:
    text = role_render("keepalived", "keepalived.conf.j2", keepalived_vip="10.213.53.100", keepalived_unicast=True,
                       keepalived_unicast_source="10.213.53.12",
                       keepalived_unicast_peers=["10.213.53.11", "10.213.53.13"])
    config = lines(text)
    start = config.index("unicast_peer {")
    assert config[start - 1] == "unicast_src_ip 10.213.53.12"
    assert config[start + 1:start + 4] == ["10.213.53.11", "10.213.53.13", "}"]
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize(("interval", "shown"), [(0.5, "0.50"), ("0.3", "0.30"), (1, "1.00"), (0.07, "0.07"),
                                                  (40.95, "40.95")])
def test_keepalived_vrrp3_advert_interval_in_centiseconds(interval: Any, shown: str) -> None:
    """Every node gets the same VRRPv3 interval as keepalived reads it (seconds with two decimals; an integer
    advert_int would be 0 for 0.5 s)."""
    config = lines(role_render("keepalived", "keepalived.conf.j2", keepalived_vip="10.213.53.100",
                               keepalived_advert_interval=interval))
    assert [line for line in config if line.startswith("advert_int")] == [f"advert_int {shown}"]
    assert config.count("vrrp_version 3") == 1


def test_keepalived_unicast_with_vrrp3() -> None:
    config = lines(role_render("keepalived", "keepalived.conf.j2", keepalived_vip="10.213.53.100",
                               keepalived_unicast=True, keepalived_unicast_source="10.213.53.12",
                               keepalived_unicast_peers=["10.213.53.11"], keepalived_advert_interval=0.25))
    assert {"vrrp_version 3", "advert_int 0.25", "unicast_src_ip 10.213.53.12"} <= set(config)


def test_the_playbook_maps_the_advert_interval_onto_the_role() -> None:
    plays = yaml.safe_load((REPO / "playbooks/api_endpoint.yml").read_text())
    roles = [r for play in plays for r in play.get("roles", []) if r["role"] == "keepalived"]
    assert [r["vars"]["keepalived_advert_interval"] for r in roles] == [
        "{{ kube_control_plane_vip_advert_interval }}"]


def test_vip_check_script() -> None:
    text = role_render("keepalived", "kubeboot-vip-check.sh.j2", keepalived_check_address="10.213.53.12",
                       keepalived_check_port=6443, keepalived_check_haproxy_port=8443)
    assert text.startswith("#!/bin/bash\n")
    assert "/dev/tcp/127.0.0.1/8443" in text
    assert "[ ! -e /etc/kubernetes/manifests/kube-apiserver.yaml ]" in text
    assert re.search(r"curl .*--fail --insecure .*\\\n\s+https://10\.213\.53\.12:6443/readyz", text)


def test_the_vip_is_the_control_plane_endpoint() -> None:
    """kubeadm puts the endpoint's host (the VIP) in the API server certificate's SANs itself."""
    cluster = strict_decode(render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars(
        kubeadm_init_control_plane_endpoint="10.213.53.100:8443"))).docs["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "10.213.53.100:8443"
