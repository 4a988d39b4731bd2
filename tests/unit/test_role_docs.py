"""Every role documents its inputs: meta/argument_specs.yml, defaults/main.yml and the README table agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


def readme_table(role: Path) -> dict[str, str]:
    """Variable -> default as written in the README's table rows: | `name` | `default` | meaning |."""
    rows = {}
    for line in (role / "README.md").read_text().splitlines():
        match = re.match(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*(.*?)\s*\|", line)
        if match:
            rows[match[1]] = match[2].strip("`")
    return rows


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_specs_defaults_and_readme_agree(role: Path) -> None:
    specs: dict[str, Any] = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    defaults: dict[str, Any] = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    table = readme_table(role)
    assert set(options) == set(defaults), f"{role.name}: argument_specs and defaults name different variables"
    assert set(table) == set(defaults), f"{role.name}: README table and defaults name different variables"
    for name, value in defaults.items():
        assert name.startswith(f"{role.name}_"), f"{name} is not prefixed with the role name {role.name}_"
        if "default" in options[name]:
            assert options[name]["default"] == value, f"{role.name}: {name} default differs from argument_specs"
        shown = table[name]
        if isinstance(value, (str, int, bool)) and "{{" not in str(value) and len(str(value)) < 60:
            expected = str(value).lower() if isinstance(value, bool) else str(value)
            assert shown == expected or shown == f'"{expected}"', f"{role.name}: README shows {shown!r} for {name}"
