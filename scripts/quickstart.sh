#!/usr/bin/env bash
# Install what is needed, bring up a local sandbox cluster (1 control plane, 2 workers) and run site.yml on it.
# Remove it again with: .venv/bin/kubeboot sandbox down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# --standin serves the offline stand-in of the Kubernetes packages (tests/standin): this machine has no pkgs.k8s.io.
kubeboot sandbox up --layout "${KUBEBOOT_LAYOUT:-1cp2w}" --standin
ansible-playbook -i inventory/sandbox/hosts.yml site.yml
kubeboot sandbox status
