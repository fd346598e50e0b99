#!/usr/bin/env bash
# bench/throughput.sh — BucketFTP throughput benchmark (prints figures; asserts nothing).
#
# For each store in STORES (default "garage,local"):
#   garage  a throw-away Garage (tests/system/s3servers.py) and the gateway in endpoint mode;
#   local   the gateway's embedded local store (`bucketftp-server --local DIR`), whose own
#           loopback S3 endpoint the direct paths use (the gateway itself hands its requests
#           to the store in-process, without a socket: gateway/src/s3/direct.rs);
# it uploads and downloads one random file of SIZE_MIB MiB, ROUNDS times, each round going
# through every path in turn (so load on the machine spreads over all of them):
#   boto3    directly to S3 with boto3 (.venv-test): multipart, 8 MiB parts, 4 threads like the
#            gateway's defaults (timed inside Python, interpreter start-up not counted)
#   curl     directly to S3 with curl --aws-sigv4: one signed PUT / GET stream, the raw S3 path
#   gateway  through the gateway with curl ftp://
#   rclone   through `rclone serve ftp` on an S3 remote of the same store, with curl ftp://
#            (only when an rclone with `serve ftp` is on PATH; Debian's rclone has none)
# and prints per path the median MB/s (1 MB = 10^6 bytes) with min-max, the ratios of the
# medians gateway/curl (the headline; the target is >= 0.95) and gateway/boto3, rclone/curl,
# and the peak RSS (VmHWM) of the gateway next to the part-size bound it should stay within.
# It also prints where the CPU goes: per path the CPU seconds per GiB of the client (curl or
# Python) and of the servers (the store, plus the gateway or rclone; with the local store the
# gateway process is the store), read from /proc before and after each transfer, and how many
# cores were busy (CPU-s / wall-s). When a path keeps every core busy it is CPU-bound, and the
# ratio of two paths' CPU per GiB is the ceiling of their throughput ratio on this machine.
# Every download is checked byte for byte, then the object is deleted.
#
# The issue's figure is SIZE_MIB=1024 ROUNDS=3. The default is 512 MiB: at 1024 MiB a run moves
# 2 x 4 paths x 3 rounds x 2 stores = 48 GiB, a quarter of an hour on a busy two-core machine.
#
# Usage: bench/throughput.sh [SIZE_MIB]
#   env: SIZE_MIB (512), ROUNDS (3), STORES (garage,local), BUCKETFTP_BIN (default: builds and
#        uses target/release/bucketftp-server; with PROFILE=1 target/profiling/, the same code
#        with its symbol table), VENV_PY (default .venv-test/bin/python),
#        BENCH_DIRECT_ONLY=1 (measure only the boto3 and curl paths),
#        PROFILE=1 (after the rounds, one more upload and download of each store through the
#        gateway and one through the raw curl stream, each sampled machine-wide by
#        `perf record -e cpu-clock` (Debian's linux-perf; software clock, so it works without
#        hardware counters): prints, per transfer, the share of CPU samples of each process and
#        shared object (threads by name: the gateway's are bucketftp-io), and the gateway's
#        hottest functions. Not timed: perf slows them.)
# Needs scripts/install-test-deps.sh. Uses about 3 x SIZE_MIB of disk under $TMPDIR.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-${SIZE_MIB:-512}}"
ROUNDS="${ROUNDS:-3}"
STORES="${STORES:-garage,local}"
VENV_PY="${VENV_PY:-$REPO/.venv-test/bin/python}"
PART_MIB=8
PARTS_IN_FLIGHT=4
DOWNLOAD_CHUNK_MIB=8 # gateway downloads: one chunk streaming plus three fetched ahead
DOWNLOAD_CHUNKS=4
BUCKET=bench
BYTES=$((SIZE_MIB * 1024 * 1024))

die() { echo "$*" >&2; exit 1; }

[[ -x "$VENV_PY" ]] || die "missing $VENV_PY: run scripts/install-test-deps.sh (or set VENV_PY)"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"

