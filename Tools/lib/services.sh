# shellcheck shell=bash
# Project-local PostgreSQL and Redis for development and tests.
#
# Sourced (not executed) by Tools/test and Tools/run, which set
# `set -euo pipefail`; everything here works under those options.
#
#   sitrep_install_deps        install the Debian packages the build and the services need
#   sitrep_start_services DIR  start (or reuse) PostgreSQL + Redis under DIR, export their URLs
#   sitrep_pg_stop DIR         stop that PostgreSQL (the fault tests start it again)
#   sitrep_stop_services DIR   stop them; never fails
#   sitrep_start_helper NAME LOG MARKER CMD...
#                              start a helper process (dev-issuer, dev-providers, dev-erp) in the
#                              background and wait for its ready line; its pid in SITREP_HELPER_PID
#   sitrep_export_from LOG PREFIX
#                              export the PREFIX…=value lines a helper printed (SITREP_ERP_BASE_URL=…)
#
# Exported by sitrep_start_services:
#   SITREP_DATABASE_URL, SITREP_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:PORT/sitrep?sslmode=disable
#   SITREP_REDIS_URL, SITREP_TEST_REDIS_URL        redis://127.0.0.1:PORT/0
#   SITREP_TEST_REDIS_START                        shell command line that starts this Redis again
#   SITREP_TEST_REDIS_STOP                         shell command line that stops it (shutdown nosave)
#   SITREP_PG_PORT, SITREP_REDIS_PORT, SITREP_SERVICES_DIR
#
# Layout of DIR:  pg/ (cluster, owned by postgres; server.log inside),
#                 pg.port (last port used), initdb.log,
#                 redis/ (redis.pid, redis.log, port).
#
# Env knobs: SITREP_PG_FAST=1 starts PostgreSQL with fsync and synchronous
# commit off (Tools/test sets it: throwaway data, much faster tests).

# Debian packages needed on a fresh Debian 12 machine of this project's kind
# (Swift itself is already in /opt/swift). Libraries that a system-library
# target declares with `providers: [.apt([...])]` in Package.swift are added
# automatically, so a new C dependency only needs to be declared there.
SITREP_APT_PACKAGES=(
    # services
    postgresql redis-server redis-tools
    # Redis client target (also found in Package.swift) and the scripts
    libhiredis-dev pkg-config curl ca-certificates
    # briefing PDFs (BriefingPDF target; Pango + Cairo, fonts, pdftotext & co. for its tests)
    libpango1.0-dev libcairo2-dev fonts-dejavu-core fonts-noto-core poppler-utils
    # contract gates in Tools/test: openapi-spec-validator (pip), schemathesis (a venv, Tools/fuzz)
    python3 python3-venv python3-pip
    # what `swift build` / `swift test` need from the system
    binutils git libc6-dev libgcc-12-dev libstdc++-12-dev zlib1g-dev
    libcurl4 libxml2 libsqlite3-0 tzdata
)

sitrep__log() { printf '[services] %s\n' "$*" >&2; }

# Packages from `.apt([...])` providers in Package.swift (needs the cwd = repo root).
sitrep__package_swift_apt() {
    [[ -f Package.swift ]] || return 0
    grep -o '\.apt([[:space:]]*\[[^]]*\]' Package.swift 2>/dev/null \
        | grep -o '"[^"]*"' | tr -d '"' || true
}

sitrep_install_deps() {
    local -a wanted missing=() declared
    local pkg status
    mapfile -t declared < <(sitrep__package_swift_apt)
    mapfile -t wanted < <(printf '%s\n' "${SITREP_APT_PACKAGES[@]}" "${declared[@]}" | awk 'NF && !seen[$0]++')
    # One dpkg-query for everything: "name status" for known packages; unknown
    # ones only print to stderr and count as missing.
    declare -A installed=()
    while read -r pkg status; do
        if [[ "$status" == installed ]]; then installed[$pkg]=1; fi
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null || true)
    for pkg in "${wanted[@]}"; do
        [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi

    local -a apt=(apt-get)
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            apt=(sudo apt-get)
        else
            sitrep__log "missing Debian packages: ${missing[*]} (run as root, or install them: apt-get install -y ${missing[*]})"
            return 1
        fi
    fi
    sitrep__log "installing: ${missing[*]}"
    if [[ -z "${SITREP__APT_UPDATED:-}" ]]; then
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq
        SITREP__APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
}

