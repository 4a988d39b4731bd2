"""Running the project's Ansible modules in-process: loaded from plugins/modules, with AnsibleModule's commands,
binaries and exits replaced, so a test sees the exact commands a module runs and what it returns."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Collection
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from tests.conftest import REPO


class Exit(Exception):
    """exit_json was called: its keyword arguments are args[0]."""


def load_module(name: str) -> Any:
    """plugins/modules/<name>.py as a Python module."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", REPO / "plugins/modules" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(monkeypatch: pytest.MonkeyPatch, module: Any, args: dict[str, Any],
             run_command: Callable[..., tuple[int, str, str]], bins: Collection[str], bin_dir: str,
             check_mode: bool = False) -> dict[str, Any]:
    """module.main() with args; commands go to run_command(self, cmd, **kwargs), binaries in bins are found in
    bin_dir; returns what it exits with (a fail_json fails the test)."""

    def exit_json(self: Any, **kw: Any) -> None:
        raise Exit(kw)

    def fail_json(self: Any, **kw: Any) -> None:
        raise AssertionError(kw)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: (
        f"{bin_dir}/{name}" if name in bins else None))
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with patch_module_args({**args, "_ansible_check_mode": check_mode}), pytest.raises(Exit) as exc:
        module.main()
    result: dict[str, Any] = exc.value.args[0]
    return result
