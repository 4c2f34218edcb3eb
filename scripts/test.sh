#!/usr/bin/env bash
# Runs every test of audittrail on a fresh machine: installs what the tests
# need, starts the local services they talk to, then runs the Go tests
# (integration ones included) and the Descope Node SDK check.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# --- packages the integration tests use ---------------------------------
need_apt=()
command -v rsyslogd >/dev/null || need_apt+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -e /usr/lib/rsyslog/lmnsd_gtls.so ] || need_apt+=(rsyslog-gnutls)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so ] || [ -e /usr/lib/rsyslog/imrelp.so ] || need_apt+=(rsyslog-relp)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- services ------------------------------------------------------------
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_ready; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  log "starting NATS"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for i in $(seq 1 60); do
  pg_ready && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
  sleep 1
done
pg_ready || { echo "PostgreSQL did not start" >&2; exit 1; }

# --- node packages for the Descope SDK check ------------------------------
if [ -f test/descope-node/package-lock.json ]; then
  log "installing the Descope Node SDK"
  (cd test/descope-node && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- the tests -------------------------------------------------------------
log "go vet"
go vet ./...
log "go test (integration included)"
export AUDITTRAIL_INTEGRATION=1
# -p 2: the integration packages share PostgreSQL and the two cores.
go test -p 2 -timeout 30m -count=1 ./... "$@"