# PostgreSQL's bin directory: 15 if present, else the highest version.
sitrep__pg_bin() {
    if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
        echo /usr/lib/postgresql/15/bin
        return 0
    fi
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [[ -z "$dir" || ! -x "$dir/pg_ctl" ]]; then
        sitrep__log "no PostgreSQL server found under /usr/lib/postgresql (run sitrep_install_deps)"
        return 1
    fi
    echo "$dir"
}

# Runs a command as the postgres user when we are root (initdb and the server
# refuse to run as root), as ourselves otherwise.
sitrep__as_pg() {
    if ((EUID == 0)); then
        # cd /: the caller's directory may not be readable by postgres.
        su postgres -s /bin/bash -c "cd / && $(printf '%q ' "$@")"
    else
        "$@"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
sitrep__port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port nothing listens on, preferring $1 if given. Picks from
# 20000-32767, below Linux's ephemeral range, so outgoing connections do not
# take it in the meantime; callers still retry if the server cannot bind.
sitrep__free_port() {
    local preferred=${1:-} port tries
    if [[ -n "$preferred" ]] && ! sitrep__port_busy "$preferred"; then
        echo "$preferred"
        return 0
    fi
    for ((tries = 0; tries < 200; tries++)); do
        port=$((20000 + RANDOM % 12768))
        if ! sitrep__port_busy "$port"; then
            echo "$port"
            return 0
        fi
    done
    sitrep__log "no free loopback port found"
    return 1
}

# True when the postgres user can cd into $1.
sitrep__pg_can_cd() {
    # shellcheck disable=SC2016 # $0 is expanded by the inner shell, on purpose
    su postgres -s /bin/sh -c 'cd "$0"' "$1" 2>/dev/null
}

# Makes sure the postgres user can reach $1: walking down from /, adds o+x to
# each directory it cannot enter (only those, and only when needed).
sitrep__pg_can_traverse() {
    local target=$1 path="" part
    ((EUID == 0)) || return 0
    sitrep__pg_can_cd "$target" && return 0
    local -a parts
    IFS=/ read -r -a parts <<<"${target#/}"
    for part in "${parts[@]}"; do
        [[ -n "$part" ]] || continue
        path="$path/$part"
        if [[ -d "$path" ]] && ! sitrep__pg_can_cd "$path"; then
            sitrep__log "chmod o+x $path (so that the postgres user can reach the cluster)"
            chmod o+x "$path"
        fi
    done
    sitrep__pg_can_cd "$target" || {
        sitrep__log "the postgres user cannot reach $target"
        return 1
    }
}

sitrep__start_postgres() {
    local dir=$1 bin data port attempt pid_line
    bin=$(sitrep__pg_bin)
    data="$dir/pg"

    # Reuse a running cluster (Tools/run re-runs).
    if [[ -f "$data/postmaster.pid" ]] && sitrep__as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        pid_line=$(sed -n 4p "$data/postmaster.pid")
        if [[ "$pid_line" =~ ^[0-9]+$ ]] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$pid_line" -U postgres -d postgres; then
            SITREP_PG_PORT=$pid_line
            sitrep__log "PostgreSQL already running on 127.0.0.1:$SITREP_PG_PORT ($data)"
            return 0
        fi
        sitrep__log "PostgreSQL in $data runs but does not answer; restarting it"
        sitrep__as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi

    if [[ ! -f "$data/PG_VERSION" ]]; then
        rm -rf "$data"
        mkdir -p "$data"
        if ((EUID == 0)); then chown postgres:postgres "$data"; fi
        chmod 700 "$data"
        sitrep__pg_can_traverse "$data"
        if ! sitrep__as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1; then
            sitrep__log "initdb failed; see $dir/initdb.log:"
            tail -n 20 "$dir/initdb.log" >&2
            return 1
        fi
        # TCP on loopback only, no Unix socket (its path could exceed 107 bytes
        # in a deep checkout); room for several test pools at once.
        cat >>"$data/postgresql.conf" <<'EOF'

# --- added by Tools/lib/services.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
EOF
    else
        sitrep__pg_can_traverse "$data"
    fi

    local -a extra=()
    if [[ "${SITREP_PG_FAST:-}" == 1 ]]; then
        extra=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
    fi
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(sitrep__free_port "$(cat "$dir/pg.port" 2>/dev/null || true)")
        if sitrep__as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
            -o "-p $port ${extra[*]}" start >/dev/null 2>&1; then
            echo "$port" >"$dir/pg.port"
            SITREP_PG_PORT=$port
            sitrep__log "PostgreSQL started on 127.0.0.1:$port ($data)"
            return 0
        fi
        if grep -q 'could not bind\|Address already in use' "$data/server.log" 2>/dev/null; then
            sitrep__log "port $port was taken, trying another"
            rm -f "$dir/pg.port"
            continue
        fi
        break
    done
    sitrep__log "PostgreSQL did not start; end of $data/server.log:"
    tail -n 20 "$data/server.log" >&2 2>/dev/null || true
    return 1
}

sitrep__redis_start_command() {
    local dir=$1 port=$2
    printf 'redis-server --port %q --bind 127.0.0.1 --daemonize yes --save %q --appendonly no --dir %q --pidfile %q --logfile %q' \
        "$port" "" "$dir/redis" "$dir/redis/redis.pid" "$dir/redis/redis.log"
}

sitrep__redis_wait() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

sitrep__start_redis() {
    local dir=$1 port pid attempt
    mkdir -p "$dir/redis"
    if [[ -f "$dir/redis/redis.pid" && -f "$dir/redis/port" ]]; then
        pid=$(cat "$dir/redis/redis.pid" 2>/dev/null || true)
        port=$(cat "$dir/redis/port" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ && "$port" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
            && [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
            SITREP_REDIS_PORT=$port
            sitrep__log "Redis already running on 127.0.0.1:$port (pid $pid)"
            return 0
        fi
    fi
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(sitrep__free_port "$(cat "$dir/redis/port" 2>/dev/null || true)")
        rm -f "$dir/redis/redis.pid"
        if bash -c "$(sitrep__redis_start_command "$dir" "$port")" && sitrep__redis_wait "$port"; then
            echo "$port" >"$dir/redis/port"
            SITREP_REDIS_PORT=$port
            sitrep__log "Redis started on 127.0.0.1:$port ($dir/redis)"
            return 0
        fi
        sitrep__log "Redis did not come up on port $port, trying another"
        rm -f "$dir/redis/port"
    done
    sitrep__log "Redis did not start; end of $dir/redis/redis.log:"
    tail -n 20 "$dir/redis/redis.log" >&2 2>/dev/null || true
    return 1
}

sitrep_start_services() {
    local dir=${1:?usage: sitrep_start_services DIR}
    local bin
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    bin=$(sitrep__pg_bin)

    sitrep__start_postgres "$dir"
    sitrep__start_redis "$dir"

    if [[ "$("$bin/psql" -h 127.0.0.1 -p "$SITREP_PG_PORT" -U postgres -d postgres -tAqc \
        "select 1 from pg_database where datname = 'sitrep'")" != 1 ]]; then
        "$bin/createdb" -h 127.0.0.1 -p "$SITREP_PG_PORT" -U postgres sitrep
    fi

    export SITREP_SERVICES_DIR=$dir
    export SITREP_PG_PORT SITREP_REDIS_PORT
    export SITREP_DATABASE_URL="postgres://postgres@127.0.0.1:$SITREP_PG_PORT/sitrep?sslmode=disable"
    export SITREP_REDIS_URL="redis://127.0.0.1:$SITREP_REDIS_PORT/0"
    export SITREP_TEST_DATABASE_URL=$SITREP_DATABASE_URL
    export SITREP_TEST_REDIS_URL=$SITREP_REDIS_URL
    SITREP_TEST_REDIS_START=$(sitrep__redis_start_command "$dir" "$SITREP_REDIS_PORT")
    export SITREP_TEST_REDIS_START
    export SITREP_TEST_REDIS_STOP="redis-cli -h 127.0.0.1 -p $SITREP_REDIS_PORT shutdown nosave"
    # For the fault tests: stop the test PostgreSQL and start it again on the same port
    # (bash -c "$SITREP_TEST_PG_STOP").
    local lib
    lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/services.sh
    export SITREP_TEST_PG_STOP="source '$lib' && sitrep_pg_stop '$dir'"
    export SITREP_TEST_PG_START="source '$lib' && sitrep__start_postgres '$dir'"
}

# Stops the PostgreSQL of DIR (fast: open sessions are ended), keeping its data.
sitrep_pg_stop() {
    local dir=${1:?usage: sitrep_pg_stop DIR} bin
    bin=$(sitrep__pg_bin)
    sitrep__as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w -t 30 stop >/dev/null
}

sitrep_stop_services() {
    local dir=${1:?usage: sitrep_stop_services DIR}
    local bin port pid pidfile i
    [[ -d "$dir" ]] || return 0
    dir=$(cd "$dir" && pwd -P) || return 0

    if [[ -f "$dir/pg/postmaster.pid" ]] && bin=$(sitrep__pg_bin 2>/dev/null); then
        sitrep__as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || true
        # If pg_ctl could not do it (cluster half-initialised, user gone), signal the postmaster.
        pid=$(head -n 1 "$dir/pg/postmaster.pid" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true
        fi
    fi

    port=$(cat "$dir/redis/port" 2>/dev/null || true)
    if [[ "$port" =~ ^[0-9]+$ ]]; then
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    fi
    # The main Redis and any private ones tests started under DIR (redis*.pid files).
    while IFS= read -r -d '' pidfile; do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
            && grep -q redis "/proc/$pid/comm" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < <(find "$dir" -name 'redis*.pid' -print0 2>/dev/null)

    # Wait (briefly) until they are gone, so that DIR can be deleted cleanly.
    for ((i = 0; i < 100; i++)); do
        pid=$(head -n 1 "$dir/pg/postmaster.pid" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            sleep 0.1
            continue
        fi
        if [[ "$port" =~ ^[0-9]+$ ]] && sitrep__port_busy "$port"; then
            sleep 0.1
            continue
        fi
        break
    done
    return 0
}

# sitrep_start_helper NAME LOG MARKER CMD...: runs CMD in the background with its output in LOG,
# then waits up to 30 s for a line matching the grep pattern MARKER; its pid is then in
# SITREP_HELPER_PID (the caller stops it). Fails, printing LOG, when CMD exits first or never
# prints the line (CMD is then killed).
sitrep_start_helper() {
    local name=$1 log=$2 marker=$3
    shift 3
    "$@" >"$log" 2>&1 &
    SITREP_HELPER_PID=$!
    for _ in $(seq 1 300); do
        grep -q "$marker" "$log" 2>/dev/null && return 0
        kill -0 "$SITREP_HELPER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill "$SITREP_HELPER_PID" 2>/dev/null || true
    sitrep__log "$name did not start:"
    cat "$log" >&2
    return 1
}

# sitrep_export_from LOG PREFIX: exports every `PREFIX…=value` line of LOG (variable names only).
sitrep_export_from() {
    local name value
    while IFS='=' read -r name value; do export "$name=$value"; done < <(grep "^$2[A-Z_]*=" "$1")
}
