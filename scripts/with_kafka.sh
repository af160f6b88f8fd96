#!/usr/bin/env bash
# Run a command with a local Kafka broker, so `make test` runs the Kafka tests instead of skipping them.
#
#   scripts/with_kafka.sh <command> [args...]
#
# - A broker already serving on 127.0.0.1:$KAFKA_PORT (default 9092; CI's, or one from `make kafka-start`) is used
#   as is and left running.
# - Otherwise, when Java is present, a private broker is started (KRaft, fresh state dir, port 9092 or a free one
#   when that is taken) for the command, exported to it as KAFKA_PORT / DSPY_RL_KAFKA, and stopped afterwards
#   (also on Ctrl-C), its state dir removed.
# - Without Java, one line says the Kafka tests will be skipped, and the command runs without a broker.
# The exit status is the command's.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -gt 0 ]] || { echo "usage: scripts/with_kafka.sh <command> [args...]" >&2; exit 2; }

PORT="${KAFKA_PORT:-9092}"
if scripts/kafka.sh status --port "$PORT" >/dev/null 2>&1; then
  echo "with_kafka: using the broker already serving on 127.0.0.1:$PORT" >&2
  export KAFKA_PORT="$PORT" DSPY_RL_KAFKA="${DSPY_RL_KAFKA:-127.0.0.1:$PORT}"
  exec "$@"
fi
if ! command -v java >/dev/null 2>&1; then
  echo "with_kafka: Java not found, so the Kafka tests will be skipped (install openjdk-17-jre to run them)" >&2
  exec "$@"
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if ! port_free "$PORT" || ! port_free "$((PORT + 1))"; then
  PORT="$(free_port)"
  while ! port_free "$((PORT + 1))"; do PORT="$(free_port)"; done
fi
STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dspy-rl-test-kafka.XXXXXX")"
cleanup() {
  scripts/kafka.sh stop --port "$PORT" --state-dir "$STATE_DIR" >/dev/null 2>&1 || true
  rm -rf "$STATE_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "with_kafka: starting a private broker on 127.0.0.1:$PORT for this run (stopped afterwards)" >&2
if ! scripts/kafka.sh start --port "$PORT" --state-dir "$STATE_DIR" >&2; then
  echo "with_kafka: the broker did not start (see $STATE_DIR/kafka.log); the Kafka tests will be skipped" >&2
fi
export KAFKA_PORT="$PORT" DSPY_RL_KAFKA="127.0.0.1:$PORT"
set +e
"$@"
status=$?
set -e
exit "$status"
