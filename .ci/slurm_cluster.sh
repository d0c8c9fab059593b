#!/usr/bin/env bash
# Single-node SLURM test cluster on the local machine (Debian/Ubuntu, run as root).
#
#   bash .ci/slurm_cluster.sh start    # install (if missing) and start munged, slurmctld, slurmd;
#                                      # wait until the node is idle; print sinfo
#   bash .ci/slurm_cluster.sh status   # exit 0 if the cluster answers and a node is usable
#   bash .ci/slurm_cluster.sh stop     # stop only the daemons this script started
#
# Works without systemd (containers, CI VMs): the daemons are started directly and
# their PIDs are recorded in $STATE_DIR. `stop` kills exactly those PIDs and nothing else.
#
# Facts this setup relies on (SLURM 22.05, Debian 12):
#  * The config must be at /etc/slurm/slurm.conf: with only $SLURM_CONF set, `srun` inside a
#    batch job fails with "Could not establish a configuration source".
#  * No accounting daemon (AccountingStorageType=accounting_storage/none), so `sacct` does not
#    work; clients must poll with `squeue`, and finished jobs must stay visible to squeue
#    long enough -> MinJobAge=600.
#
# Environment knobs (all optional):
#   WEIGHTDYN_SLURM_STATE_DIR   state dir with PID files          (default /run/weightdyn-slurm)
#   WEIGHTDYN_SLURM_TIMEOUT     seconds to wait for an idle node  (default 60)
#   WEIGHTDYN_SLURM_MEM_MARGIN  MiB of RAM kept back from SLURM   (default 1024)
set -euo pipefail

STATE_DIR=${WEIGHTDYN_SLURM_STATE_DIR:-/run/weightdyn-slurm}
TIMEOUT=${WEIGHTDYN_SLURM_TIMEOUT:-60}
MEM_MARGIN=${WEIGHTDYN_SLURM_MEM_MARGIN:-1024}
CONF=/etc/slurm/slurm.conf
CONF_MARKER="# written by weightdyn .ci/slurm_cluster.sh"
LOG_DIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MUNGE_KEY=/etc/munge/munge.key

# Always talk to the cluster through /etc/slurm/slurm.conf (see header).
unset SLURM_CONF

log() { echo "[slurm_cluster] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, writes /etc/slurm, starts daemons)"
}

# --- helpers -----------------------------------------------------------------------------

# pid_alive PIDFILE COMM: true if the PID in PIDFILE is alive and is the expected program
# (guards against PID reuse after a crash).
pid_alive() {
    local pidfile=$1 comm=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -d "/proc/$pid" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

node_state() {
    timeout 10 sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' '
}

cluster_usable() {
    command -v sinfo >/dev/null 2>&1 || return 1
    [ -f "$CONF" ] || return 1
    node_state | grep -Eq '(^| )(idle|mixed|allocated|completing)( |$)'
}

print_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [ -f "$f" ]; then
            echo "----- tail -n 40 $f -----" >&2
            tail -n 40 "$f" >&2 || true
        else
            echo "----- $f: (missing) -----" >&2
        fi
    done
}

# --- install -----------------------------------------------------------------------------

install_packages() {
    local missing=0 b
    for b in slurmctld slurmd munged munge unmunge sinfo sbatch srun squeue scontrol; do
        command -v "$b" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" -eq 0 ] && return 0
    log "installing slurm-wlm and munge (apt-get)"
    # Keep the package scripts from starting services themselves: we start (and later
    # stop) exactly the daemons we own. Only add a policy-rc.d if none exists.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge >/dev/null
    } || rc=$?
    [ "$added_policy" -eq 1 ] && rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install slurm-wlm munge failed (rc=$rc)"
    for b in slurmctld slurmd munged sinfo sbatch srun squeue scontrol; do
        command -v "$b" >/dev/null 2>&1 || die "'$b' still missing after installing slurm-wlm/munge"
    done
}

# --- munge -------------------------------------------------------------------------------

munge_works() {
    command -v munge >/dev/null 2>&1 || return 1
    timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1
}

setup_munge_key() {
    id munge >/dev/null 2>&1 || die "user 'munge' does not exist (munge package broken?)"
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s "$MUNGE_KEY" ]; then
        log "creating munge key $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
}

start_munge() {
    if munge_works; then
        if pid_alive "$STATE_DIR/munged.pid" munged; then
            log "munged already running (pid $(cat "$STATE_DIR/munged.pid"), started by this script)"
        else
            log "munged already running (not started by this script; 'stop' leaves it alone)"
        fi
        return 0
    fi
    setup_munge_key
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid \
        || { print_logs; die "munged failed to start"; }
    local i
    for i in $(seq 1 50); do
        if [ -s /run/munge/munged.pid ] && munge_works; then
            cp /run/munge/munged.pid "$STATE_DIR/munged.pid"
            return 0
        fi
        sleep 0.2
    done
    print_logs
    die "munged started but 'munge -n | unmunge' does not work"
}

# --- slurm.conf --------------------------------------------------------------------------

