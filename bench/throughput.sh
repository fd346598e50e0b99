#!/usr/bin/env bash
# bench/throughput.sh — BucketFTP throughput benchmark (prints figures; asserts nothing).
# Starts a throw-away Garage (tests/system/s3servers.py), creates a bucket, starts the gateway
# in endpoint mode, then uploads and downloads one random file of SIZE_MIB MiB (default 512):
#   1a. directly to S3 with boto3 (.venv-test) — multipart, 8 MiB parts, 4 threads, like the
#       gateway's defaults (timed inside Python, so interpreter start-up is not counted)
#   1b. directly to S3 with curl --aws-sigv4 — one PUT / one GET stream, like one FTP transfer
#   2.  through the gateway with curl (ftp://127.0.0.1:PORT/)
# and prints MB/s (1 MB = 10^6 bytes) for each, the ratios gateway/direct and the gateway's peak
# RSS (VmHWM). Every download is checked byte for byte.
#
# Usage: bench/throughput.sh [SIZE_MIB]       env: SIZE_MIB, BUCKETFTP_BIN (default: builds and
#        uses target/release/bucketftp-server), BENCH_DIRECT_ONLY=1 (skip the gateway part).
# Needs scripts/install-test-deps.sh. Uses about 3 x SIZE_MIB of disk under $TMPDIR.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-${SIZE_MIB:-512}}"
PART_MIB=8
PARTS_IN_FLIGHT=4
VENV_PY="$REPO/.venv-test/bin/python"
BUCKET=bench

[[ -x "$VENV_PY" ]] || { echo "missing $VENV_PY: run scripts/install-test-deps.sh" >&2; exit 1; }

if [[ "${BENCH_DIRECT_ONLY:-}" != 1 ]]; then
    if [[ -z "${BUCKETFTP_BIN:-}" ]]; then
        echo "building the release gateway (cargo build --release -p gateway --bin bucketftp-server)" >&2
        (cd "$REPO" && cargo build --release -p gateway --bin bucketftp-server) >&2
        BUCKETFTP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/bucketftp-server"
    fi
    [[ -x "$BUCKETFTP_BIN" ]] || { echo "gateway binary not found: $BUCKETFTP_BIN" >&2; exit 1; }
fi