paths=(boto3 curl)
if [[ "${BENCH_DIRECT_ONLY:-}" != 1 ]]; then
    paths+=(gateway)
    rclone_note=""
    if ! command -v rclone >/dev/null; then
        rclone_note="rclone serve ftp: not measured (no rclone on PATH)"
    elif ! rclone serve ftp --help 2>&1 | grep -- --passive-port >/dev/null; then
        rclone_note="rclone serve ftp: not measured ($(command -v rclone) has no 'serve ftp')"
    else
        paths+=(rclone)
    fi
fi
if [[ " ${paths[*]} " == *" gateway "* || ",$STORES," == *",local,"* ]]; then
    if [[ -z "${BUCKETFTP_BIN:-}" ]]; then
        # PROFILE=1 builds the release code with its symbol table (Cargo.toml's `profiling`)
        build_profile=release
        [[ "${PROFILE:-}" == 1 ]] && build_profile=profiling
        echo "building the gateway (cargo build --profile $build_profile -p gateway --bin bucketftp-server)" >&2
        (cd "$REPO" && cargo build --locked --profile "$build_profile" -p gateway --bin bucketftp-server) >&2
        BUCKETFTP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/$build_profile/bucketftp-server"
    fi
    [[ -x "$BUCKETFTP_BIN" ]] || die "gateway binary not found: $BUCKETFTP_BIN"
fi

WORK="$(mktemp -d -t bucketftp-bench-XXXXXX)"
pids=() # everything started for the current store: stopped by stop_all
stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f\n", b / 1e6 / s }'; } # mbps BYTES SECONDS
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# stats FILE (one number a line) -> "MEDIAN MIN MAX"
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}
median() { stats "$1" | cut -d' ' -f1; }
hwm_mib() { awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
CLK_TCK="$(getconf CLK_TCK)"
# ticks PID... -> the CPU time (user + system, in clock ticks) the processes used so far
ticks() {
    local pid sum=0 t
    for pid in "$@"; do
        # Fields after "PID (comm) ": utime and stime are the 12th and 13th.
        t="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null)" || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
# child_cpu: CPU seconds (user + system) of this shell's finished children, from `times`
# (run in this shell: a subshell's own children would start again from zero).
child_cpu() {
    local f="$WORK/times.$BASHPID"
    times >"$f"
    sed -n 2p "$f" |
        awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.3f", n }'
    rm -f "$f"
}

# free_ports N -> "FIRST LAST": N consecutive loopback ports free now, below the ephemeral range.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000 - n)
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base, base + n - 1)
    break
else:
    sys.exit("no free port range")
PY
}

# wait_for FILE SED_EXPR PID WHAT -> prints the first match of SED_EXPR in FILE (30 s at most).
wait_for() {
    local found="" _
    for _ in $(seq 300); do
        found="$(sed -n "$2" "$1" 2>/dev/null | head -n1)" || true
        [[ -n "$found" ]] && break
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$found" ]] || { tail -n 20 "$1" "${1%.*}.stderr" >&2 2>/dev/null; die "$4 did not start"; }
    echo "$found"
}

# --- Stores: each sets S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET -------
start_gateway() { # start_gateway ARGS... -> sets gateway_pid, gateway_port
    local range
    range="$(free_ports 50)"
    "$BUCKETFTP_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/gateway-data" --log-level warn \
        --passive-ports "${range/ /-}" --part-size "${PART_MIB}MiB" \
        --parts-in-flight "$PARTS_IN_FLIGHT" "$@" \
        >"$WORK/gateway.stdout" 2>"$WORK/gateway.stderr" &
    gateway_pid=$!
    pids+=("$gateway_pid")
    gateway_port="$(wait_for "$WORK/gateway.stdout" \
        's/.*BucketFTP listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$gateway_pid" gateway)"
    gateway_rest_mib="$(rss_mib "$gateway_pid")" # before any transfer: code, runtime, store
}

