"""Action plugin: after the nic_rename role's change, read the host once and say what does not match the plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

try:
    from kubeboot import nic
    from kubeboot.discover.gather import split_sections
    from kubeboot.public_nic import OutputError
except ImportError:  # running from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from kubeboot import nic
    from kubeboot.discover.gather import split_sections
    from kubeboot.public_nic import OutputError

DOCUMENTATION = """
    name: kubeboot_nic_verify
    short_description: Check a host's NICs against the plan of kubeboot_nic_plan after the rename
    description:
      - Reads C(ip -d -j address show) and C(ip -j -4 route show default) in one command and checks that each new
        name carries its MAC and the addresses it had under its old name, and that every IPv4 default route is still
        there (through the renamed interface). Returns the problems found (empty when all is right); it does not fail
        on them, so that the role can revert first. Changes nothing.
    options:
      plan: {description: The result of kubeboot_nic_plan for this host., type: dict, required: true}
"""

RETURN = """
    problems: {description: One line per thing that is wrong; empty when the host matches the plan., type: list}
"""

SCRIPT = ("LC_ALL=C; export LC_ALL; PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH; "
          "printf '@@kubeboot addr@@\\n'; ip -d -j address show; "
          "printf '\\n@@kubeboot route4@@\\n'; ip -j -4 route show default; printf '\\n@@kubeboot end@@\\n'")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec={"plan": {"type": "dict", "required": True}})
        plan = args["plan"]
        host = str((task_vars or {}).get("inventory_hostname", "host"))
        read = self._low_level_execute_command(SCRIPT, sudoable=True)
        sections = split_sections(str(read.get("stdout", "")))
        result["changed"] = False
        if read.get("rc") != 0 or "end" not in sections:
            return {**result, "failed": True,
                    "msg": f"{host}: reading the NICs failed (rc {read.get('rc')}): {nic.last_words(read)}"}
        try:
            problems = nic.verify(host, renames=plan["renames"], addresses_before=plan["before"]["addresses"],
                                  routes_before=plan["before"]["routes"], addresses_after=sections["addr"],
                                  routes_after=sections["route4"])
        except (OutputError, KeyError, TypeError) as exc:
            return {**result, "failed": True, "msg": f"{host}: cannot check the NICs against the plan: {exc}"}
        result["problems"] = problems
        result["msg"] = "; ".join(problems) or f"{host}: every name, MAC, address and default route is right"
        return result