WORK="$(mktemp -d -t bucketftp-bench-XXXXXX)"
garage_helper_pid=""
gateway_pid=""
cleanup() {
    local pid
    for pid in "$gateway_pid" "$garage_helper_pid"; do
        if [[ -n "$pid" ]]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# mbps BYTES START END -> MB/s with one decimal
mbps() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { printf "%.1f", b / 1e6 / (e - s) }'; }
ratio() { awk -v g="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", g / d; else print "n/a" }'; }

# --- Garage ------------------------------------------------------------------------------
python3 "$REPO/tests/system/s3servers.py" garage --bucket "$BUCKET" --env-file "$WORK/s3.env" &
garage_helper_pid=$!
for _ in $(seq 300); do
    [[ -f "$WORK/s3.env" ]] && break
    kill -0 "$garage_helper_pid" 2>/dev/null || { echo "garage failed to start" >&2; exit 1; }
    sleep 0.1
done
[[ -f "$WORK/s3.env" ]] || { echo "garage not ready after 30 s" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/s3.env"
export S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET

# --- Test data ---------------------------------------------------------------------------
BYTES=$((SIZE_MIB * 1024 * 1024))
echo "writing ${SIZE_MIB} MiB of random data" >&2
head -c "$BYTES" /dev/urandom >"$WORK/data.bin"

# --- 1. Direct S3 (boto3) ----------------------------------------------------------------
s3direct() { # s3direct upload|download FILE KEY
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
t0 = time.monotonic()
if op == "upload":
    s3.upload_file(path, os.environ["S3_BUCKET"], key, Config=tc)
else:
    s3.download_file(os.environ["S3_BUCKET"], key, path, Config=tc)
print(f"{time.monotonic() - t0:.6f}")
PY
}

secs=$(s3direct upload "$WORK/data.bin" direct.bin)
boto_up=$(mbps "$BYTES" 0 "$secs")
secs=$(s3direct download "$WORK/direct.out" direct.bin)
boto_down=$(mbps "$BYTES" 0 "$secs")
cmp -s "$WORK/data.bin" "$WORK/direct.out" || { echo "boto3 download differs from upload" >&2; exit 1; }
rm -f "$WORK/direct.out"

# curl signs with SigV4 itself; Garage needs the payload-hash header.
s3curl() {
    curl -sS -f --aws-sigv4 "aws:amz:${S3_REGION}:s3" --user "${S3_ACCESS_KEY}:${S3_SECRET_KEY}" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
t0=$(now); s3curl -T "$WORK/data.bin" "$S3_ENDPOINT/$S3_BUCKET/curl.bin"; t1=$(now)
s3curl -o "$WORK/direct.out" "$S3_ENDPOINT/$S3_BUCKET/curl.bin"; t2=$(now)
cmp -s "$WORK/data.bin" "$WORK/direct.out" || { echo "curl S3 download differs from upload" >&2; exit 1; }
rm -f "$WORK/direct.out"
curl_up=$(mbps "$BYTES" "$t0" "$t1")
curl_down=$(mbps "$BYTES" "$t1" "$t2")

echo
echo "size:                                  ${SIZE_MIB} MiB (${BYTES} bytes), 1 MB = 10^6 bytes"
echo "direct S3, boto3 ${PART_MIB} MiB parts x ${PARTS_IN_FLIGHT}:      upload ${boto_up} MB/s, download ${boto_down} MB/s"
echo "direct S3, curl one stream:            upload ${curl_up} MB/s, download ${curl_down} MB/s"

if [[ "${BENCH_DIRECT_ONLY:-}" == 1 ]]; then
    exit 0
fi

# --- 2. Through the gateway (curl) -------------------------------------------------------
pasv=$((50000 + RANDOM % 90 * 100))
"$BUCKETFTP_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/gateway-data" --endpoint "$S3_ENDPOINT" --region "$S3_REGION" --path-style \
    --passive-ports "${pasv}-$((pasv + 100))" --part-size "${PART_MIB}MiB" \
    --parts-in-flight "$PARTS_IN_FLIGHT" --log-level warn \
    >"$WORK/gateway.stdout" 2>"$WORK/gateway.stderr" &
gateway_pid=$!
port=""
for _ in $(seq 300); do
    port="$(sed -n 's/.*BucketFTP listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/gateway.stdout" | head -n1)"
    [[ -n "$port" ]] && break
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$port" ]]; then
    echo "gateway did not start; stderr tail:" >&2
    tail -n 20 "$WORK/gateway.stderr" >&2
    exit 1
fi

# Credentials in a 0600 netrc, not on the command line.
(umask 077 && printf 'machine 127.0.0.1 login %s/%s password %s\n' \
    "$S3_ACCESS_KEY" "$S3_BUCKET" "$S3_SECRET_KEY" >"$WORK/netrc")
url="ftp://127.0.0.1:${port}/gateway.bin"

t0=$(now); curl -sS --netrc-file "$WORK/netrc" -T "$WORK/data.bin" "$url"; t1=$(now)
curl -sS --netrc-file "$WORK/netrc" -o "$WORK/gateway.out" "$url"; t2=$(now)
cmp -s "$WORK/data.bin" "$WORK/gateway.out" || { echo "gateway download differs from upload" >&2; exit 1; }
gw_up=$(mbps "$BYTES" "$t0" "$t1")
gw_down=$(mbps "$BYTES" "$t1" "$t2")
hwm_kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$gateway_pid/status")"

echo "gateway, curl ftp://:                  upload ${gw_up} MB/s, download ${gw_down} MB/s"
echo "ratio gateway/direct boto3:            upload $(ratio "$gw_up" "$boto_up"), download $(ratio "$gw_down" "$boto_down")"
echo "ratio gateway/direct curl:             upload $(ratio "$gw_up" "$curl_up"), download $(ratio "$gw_down" "$curl_down")"
echo "gateway peak RSS (VmHWM):              $((hwm_kib / 1024)) MiB"