start_garage() {
    python3 "$REPO/tests/system/s3servers.py" garage --bucket "$BUCKET" --env-file "$WORK/s3.env" &
    pids+=("$!")
    wait_for "$WORK/s3.env" 's/^GARAGE_PID=.*/ok/p' "$!" garage >/dev/null
    # shellcheck disable=SC1091
    source "$WORK/s3.env"
    if [[ " ${paths[*]} " == *" gateway "* ]]; then
        start_gateway --endpoint "$S3_ENDPOINT" --region "$S3_REGION" --path-style
    fi
}

start_local() {
    start_gateway --local "$WORK/local-store" --local-bucket "$BUCKET"
    S3_ENDPOINT="$(sed -n 's/.*embedded S3 endpoint \(http[^)]*\)).*/\1/p' "$WORK/gateway.stdout")"
    [[ -n "$S3_ENDPOINT" ]] || die "no embedded S3 endpoint in the gateway's output"
    S3_REGION=local # localstore::REGION, the region its clients sign with
    S3_BUCKET="$BUCKET"
    # The store's generated credential (never printed).
    read -r S3_ACCESS_KEY S3_SECRET_KEY < <("$VENV_PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["access_key_id"], d["secret_access_key"])' "$WORK/local-store/local-credentials.json")
}

start_rclone() { # an S3 remote from environment variables, in rclone's environment only
    local port range
    port="$(free_ports 1 | cut -d' ' -f1)"
    range="$(free_ports 50)"
    rclone_pass="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" # a throw-away login
    (
        export RCLONE_CONFIG="$WORK/no-rclone.conf" RCLONE_CONFIG_BENCHS3_TYPE=s3 \
            RCLONE_CONFIG_BENCHS3_PROVIDER=Other RCLONE_CONFIG_BENCHS3_ENDPOINT="$S3_ENDPOINT" \
            RCLONE_CONFIG_BENCHS3_REGION="$S3_REGION" RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE=true \
            RCLONE_CONFIG_BENCHS3_NO_CHECK_BUCKET=true \
            RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
            RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
        exec rclone serve ftp "benchs3:$S3_BUCKET" --addr "127.0.0.1:$port" --user bench \
            --pass "$rclone_pass" --passive-port "${range/ /-}" --public-ip 127.0.0.1
    ) >"$WORK/rclone.log" 2>&1 &
    rclone_pid=$!
    pids+=("$rclone_pid")
    rclone_port="$(wait_for "$WORK/rclone.log" \
        's/.*Serving FTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$rclone_pid" "rclone serve ftp")"
}

# --- Transfers ---------------------------------------------------------------------------
boto3_secs() { # boto3_secs upload|download FILE KEY -> "SECONDS CPU_SECONDS"
    S3_ENDPOINT="$S3_ENDPOINT" S3_REGION="$S3_REGION" S3_ACCESS_KEY="$S3_ACCESS_KEY" \
        S3_SECRET_KEY="$S3_SECRET_KEY" S3_BUCKET="$S3_BUCKET" \
        "$VENV_PY" - "$@" "$PART_MIB" "$PARTS_IN_FLIGHT" <<'PY'
import os, sys, time
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

op, path, key, part_mib, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    region_name=os.environ["S3_REGION"],
    aws_access_key_id=os.environ["S3_ACCESS_KEY"],
    aws_secret_access_key=os.environ["S3_SECRET_KEY"],
    config=Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=threads * 2,
    ),
)
tc = TransferConfig(
    multipart_threshold=part_mib * 1024 * 1024,
    multipart_chunksize=part_mib * 1024 * 1024,
    max_concurrency=threads,
    use_threads=True,
)
s3.list_buckets()  # connect and warm up outside the timed part
t0, c0 = time.monotonic(), time.process_time()
if op == "upload":
    s3.upload_file(path, os.environ["S3_BUCKET"], key, Config=tc)
else:
    s3.download_file(os.environ["S3_BUCKET"], key, path, Config=tc)
