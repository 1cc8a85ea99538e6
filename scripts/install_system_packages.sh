#!/usr/bin/env bash
# System packages ionflow uses: Quantum ESPRESSO (pw.x + pseudopotentials) for DFT labels and tests,
# g++ for nequip-compile (AOTInductor), SLURM + munge for the local-cluster tests. Installed with apt
# when running as root; otherwise we only report what is missing (the tests that need it are then
# skipped locally, and FAIL under CI=true). Never removes anything.
set -euo pipefail
QE_PKGS=(quantum-espresso quantum-espresso-data g++)
SLURM_PKGS=()
[ "${IONFLOW_WITH_SLURM:-1}" = 1 ] && SLURM_PKGS=(slurm-wlm munge)

missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing_qe < <(missing_of "${QE_PKGS[@]}")
mapfile -t missing_slurm < <(missing_of "${SLURM_PKGS[@]}")
if [ ${#missing_qe[@]} -eq 0 ] && [ ${#missing_slurm[@]} -eq 0 ]; then
  echo "system packages present: ${QE_PKGS[*]} ${SLURM_PKGS[*]}"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || true
  if [ ${#missing_qe[@]} -gt 0 ]; then
    echo "installing: ${missing_qe[*]}"
    apt-get install -y -q "${missing_qe[@]}" >/dev/null
  fi
  if [ ${#missing_slurm[@]} -gt 0 ]; then   # as tested in scripts/slurm/start_local_slurm.sh
    echo "installing: ${missing_slurm[*]}"
    apt-get install -y -q --no-install-recommends "${missing_slurm[@]}" >/dev/null
  fi
else
  echo "WARNING: missing system packages (not root, cannot apt-get install): ${missing_qe[*]} ${missing_slurm[*]}" >&2
  echo "         tests that need them will be skipped (CI=true makes them fail)." >&2
fi
