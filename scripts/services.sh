#!/usr/bin/env bash
# Make sure every service the test suite needs answers on 127.0.0.1, starting (and if
# necessary installing, with apt-get) what is missing: Redis 6379, RabbitMQ 5672, and the
# S3 server of scripts/seaweedfs.sh (8333). Idempotent; prints what it did.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port seconds name
  for _ in $(seq 1 $(( $2 * 4 ))); do answers "$1" && return 0; sleep 0.25; done
  echo "services: $3 did not answer on 127.0.0.1:$1 within $2 s" >&2; return 1
}
apt_install() {
  command -v apt-get >/dev/null || { echo "services: $1 missing and no apt-get" >&2; return 1; }
  if [ -z "${_apt_updated:-}" ]; then apt-get update -qq >/dev/null; _apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if answers 6379; then
  echo "services: redis already up"
else
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /tmp/shardline-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/shardline-redis --logfile /tmp/shardline-redis/redis.log
  wait_port 6379 30 redis && echo "services: redis started"
fi

if answers 5672; then
  echo "services: rabbitmq already up"
else
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 120 rabbitmq && echo "services: rabbitmq started"
fi

bash scripts/seaweedfs.sh start >/dev/null && echo "services: seaweedfs (S3) up"