print(f"{time.monotonic() - t0:.6f} {time.process_time() - c0:.3f}")
PY
}

# curl signs with SigV4 itself; Garage and the local store both need the payload-hash header.
s3curl() {
    curl -sS -f --aws-sigv4 "aws:amz:${S3_REGION}:s3" --user "${S3_ACCESS_KEY}:${S3_SECRET_KEY}" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# Credentials in 0600 netrc files, not on command lines.
write_netrcs() {
    (umask 077
     printf 'machine 127.0.0.1 login %s/%s password %s\n' \
         "$S3_ACCESS_KEY" "$S3_BUCKET" "$S3_SECRET_KEY" >"$WORK/netrc.gateway"
     printf 'machine 127.0.0.1 login bench password %s\n' "${rclone_pass:-}" >"$WORK/netrc.rclone")
}

# xfer PATH upload|download FILE KEY -> "SECONDS CLIENT_CPU_SECONDS"
xfer() {
    local path=$1 op=$2 file=$3 key=$4 t0 t1 url
    local -a cmd
    case $path in
        boto3) boto3_secs "$op" "$file" "$key"; return ;;
        curl) cmd=(s3curl); url="$S3_ENDPOINT/$S3_BUCKET/$key" ;;
        gateway) cmd=(curl -sS --netrc-file "$WORK/netrc.gateway"); url="ftp://127.0.0.1:$gateway_port/$key" ;;
        rclone) cmd=(curl -sS --netrc-file "$WORK/netrc.rclone"); url="ftp://127.0.0.1:$rclone_port/$key" ;;
    esac
    if [[ $op == upload ]]; then cmd+=(-T "$file"); else cmd+=(-o "$file"); fi
    t0=$(now)
    "${cmd[@]}" "$url"
    t1=$(now)
    local f="$WORK/cpu.$BASHPID"
    child_cpu >"$f"
    awk -v a="$t0" -v b="$t1" -v c="$(cat "$f")" 'BEGIN { printf "%.6f %s\n", b - a, c }'
    rm -f "$f"
}

# server_pids PATH -> the server processes a transfer on PATH runs through (each once)
server_pids() {
    local -a p=("$store_pid")
    case $1 in
        gateway) [[ "$gateway_pid" != "$store_pid" ]] && p+=("$gateway_pid") ;;
        rclone) p+=("$rclone_pid") ;;
    esac
    echo "${p[@]}"
}

# measure STORE PATH OP FILE KEY: one transfer; appends MB/s and CPU figures to the results.
measure() {
    local store=$1 path=$2 op=$3 dir r secs cpu t0 t1
    local -a servers
    read -r -a servers <<<"$(server_pids "$path")"
    dir=$([[ $op == upload ]] && echo up || echo down)
    r="$WORK/res.$store.$path.$dir"
    t0=$(ticks "${servers[@]}")
    read -r secs cpu < <(xfer "$path" "$op" "$4" "$5") || return 1
    [[ -n "$cpu" ]] || return 1
    t1=$(ticks "${servers[@]}")
    mbps "$BYTES" "$secs" >>"$r"
    awk -v c="$cpu" -v b="$BYTES" 'BEGIN { printf "%.3f\n", c * 1073741824 / b }' >>"$r.client"
    awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v b="$BYTES" \
        'BEGIN { printf "%.3f\n", t / hz * 1073741824 / b }' >>"$r.servers"
    awk -v c="$cpu" -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$secs" \
        'BEGIN { printf "%.3f\n", (c + t / hz) / s }' >>"$r.cores"
}

# round STORE PATH: upload, download, compare, delete; appends MB/s to the result files.
round() {
    local store=$1 path=$2 key="$2.bin"
    measure "$store" "$path" upload "$WORK/data.bin" "$key" || die "$store/$path: upload failed"
    measure "$store" "$path" download "$WORK/out.bin" "$key" || die "$store/$path: download failed"
    cmp -s "$WORK/data.bin" "$WORK/out.bin" || die "$store/$path: download differs from upload"
    rm -f "$WORK/out.bin"
    s3curl -X DELETE -o /dev/null "$S3_ENDPOINT/$S3_BUCKET/$key" || die "$store/$path: delete failed"
}

