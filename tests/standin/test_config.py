"""Strict v1beta4 decoding, as kubeadm does it."""

from __future__ import annotations

import pytest
from kubeboot_standin import config

GOOD = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp1
  kubeletExtraArgs:
    - name: node-ip
      value: 10.0.0.1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
controllerManager:
  extraArgs:
    - name: node-cidr-mask-size
      value: "25"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""


def test_good_config_decodes() -> None:
    docs = config.split_documents(GOOD, strict=True)
    assert set(docs.docs) == {"InitConfiguration", "ClusterConfiguration"}
    assert "KubeletConfiguration" in docs.component
    cs = config.cluster_settings(docs.docs["ClusterConfiguration"], "v1.33.1")
    assert cs.pod_subnet == "10.244.0.0/16"
    assert cs.node_cidr_mask == 25
    assert cs.service_subnet == "10.96.0.0/12"


def test_unknown_field_is_an_error_when_strict_and_a_warning_otherwise() -> None:
    text = GOOD.replace("  podSubnet:", "  podSubnett:")
    with pytest.raises(config.ConfigError) as exc:
        config.split_documents(text, strict=True)
    assert str(exc.value) == (
        'error unmarshaling configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io", Version:"v1beta4", '
        'Kind:"ClusterConfiguration"}: strict decoding error: unknown field "networking.podSubnett"'
    )
    docs = config.split_documents(text, strict=False)
    assert any('unknown field "networking.podSubnett"' in w for w in docs.warnings)


def test_wrong_type_is_rejected() -> None:
    text = GOOD.replace("  name: cp1", "  name: [cp1]")
    with pytest.raises(config.ConfigError, match="cannot unmarshal array into Go struct field"):
        config.split_documents(text, strict=False)


def test_v1beta3_style_map_extra_args_rejected_in_v1beta4() -> None:
    text = GOOD.replace('    - name: node-cidr-mask-size\n      value: "25"', '    node-cidr-mask-size: "25"')
    with pytest.raises(config.ConfigError, match="cannot unmarshal object into Go struct field"):
        config.split_documents(text, strict=False)


def test_duplicate_key_rejected() -> None:
    text = GOOD.replace("  name: cp1\n", "  name: cp1\n  name: cp2\n")
    with pytest.raises(config.ConfigError, match='key "name" already set in map'):
        config.split_documents(text, strict=False)


def test_old_api_version_rejected() -> None:
    with pytest.raises(config.ConfigError, match="old API spec"):
        config.split_documents("apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n", strict=False)


def test_bad_duration_and_bad_subnet() -> None:
    with pytest.raises(config.ConfigError, match="invalid duration"):
        config.split_documents(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens: [{ttl: 1day}]\n",
            strict=False,
        )
    with pytest.raises(config.ConfigError, match="couldn't parse subnet"):
        config.cluster_settings({"networking": {"podSubnet": "10.244.0.0/33"}}, "v1.33.1")
