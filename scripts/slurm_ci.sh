#!/usr/bin/env bash
# CI: what the Slurm backend's tests need (tests/test_slurm.py), installed before the
# tests run. Best effort and quiet: where apt cannot install Debian's slurm-wlm and munge,
# the Slurm tests skip with the reason. Idempotent and fast once installed (no apt-get
# update then). The tests start and stop the cluster themselves (scripts/slurm_local.sh).
set -uo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
       apt-get install -y -qq --no-install-recommends slurm-wlm munge) >/dev/null 2>&1 \
      || echo "warning: could not install slurm-wlm and munge; the Slurm tests will skip"
  else
    echo "warning: no apt-get: the Slurm tests will skip"
  fi
fi

python -c "import submitit" 2>/dev/null || pip install -q submitit \
  || echo "warning: could not install submitit; the Slurm tests will skip"
exit 0