# profile STORE: PROFILE=1's sampled transfers (see the header).
profile() {
    local store=$1 path op data
    command -v perf >/dev/null || { echo "profile: no perf on PATH (apt-get install linux-perf)"; return 0; }
    for path in curl gateway; do
        [[ " ${paths[*]} " == *" $path "* ]] || continue
        for op in upload download; do
            data="$WORK/perf.$store.$path.$op.data"
            perf record -q -e cpu-clock -F 499 -a -g -o "$data" 2>/dev/null &
            local perf_pid=$!
            sleep 1 # perf attaches to every CPU before the transfer starts
            if [[ $op == upload ]]; then
                xfer "$path" upload "$WORK/data.bin" "profile.bin" >/dev/null
            else
                xfer "$path" download "$WORK/out.bin" "profile.bin" >/dev/null
            fi
            kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
            echo "profile $store, $path $op: share of all CPU samples by process and object (top 12)"
            # sed reads to the end (no `head`): an early exit would be SIGPIPE under pipefail
            perf report -i "$data" --no-children -g none --sort comm,dso --stdio 2>/dev/null \
                | grep -E '^ +[0-9.]+%' | sed -n '1,12s/^/    /p' || true
            if [[ $path == gateway ]]; then
                echo "  the gateway's hottest functions (share of all samples, top 12)"
                perf report -i "$data" --no-children -g none --comms bucketftp-io,bucketftp-serve \
                    --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -n '1,12s/^/    /p' || true
            fi
            rm -f "$data"
        done
        rm -f "$WORK/out.bin"
        s3curl -X DELETE -o /dev/null "$S3_ENDPOINT/$S3_BUCKET/profile.bin" || true
    done
}

