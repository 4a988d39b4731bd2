"""Filters that build the pod network manifests; the logic lives in kubeboot.cni."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from kubeboot import cni


def _filter_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except cni.CniError as exc:
            raise AnsibleFilterError(str(exc)) from exc

    return wrapped


class FilterModule:
    """kubeboot pod network filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_flannel_manifest": _filter_errors(cni.flannel_manifest),
            "kubeboot_manifest_mirror": _filter_errors(cni.manifest_with_mirror),
        }