write_conf() {
    local host cpus mem_total_mb real_mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem_total_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
    real_mem=$(( mem_total_mb - MEM_MARGIN ))
    [ "$real_mem" -ge 256 ] || real_mem=$(( mem_total_mb * 3 / 4 ))
    # Containers often cannot resolve their own short hostname: then pin it to loopback.
    local ctld_host=$host node_addr=""
    if ! getent hosts "$host" >/dev/null 2>&1; then
        log "hostname '$host' does not resolve; using 127.0.0.1 as its address"
        ctld_host="$host(127.0.0.1)"
        node_addr=" NodeAddr=127.0.0.1"
    fi

    if [ -f "$CONF" ] && ! grep -qF "$CONF_MARKER" "$CONF" && [ ! -f "$STATE_DIR/slurm.conf.orig" ]; then
        log "saving pre-existing $CONF to $STATE_DIR/slurm.conf.orig (restored by 'stop')"
        cp -p "$CONF" "$STATE_DIR/slurm.conf.orig"
    fi
    install -d -m 0755 /etc/slurm "$LOG_DIR"
    install -d -m 0700 "$CTLD_SPOOL" "$SLURMD_SPOOL"
    cat >"$CONF" <<EOF
$CONF_MARKER
# Single-node test cluster; do not use in production.
ClusterName=weightdyn
SlurmctldHost=$ctld_host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Keep finished jobs visible to squeue for 10 min (no sacct without accounting).
MinJobAge=600
ReturnToService=2
SlurmdTimeout=300
SlurmctldTimeout=120
InactiveLimit=0
KillWait=30
Waittime=0
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host${node_addr} CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 0644 "$CONF"
}

# --- start / stop / status ---------------------------------------------------------------

start_daemon() {  # start_daemon NAME  (slurmctld|slurmd)
    local name=$1
    if pid_alive "$STATE_DIR/$name.pid" "$name"; then
        log "$name already running (pid $(cat "$STATE_DIR/$name.pid"))"
        return 0
    fi
    rm -f "$STATE_DIR/$name.pid"
    log "starting $name"
    case $name in
        # -c: start from a clean controller state (throwaway test cluster).
        slurmctld) slurmctld -c ;;
        slurmd) slurmd ;;
    esac || { print_logs; die "$name failed to start"; }
    local i
    for i in $(seq 1 50); do
        pid_alive "$STATE_DIR/$name.pid" "$name" && return 0
        sleep 0.2
    done
    print_logs
    die "$name did not come up (no live pid in $STATE_DIR/$name.pid)"
}

cmd_start() {
    need_root
    if cluster_usable; then
        log "cluster already up; nothing to do"
        sinfo
        return 0
    fi
    install_packages
    install -d -m 0755 "$STATE_DIR"
    # Daemons of ours left from a failed start would keep their old config: restart them.
    local d
    for d in slurmd slurmctld; do
        if pid_alive "$STATE_DIR/$d.pid" "$d"; then
            log "cluster not usable; restarting $d started earlier by this script"
            kill_pidfile "$STATE_DIR/$d.pid" "$d"
        fi
    done
    start_munge
    write_conf
    start_daemon slurmctld
    start_daemon slurmd

    log "waiting up to ${TIMEOUT}s for node $(hostname -s) to become idle"
    local deadline=$(( SECONDS + TIMEOUT )) state="" resumed=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        state=$(node_state)
        if cluster_usable; then
            log "cluster is up"
            sinfo
            return 0
        fi
        # A node left DOWN/DRAIN from an earlier run: resume it once.
        if [ "$resumed" -eq 0 ] && echo "$state" | grep -Eq 'down|drain'; then
            scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        for d in slurmctld slurmd; do
            pid_alive "$STATE_DIR/$d.pid" "$d" || { print_logs; die "$d exited during startup"; }
        done
        sleep 1
    done
    log "node state after ${TIMEOUT}s: '${state:-<no answer from slurmctld>}'"
    timeout 10 scontrol show node "$(hostname -s)" >&2 2>&1 || true
    print_logs
    die "SLURM did not come up within ${TIMEOUT}s (run '$0 stop' to clean up)"
}

kill_pidfile() {  # kill_pidfile PIDFILE COMM
    local pidfile=$1 comm=$2 pid i
    if ! pid_alive "$pidfile" "$comm"; then
        [ -f "$pidfile" ] && log "$comm (pid $(cat "$pidfile" 2>/dev/null)) not running"
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
        log "$comm (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    need_root
    if [ ! -d "$STATE_DIR" ]; then
        log "nothing to stop (no $STATE_DIR)"
        return 0
    fi
    # Cancel jobs still on our cluster, so their job steps do not outlive slurmd.
    if pid_alive "$STATE_DIR/slurmctld.pid" slurmctld; then
        local jobs
        jobs=$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING -o '%i' 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            log "cancelling jobs: $(echo $jobs)"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            sleep 2
        fi
    fi
    kill_pidfile "$STATE_DIR/slurmd.pid" slurmd
    kill_pidfile "$STATE_DIR/slurmctld.pid" slurmctld
    kill_pidfile "$STATE_DIR/munged.pid" munged
    if [ -f "$STATE_DIR/slurm.conf.orig" ]; then
        log "restoring the original $CONF"
        cp -p "$STATE_DIR/slurm.conf.orig" "$CONF"
    fi
    rm -rf "$STATE_DIR"
    log "stopped"
}

cmd_status() {
    if cluster_usable; then
        sinfo
        return 0
    fi
    log "SLURM cluster not usable (node state: '$(node_state)')"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
