#!/usr/bin/env bash
# System packages ionflow uses: Quantum ESPRESSO (pw.x + pseudopotentials) for DFT labels and tests,
# SLURM + munge for the local-cluster tests. Installed with apt when running as root; otherwise we
# only report what is missing (the tests that need it are then skipped locally, and FAIL under CI=true).
# Never removes anything.
set -euo pipefail
PKGS=(quantum-espresso quantum-espresso-data)
[ "${IONFLOW_WITH_SLURM:-1}" = 1 ] && PKGS+=(slurm-wlm munge)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${PKGS[*]}"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || true
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "WARNING: missing system packages (not root, cannot apt-get install): ${missing[*]}" >&2
  echo "         tests that need them will be skipped (CI=true makes them fail)." >&2
fi
