#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (slurmctld + slurmd + munge as
# plain daemons), for testing jobs/ for real. Root only; Debian packages.
#
#   bash tools/slurm-local.sh start   # install if missing, start, wait until idle
#   bash tools/slurm-local.sh stop    # stop our daemons and remove their state
#
# The node advertises 4 CPUs on 2 cores (SlurmdParameters=config_overrides) so
# jobs can ask for 4 tasks; MpiDefault=pmix; short credential expiry so a
# requeued job restarts within ~30 s. See shared notes on Slurm for the facts.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "slurm-local: must run as root" >&2; exit 2; }
cmd=${1:-start}
pidfiles=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)

stop() {
  for pf in "${pidfiles[@]}"; do
    if [ -s "$pf" ]; then
      pid=$(cat "$pf")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  done
  rm -rf /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm/slurm.conf
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-local: installing slurmctld slurmd slurm-client munge"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
  stop
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key;
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  host=$(hostname -s)
  mem=$(( $(free -m | awk '/^Mem:/{print $2}') * 9 / 10 ))
  install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=imxci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  st=""
  for _ in $(seq 100); do
    st=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    [ "$st" = idle ] && break
    sleep 0.2
  done
  [ "$st" = idle ] || scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sinfo -h -n "$host" -o "slurm-local: node %N %T, %c CPUs"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
