#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try `--profile profiles/slurm`
# without a site cluster (and to test it). Debian packages, no systemd: every daemon is
# started here as a background process, its pid recorded, and stopped by that pid.
#
#   scripts/local_slurm.sh install   # apt-get the packages (root; once per machine)
#   scripts/local_slurm.sh start     # munge, mariadb, slurmdbd, slurmctld, slurmd; waits until usable
#   scripts/local_slurm.sh status    # each daemon's pid and state, then sinfo
#   scripts/local_slurm.sh stop      # stop exactly the daemons this script started
#
# Everything (configuration, state, spool, logs, pids, the accounting database) lives in
# $WEBBCAL_SLURM_DIR (default /tmp/webbcal-slurm). start and stop are idempotent.
# Accounting (slurmdbd + MariaDB) is not optional: the Snakemake SLURM executor polls job
# states with sacct and waits forever when sacct has no database behind it.
# The SLURM configuration is linked from /etc/slurm/slurm.conf and the munge and MariaDB
# sockets are the system defaults (/run/munge, /run/mysqld): the places the SLURM binaries
# (and the executor's in-job srun, which drops SLURM_CONF) look. A munged already
# answering there is used and left alone; an existing /etc/slurm/slurm.conf stops start.
set -euo pipefail

STATE_DIR=${WEBBCAL_SLURM_DIR:-/tmp/webbcal-slurm}
CLUSTER=webbcal
ACCOUNT=webbcal
PARTITION=debug
DB_NAME=slurm_acct_db
MYSQL_SOCKET=/run/mysqld/mysqld.sock
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stopped in reverse
READY_TIMEOUT=${WEBBCAL_SLURM_READY_TIMEOUT:-60}      # seconds for each daemon to answer

CONF=$STATE_DIR/etc/slurm.conf
PIDS=$STATE_DIR/pids
LOGS=$STATE_DIR/log
export SLURM_CONF=$CONF

say() { printf 'local_slurm: %s\n' "$*"; }
die() { printf 'local_slurm: error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [[ $(id -u) == 0 ]] || die "must run as root (daemons run as root, munge and mysql users)"
}

# The packages of PACKAGES not installed, one per line.
missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || echo "$pkg"
    done
}

cmd_install() {
    require_root
    local missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        say "packages already installed"
        return
    fi
    say "installing: ${missing[*]}"
    apt-get update -q
    # No systemd: the packages' own attempts to start their services fail harmlessly.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ---------------------------------------------------------------- pid bookkeeping

# Process $1 exists and is not a zombie (a stopped daemon whose parent has not reaped it).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != Z* ]]
}

# The recorded pid of daemon $1 if that process is alive and still that program.
live_pid() {
    local file=$PIDS/$1.pid pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ -n $pid ]] && running "$pid" || return 1
    # Its command line names the daemon (also while setsid/setpriv are still exec-ing it).
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qw -- "$1" || return 1
    echo "$pid"
}

# Start daemon $1 (a foreground command: the rest of the arguments) in its own session,
# output to its log, and record its pid. setsid and setpriv exec, so $! is the daemon.
launch() {
    local name=$1
    shift
    setsid "$@" >>"$LOGS/$name.out" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
    say "started $name (pid $!)"
}

# Wait until command "$@" succeeds, or fail naming daemon $1's log.
wait_for() {
    local name=$1 waited=0
    shift
    until "$@" >/dev/null 2>&1; do
        live_pid "$name" >/dev/null || die "$name exited; see $LOGS/$name.out and $LOGS/$name.log"
        ((waited++ < READY_TIMEOUT * 2)) || die "$name not ready after ${READY_TIMEOUT}s; see $LOGS/"
        sleep 0.5
    done
}

# ---------------------------------------------------------------- configuration

write_config() {
    mkdir -p "$STATE_DIR"/{etc,state,spool} "$PIDS" "$LOGS"
    chmod 755 "$STATE_DIR"
    # The node as slurmd sees it (real CPU count and memory), renamed localhost: the machine's
    # hostname is not, and slurmd is started with -N localhost. Keep 10 % of memory back.
    local node real_mb
    node=$(slurmd -C | head -1)
    real_mb=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    node=${node/NodeName=* CPUs=/NodeName=localhost NodeAddr=127.0.0.1 CPUs=}
    node=${node/RealMemory=$real_mb/RealMemory=$((real_mb * 9 / 10))}
    local host
    host=$(hostname -s)
    link_system_config
    cat >"$CONF" <<EOF
# Written by scripts/local_slurm.sh: a one-node cluster on 127.0.0.1.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$PIDS/slurmctld.daemon.pid
SlurmdPidFile=$PIDS/slurmd.daemon.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups without systemd: processes tracked through /proc, limits not enforced.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
# Finished jobs stay visible to squeue/scontrol for an hour (status polling fallback).
MinJobAge=3600
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
# sacct shows the executor's --comment (rule_<rule>_wildcards_<...>) for each job.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # slurmdbd reads slurmdbd.conf beside slurm.conf; it holds storage settings: 0600.
    (
        umask 077
        cat >"$STATE_DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$PIDS/slurmdbd.daemon.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=$DB_NAME
EOF
    )
}