# --- Report ------------------------------------------------------------------------------
declare -A label=(
    [boto3]="boto3, ${PART_MIB} MiB parts x ${PARTS_IN_FLIGHT}"
    [curl]="curl, one signed stream (raw S3)"
    [gateway]="gateway, curl ftp://"
    [rclone]="rclone serve ftp, curl ftp://"
)
ratio_line() { # ratio_line RESULTS_PREFIX PATH_A PATH_B TEXT: ratio of the medians A/B
    local r=$1
    printf '%-40s %-24s %s\n' "$4" "$(ratio "$(median "$r.$2.up")" "$(median "$r.$3.up")")" \
        "$(ratio "$(median "$r.$2.down")" "$(median "$r.$3.down")")"
}
# cpu_cell RESULTS_FILE -> "client + servers = total CPU-s/GiB, cores busy" (medians)
cpu_cell() {
    local c s t k
    c=$(median "$1.client")
    s=$(median "$1.servers")
    k=$(median "$1.cores")
    t=$(awk -v a="$c" -v b="$s" 'BEGIN { printf "%.1f", a + b }')
    printf '%s + %s = %s (%s cores)' "$c" "$s" "$t" "$k"
}
cpu_total() { awk -v a="$(median "$1.client")" -v b="$(median "$1.servers")" 'BEGIN { print a + b }'; }
cpu_report() { # cpu_report STORE
    local store=$1 path r="$WORK/res.$1"
    printf '\nCPU seconds per GiB, client + servers = total (cores busy), medians; servers: %s\n' \
        "$([[ $store == local ]] && echo "the gateway process with its embedded store" ||
            echo "the store, plus the gateway or rclone")"
    printf '%-40s %-30s %s\n' path upload download
    for path in "${paths[@]}"; do
        printf '%-40s %-30s %s\n' "${label[$path]}" "$(cpu_cell "$r.$path.up")" "$(cpu_cell "$r.$path.down")"
    done
    if [[ " ${paths[*]} " == *" gateway "* ]]; then
        printf '%-40s %-30s %s\n' "CPU-bound ceiling of gateway/raw curl" \
            "$(ratio "$(cpu_total "$r.curl.up")" "$(cpu_total "$r.gateway.up")")" \
            "$(ratio "$(cpu_total "$r.curl.down")" "$(cpu_total "$r.gateway.down")")"
    fi
}
report() { # report STORE
    local store=$1 path up down r="$WORK/res.$1"
    printf '\n== %s: %s MiB x %s rounds; MB/s median (min-max)\n' "$store" "$SIZE_MIB" "$ROUNDS"
    printf '%-40s %-24s %s\n' path upload download
    for path in "${paths[@]}"; do
        read -r up lo hi < <(stats "$r.$path.up"); up="$up ($lo-$hi)"
        read -r down lo hi < <(stats "$r.$path.down"); down="$down ($lo-$hi)"
        printf '%-40s %-24s %s\n' "${label[$path]}" "$up" "$down"
    done
    if [[ " ${paths[*]} " == *" gateway "* ]]; then
        ratio_line "$r" gateway curl "ratio gateway/raw curl (target >= 0.95)"
        ratio_line "$r" gateway boto3 "ratio gateway/boto3"
    fi
    [[ " ${paths[*]} " == *" rclone "* ]] && ratio_line "$r" rclone curl "ratio rclone/raw curl"
    if [[ -n "${gateway_pid:-}" ]]; then
        local hwm
        hwm="$(hwm_mib "$gateway_pid")"
        printf '%-40s %s MiB%s; at rest %s MiB; peak - rest = %s MiB\n' "gateway peak RSS (VmHWM)" \
            "$hwm" "$([[ $store == local ]] && echo ", embedded store included (it serves the direct paths too)")" \
            "$gateway_rest_mib" $((hwm - gateway_rest_mib))
        printf '%-40s %s MiB = part %s MiB x (%s parts in flight + 1) + download chunks %s MiB x %s (peak - rest stays within it)\n' \
            "part-size bound (buffered bytes)" $((PART_MIB * (PARTS_IN_FLIGHT + 1) + DOWNLOAD_CHUNK_MIB * DOWNLOAD_CHUNKS)) \
            "$PART_MIB" "$PARTS_IN_FLIGHT" "$DOWNLOAD_CHUNK_MIB" "$DOWNLOAD_CHUNKS"
    fi
    [[ -n "${rclone_pid:-}" ]] && printf '%-40s %s MiB\n' "rclone peak RSS (VmHWM)" "$(hwm_mib "$rclone_pid")"
    cpu_report "$store"
    [[ -n "${rclone_note:-}" ]] && echo "$rclone_note"
    return 0
}

# --- Run ---------------------------------------------------------------------------------
echo "writing ${SIZE_MIB} MiB of random data" >&2
head -c "$BYTES" /dev/urandom >"$WORK/data.bin"
echo "size ${SIZE_MIB} MiB (${BYTES} bytes), ${ROUNDS} rounds, 1 MB = 10^6 bytes"

IFS=, read -r -a stores <<<"$STORES"
for store in "${stores[@]}"; do
    gateway_pid="" rclone_pid="" rclone_pass=""
    case $store in
        garage) start_garage; store_pid="$GARAGE_PID" ;;
        local) start_local; store_pid="$gateway_pid" ;;
        *) die "unknown store '$store' (STORES: garage,local)" ;;
    esac
    [[ " ${paths[*]} " == *" rclone "* ]] && start_rclone
    write_netrcs
    for n in $(seq "$ROUNDS"); do
        echo "$store: round $n/$ROUNDS" >&2
        for path in "${paths[@]}"; do round "$store" "$path"; done
    done
    report "$store"
    [[ "${PROFILE:-}" == 1 ]] && profile "$store"
    stop_all
    rm -rf "$WORK/gateway-data" "$WORK/local-store" "$WORK/s3.env"
done
