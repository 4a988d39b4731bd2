"""`kubeboot validate` and `kubeboot plan`: check an inventory against the contract and show the derived plan."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubeboot.inventory.plan import make_plan
from kubeboot.inventory.validate import has_errors, validate_sources


def register(subparsers: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-i", "--inventory", action="append", required=True, metavar="INVENTORY",
                       help="inventory file or directory, as for ansible-playbook (repeatable)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    validate = subparsers.add_parser(
        "validate", help="check an inventory before site.yml touches any host",
        description="Read the inventory as Ansible does and print one line per problem. Exit 2 on any error, "
                    "0 otherwise (warnings are printed).",
    )
    common(validate)
    validate.set_defaults(func=_validate)

    plan = subparsers.add_parser(
        "plan", help="show the cluster an inventory describes: ranges, DNS address, endpoint, nodes",
        description="Show the derived plan as a table; problems are printed first (exit 2 on any error).",
    )
    common(plan)
    plan.set_defaults(func=_plan)


def _validate(args: argparse.Namespace) -> int:
    _, findings = validate_sources(args.inventory)
    failed = has_errors(findings)
    if args.json:
        print(json.dumps({"ok": not failed, "findings": [f.as_dict() for f in findings]}, indent=2, default=str))
    else:
        for finding in findings:
            print(finding.line(), file=sys.stderr if finding.level == "error" else sys.stdout)
        errors = sum(f.level == "error" for f in findings)
        warnings = len(findings) - errors
        print(f"{', '.join(args.inventory)}: {errors} error(s), {warnings} warning(s)")
    return 2 if failed else 0


def _plan(args: argparse.Namespace) -> int:
    inventory, findings = validate_sources(args.inventory)
    plan = make_plan(inventory)
    failed = has_errors(findings)
    if args.json:
        print(json.dumps({"ok": not failed, "plan": plan.as_dict(), "findings": [f.as_dict() for f in findings]},
                         indent=2, default=str))
    else:
        for finding in findings:
            print(finding.line(), file=sys.stderr if finding.level == "error" else sys.stdout)
        print(plan.table())
    return 2 if failed else 0
