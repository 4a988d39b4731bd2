"""Filters of the nic_rename role: choosing the public NIC and rendering the files; the logic is kubeboot.nic."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from kubeboot import nic


def _plan(addresses: Any, *, host: str, routes: Any, target: str, mac: str = "", ansible_host: str = "",
          spare_prefix: str = "kbspare") -> dict[str, Any]:
    """`ip -d -j address show` output | kubeboot_nic_plan(...): the plan, or {"error": line} when refused."""
    try:
        return nic.plan_from_output(host, addresses, routes, target=target, mac=mac or "",
                                    ansible_host=ansible_host or "", spare_prefix=spare_prefix)
    except (ValueError, KeyError, TypeError) as error:
        raise AnsibleFilterError(f"kubeboot_nic_plan: cannot read the output of `ip -j`: {error}") from error


def _contents(slurped: list[dict[str, Any]]) -> dict[str, str]:
    files = {}
    for result in slurped:
        if "content" not in result:
            raise AnsibleFilterError(f"kubeboot_nic: no content read from {result.get('item')!r}")
        files[str(result["source"])] = base64.b64decode(result["content"]).decode("utf-8", errors="surrogateescape")
    return files


def _rewrites(slurped: list[dict[str, Any]], mapping: dict[str, str]) -> list[dict[str, Any]]:
    """The results of a slurp loop | kubeboot_nic_rewrites(mapping): the configuration files to rewrite."""
    return nic.rewrite_configs(_contents(slurped), mapping)


def _stale_pins(slurped: list[dict[str, Any]], pins: list[dict[str, str]]) -> list[str]:
    """The results of a slurp loop | kubeboot_nic_stale_pins(pins): earlier pinning files the new pins contradict."""
    return nic.stale_pins(_contents(slurped), pins)


def _writes(rewrites: list[dict[str, Any]], pinned_now: list[dict[str, Any]], modes: dict[str, str]
            ) -> list[dict[str, Any]]:
    """Rewrites | kubeboot_nic_writes(slurp results of the pinning files, modes): every file to write, {path, content,
    mode}; a pinning file whose content is already right is left out."""
    writes = []
    for result in pinned_now:
        item = result["item"]
        current = base64.b64decode(result["content"]).decode("utf-8", errors="replace") if "content" in result else None
        if current != item["content"]:
            writes.append({"path": item["path"], "content": item["content"], "mode": "0644"})
    writes += [{"path": c["dest"], "content": c["content"], "mode": modes.get(c["path"], "0644")} for c in rewrites]
    return writes


def _verify(addresses_after: Any, *, host: str, renames: list[dict[str, str]], addresses_before: Any,
            routes_before: Any, routes_after: Any) -> list[str]:
    """Output of `ip -d -j address show` after the change | kubeboot_nic_verify(...): what is wrong (empty: right)."""
    return nic.verify(host, renames=renames, addresses_before=addresses_before, routes_before=routes_before,
                      addresses_after=addresses_after, routes_after=routes_after)


class FilterModule:
    """kubeboot NIC naming filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "kubeboot_nic_plan": _plan,
            "kubeboot_nic_rewrites": _rewrites,
            "kubeboot_nic_config_paths": lambda paths: [
                p for p in paths if nic.stack_of(str(p)) or nic.PIN_FILE.match(str(p))],
            "kubeboot_nic_stale_pins": _stale_pins,
            "kubeboot_nic_pinned_files": lambda pins, udev_rule=False, cloud_init=False: nic.pinned_files(
                pins, udev_rule=udev_rule, cloud_init=cloud_init),
            "kubeboot_nic_writes": _writes,
            "kubeboot_nic_verify": _verify,
        }
