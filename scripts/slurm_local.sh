#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm + munge) for the Slurm backend's tests.
#
#   scripts/slurm_local.sh start   # prints the slurm.conf path (export SLURM_CONF=...)
#   scripts/slurm_local.sh stop    # cancels its jobs, stops what `start` started
#
# Rules: run as root; state, spool, logs and pid files live in $SLURM_LOCAL_DIR (default
# /tmp/warmup-bench-slurm). `start` reuses a cluster that already answers with this conf;
# `stop` kills only the daemons whose pid files `start` wrote (munged only if `start`
# launched it). Exit 3: slurm-wlm or munge is not installed (scripts/slurm_ci.sh installs
# them); exit 1: it could not start (the daemons' logs are named).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/warmup-bench-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

say() { echo "slurm_local: $*" >&2; }

node_idle() {  # the one node answers and takes jobs
  local state
  state=$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1) || return 1
  [[ $state == idle* || $state == mix* || $state == alloc* ]]
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

start_munge() {
  if timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
    return 0  # a munged already answers (the system's, or one started earlier)
  fi
  mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1
    else create-munge-key -f >/dev/null 2>&1; fi
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
  chmod 0700 /etc/munge && chmod 0600 /etc/munge/munge.key && chmod 0755 /run/munge
  runuser -u munge -- munged --force --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do
    if timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
      cp /run/munge/munged.pid "$DIR/munged.pid"  # ours to stop
      return 0
    fi
    sleep 0.1
  done
  say "munged does not answer (see /var/log/munge/munged.log)"; return 1
}

write_conf() {
  local host mem
  host=$(hostname -s)
  # a node claiming more memory than slurmd finds is drained: claim 80% of it
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat > "$CONF" <<EOF
ClusterName=warmupbench
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# sbatch refuses (instead of leaving pending) a time limit over the partition's MaxTime
EnforcePartLimits=ALL
# short waits keep the tests short: SIGTERM -> SIGKILL, and a requeued job's restart
KillWait=15
MinJobAge=120
SchedulerParameters=bf_interval=5,sched_interval=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=60 State=UP
EOF
}

start() {
  for tool in slurmctld slurmd sinfo sbatch squeue munged munge; do
    command -v "$tool" >/dev/null || { say "$tool not found: apt-get install slurm-wlm munge"
                                       exit 3; }
  done
  mkdir -p "$DIR"
  if [[ -f $CONF ]] && node_idle; then echo "$CONF"; return 0; fi  # already up: reuse
  stop_daemons
  start_munge
  write_conf
  slurmctld -c -f "$CONF"  # -c: forget the jobs of an earlier cluster in this folder
  slurmd -f "$CONF"
  for _ in $(seq 150); do
    node_idle && { echo "$CONF"; return 0; }
    sleep 0.2
  done
  say "the node never became idle; see $DIR/log/slurmctld.log and $DIR/log/slurmd.log"
  exit 1
}

stop_daemons() {
  for name in slurmd slurmctld; do
    if pid_alive "$DIR/$name.pid"; then
      kill "$(cat "$DIR/$name.pid" 2>/dev/null)" 2>/dev/null || true
      for _ in $(seq 50); do pid_alive "$DIR/$name.pid" || break; sleep 0.1; done
    fi
    rm -f "$DIR/$name.pid"
  done
}

stop() {
  [[ -f $CONF ]] || return 0
  if node_idle; then  # cancel what still runs, so no slurmstepd outlives the cluster
    scancel --full --quiet --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do
      [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop_daemons
  if pid_alive "$DIR/munged.pid"; then kill "$(cat "$DIR/munged.pid" 2>/dev/null)" 2>/dev/null || true; fi
  rm -f "$DIR/munged.pid"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
