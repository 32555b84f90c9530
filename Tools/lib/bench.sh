# Shared by Tools/bench, Tools/bench-instructions and Tools/layout/generate (sourced).

# The arguments of the release build that ships (the Dockerfile's `swift build`, which spells the
# same; Tools/image-check too): the Swift runtime and Foundation linked statically, and every
# function in a section of its own, so the linker can lay them out as Tools/layout/sitrep.order
# lists (see `codeLayout` in Package.swift).
# shellcheck disable=SC2034 # used by the scripts that source this file
SITREP_RELEASE_BUILD=(-c release --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections)

# bench_environment DIR: what every measured server runs with: development settings over the
# services under DIR, warnings only, no response validation, and rate limits no benchmark reaches.
bench_environment() {
    export SITREP_ENV=development SITREP_DATA_DIR="$1" SITREP_LOG_LEVEL=warning SITREP_VALIDATE_RESPONSES=false
    export SITREP_RATE_LIMITS="writes=1000000/60,ingest=1000000/60,auth=1000000/60,messaging=1000000/60,webhook=1000000/60"
}

# bench_wait_valgrind PID LOG URL [CURL ARGS…]: waits (up to 2 minutes) until the server valgrind
# runs as PID answers URL; when it exits first, prints the end of LOG and exits.
bench_wait_valgrind() {
    local pid="$1" log="$2" url="$3"
    shift 3
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; exit 1; }
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return
        sleep 0.2
    done
}

# bench_capture URL FILE [CURL ARGS…]: GETs URL and writes its body to FILE and the answer's
# header fields, as `--header` arguments for sitrep-bench-bare (one per line), to FILE.headers:
# all but Date and Content-Length (Hummingbird writes those for both servers) and connection
# management. The bare route then sends the same bytes as Sitrep's.
bench_capture() {
    local url="$1" file="$2"
    shift 2
    curl -fsS -D "$file.raw-headers" -o "$file" "$@" "$url" || return 1
    tr -d '\r' <"$file.raw-headers" | awk 'NR > 1 && NF > 0 && tolower($1) !~ /^(date|content-length|connection|keep-alive|transfer-encoding):$/ { print }' >"$file.headers"
    rm -f "$file.raw-headers"
}

# bench_bare_args FILE: the sitrep-bench-bare arguments for a body captured by bench_capture,
# with the idle timeout `sitrep serve` runs with.
bench_bare_args() {
    local file="$1" line
    printf '%s\n' --body "$file" --idle-timeout "${SITREP_IDLE_TIMEOUT_SECONDS:-30}"
    while IFS= read -r line; do printf '%s\n' --header "$line"; done <"$file.headers"
}