# SLURM clients find their configuration at /etc/slurm/slurm.conf: the executor plugin's
# job steps drop SLURM_CONF from the environment before calling srun. A symlink there to
# ours, made only where no slurm.conf exists (a real SLURM installation is never touched),
# removed by stop.
SYSTEM_CONF=/etc/slurm/slurm.conf

link_system_config() {
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$CONF" ]]; then return; fi
    [[ ! -e $SYSTEM_CONF && ! -L $SYSTEM_CONF ]] \
        || die "$SYSTEM_CONF exists and is not ours: this machine already has a SLURM configuration"
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$CONF" "$SYSTEM_CONF"
}

unlink_system_config() {
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$CONF" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
}

# ---------------------------------------------------------------- daemons

munge_works() { munge -n </dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
    if live_pid munged >/dev/null; then return; fi
    if munge_works; then
        say "munged already running (not started here; left alone by stop)"
        return
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for munged munge_works
}

mysql_ping() { mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" -u root ping; }

start_mariadbd() {
    if live_pid mariadbd >/dev/null; then return; fi
    local data=$STATE_DIR/mysql
    install -d -o mysql -g mysql -m 0755 "$data" "$STATE_DIR/mysql-run" /run/mysqld
    if [[ ! -d $data/mysql ]]; then
        say "initialising the accounting database in $data"
        mariadb-install-db --no-defaults --datadir="$data" --user=mysql --skip-test-db \
            --auth-root-authentication-method=socket >"$LOGS/mariadb-install-db.out" 2>&1 \
            || die "mariadb-install-db failed; see $LOGS/mariadb-install-db.out"
    fi
    launch mariadbd mariadbd --no-defaults --user=mysql --datadir="$data" \
        --socket="$MYSQL_SOCKET" --skip-networking \
        --pid-file="$STATE_DIR/mysql-run/mariadbd.pid" \
        --log-error="$STATE_DIR/mysql-run/mariadbd.log"
    wait_for mariadbd mysql_ping
}

start_slurmdbd() {
    if live_pid slurmdbd >/dev/null; then return; fi
    launch slurmdbd slurmdbd -D
    wait_for slurmdbd sacctmgr -n list cluster
}

start_slurmctld() {
    if live_pid slurmctld >/dev/null; then return; fi
    # -i: ignore saved state that no longer matches this configuration.
    launch slurmctld slurmctld -D -i -f "$CONF"
    wait_for slurmctld scontrol ping
}

node_idle() { [[ $(sinfo -h -n localhost -o %t) == idle* ]]; }

start_slurmd() {
    if live_pid slurmd >/dev/null; then return; fi
    launch slurmd slurmd -D -N localhost -f "$CONF"
    wait_for slurmd node_idle
}

# An account and root's association, so that sacct shows jobs under a real account.
register_account() {
    sacctmgr -n list account "$ACCOUNT" format=account | grep -q "$ACCOUNT" && return
    sacctmgr -i add account "$ACCOUNT" Description="webbcal local cluster" Organization=webbcal >/dev/null
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
}

cmd_start() {
    require_root
    local missing
    missing=$(missing_packages)
    [[ -z $missing ]] || die "packages missing: ${missing//$'\n'/ } (run: $0 install)"
    write_config
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    register_account
    timeout 30 srun -N1 -t 1 hostname >/dev/null || die "srun hostname failed; see $LOGS/"
    say "cluster '$CLUSTER' ready: partition $PARTITION, node localhost"
    say "configuration: $CONF (linked from $SYSTEM_CONF), logs: $LOGS"
}

# Stop the daemon recorded under $1: SIGTERM, then SIGKILL after 20 s.
stop_one() {
    local name=$1 pid waited=0
    pid=$(live_pid "$name") || { rm -f "$PIDS/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    while running "$pid" && ((waited++ < 40)); do sleep 0.5; done
    if running "$pid"; then
        say "$name (pid $pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/$name.pid"
    say "stopped $name (pid $pid)"
}

cmd_stop() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_one "${DAEMONS[i]}"
    done
    unlink_system_config
}

cmd_status() {
    local name pid down=0
    for name in "${DAEMONS[@]}"; do
        if pid=$(live_pid "$name"); then
            printf '%-10s running (pid %s)\n' "$name" "$pid"
        else
            printf '%-10s stopped\n' "$name"
            down=1
        fi
    done
    if ((down == 0)); then sinfo; fi
    return $down
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
