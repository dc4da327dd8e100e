#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the `slurm` tests (docs/cluster.md).
#   scripts/slurm-local.sh start DIR   munged (if none runs), slurmctld and slurmd with a config in DIR;
#                                      prints `export SLURM_CONF=DIR/slurm.conf` and waits until the node is idle
#   scripts/slurm-local.sh stop DIR    stops what `start` started, by the pids in DIR's pid files
# Needs root and Debian 12's slurm-wlm and munge (scripts/debian-packages.txt). Never touches /etc/slurm.
set -euo pipefail
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

stop_pidfile() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "$action" in
start)
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "slurm-local: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
  done
  mkdir -p "$dir"
  chmod 755 "$dir" # munged (as the munge user) keeps its pid file below it; mktemp -d makes it 0700
  dir=$(cd "$dir" && pwd)
  host=$(hostname -s)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  # munged: one per machine. Start it only when its socket does not answer, and remember that we did.
  if ! munge -n </dev/null >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    # munged runs as the munge user and writes its pid file there
    mkdir -p "$dir/munge"
    chown munge:munge "$dir/munge"
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=$dir/munge/munged.pid"
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null >/dev/null || { echo "slurm-local: munged did not start" >&2; exit 1; }
  fi
  cat > "$dir/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i
  slurmd
  for _ in $(seq 100); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$SLURM_CONF"
      exit 0
    fi
    sleep 0.2
  done
  echo "slurm-local: the node did not become idle within 20 s (logs in $dir/log)" >&2
  exit 1
  ;;
stop)
  [ -d "$dir" ] || exit 0
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  ;;
*) usage ;;
esac
