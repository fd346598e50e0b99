#!/usr/bin/env bash
# scripts/test.sh — BucketFTP's one test command (the README's "how to test").
# Runs every Rust test of the workspace (`cargo test --workspace --no-fail-fast`: unit tests,
# doc tests, and the gateway's end-to-end tests against every store: the embedded local store,
# Garage and moto, chosen by BUCKETFTP_TEST_STORES, which defaults to all three here and to
# the local store alone in a bare `cargo test`), then the system
# test tests/system/ftp_clients.py (ftplib, curl and lftp against the built bucketftp-server,
# in local mode and against Garage), then the cluster test tests/cluster/cluster_test.py (three
# bucketftp-server instances behind HAProxy on a 3-node Garage cluster, a gateway and a Garage
# node killed under load), then the real FileZilla GUI against it under Xvfb
# (scripts/test-filezilla.sh), then the Windows builds under Wine (scripts/test-windows.sh:
# bucketftp-server.exe and the tray app bucketftp.exe for x86_64-pc-windows-gnu; the same FTP
# clients, --config, the commit gate's cancel trials; the tray's icon, single instance,
# command table, Credential Manager and start at login), then the packages: scripts/package.sh
# (release build, .deb/.rpm/.tar.gz in target/dist) and the clean-root install test
# tests/install/install_test.sh (Debian 12 root made by mmdebstrap), then the desktop app's
# real-parts tests on that release app (scripts/test-desktop.sh --no-unit: Secret Service
# keychain, WebDriver e2e, tray).
# Runs scripts/install-test-deps.sh first (each step is skipped when already done), so it
# works on a fresh machine.
# Exits non-zero on any failure; the last line is always `N passed, N failed`.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
LOG_DIR="$(mktemp -d -t bucketftp-test-XXXXXX)"
trap 'rm -rf "$LOG_DIR"' EXIT

passed=0
failed=0

# tally NAME LOG RC: adds the `N passed, N failed` line of LOG to the totals; a run that
# exited non-zero without a failure, or printed no such line, counts as one failure.
tally() {
    local name="$1" log="$2" rc="$3" summary p f
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
    if [[ -z "$summary" ]]; then
        echo "$name exited with $rc without a summary line"
        failed=$((failed + 1))
        return
    fi
    p="${summary%% passed*}"
    f="${summary#*, }"
    f="${f%% failed*}"
    passed=$((passed + p))
    failed=$((failed + f))
    if ((rc != 0 && f == 0)); then failed=$((failed + 1)); fi
}

echo "==> scripts/install-test-deps.sh"
scripts/install-test-deps.sh || { echo "installing the test dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

# --- Rust tests --------------------------------------------------------------------------
# The stores of the gateway's end-to-end tests (gateway/tests/support): a selected store that
# cannot start fails its tests; a test whose store is not selected is reported as ignored, with the reason.
default_stores="local,garage,moto"
stores="${BUCKETFTP_TEST_STORES:-$default_stores}"
echo "==> BUCKETFTP_TEST_STORES=$stores cargo test --workspace"
BUCKETFTP_TEST_STORES="$stores" cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo.log"
cargo_rc=${PIPESTATUS[0]}
not_run="$(grep -c ' \.\.\. ignored, store .* not selected' "$LOG_DIR/cargo.log")"
echo "tests skipped (reported as ignored) for a store that is not selected: $not_run"
all_selected=0
case ",${stores,,}," in
    *,all,*) all_selected=1 ;;
    *,local,*) case ",${stores,,}," in *,garage,*) case ",${stores,,}," in *,moto,*) all_selected=1 ;; esac ;; esac ;;
esac
if ((all_selected)) && ((not_run > 0)); then
    # With every store selected, every test must have run on its store.
    echo "every store was selected, yet $not_run tests did not run"
    failed=$((failed + 1))
fi
# Lines like: "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ..."
read -r c_pass c_fail < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' \
    "$LOG_DIR/cargo.log" | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=$((passed + c_pass))
failed=$((failed + c_fail))
if ((cargo_rc != 0 && c_fail == 0)); then
    # A build error or a test binary that died without a summary line.
    echo "cargo test exited with $cargo_rc without reporting a failed test (build error or crash)"
    failed=$((failed + 1))
fi

# --- Suites on the bucketftp-server debug build ------------------------------------------
# suite NAME COMMAND...: runs COMMAND (tee'd to a log) and tallies its summary line; when the
# server did not build, the suite counts as one failure instead of running.
server_built=0
suite() {
    local name="$1" log
    shift
    if ((!server_built)); then
        echo "bucketftp-server does not build: $name not run"
        failed=$((failed + 1))
        return
    fi
    log="$LOG_DIR/${name// /-}.log"
    echo "==> $*"
    "$@" 2>&1 | tee "$log"
    tally "$name" "$log" "${PIPESTATUS[0]}"
}

echo "==> cargo build -p gateway --bin bucketftp-server"
cargo build -p gateway --bin bucketftp-server && server_built=1
target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$target_dir" == /* ]] || target_dir="$REPO/$target_dir"

# ftplib, curl and lftp against the server in local mode and against Garage.
suite "system test" python3 tests/system/ftp_clients.py
# Three instances of the server behind HAProxy on a 3-node Garage cluster.
suite "cluster test" python3 tests/cluster/cluster_test.py
# The real FileZilla GUI under Xvfb against the server.
suite "FileZilla test" env BUCKETFTP_SERVER="${BUCKETFTP_SERVER:-$target_dir/debug/bucketftp-server}" \
    scripts/test-filezilla.sh
# The Windows builds of the server and the tray app (and their Wine fixtures) under Wine.
suite "Windows test" scripts/test-windows.sh

# --- Packages and the clean-root install test ------------------------------------------
echo "==> scripts/package.sh"
release_app=""
if scripts/package.sh 2>&1 | tee "$LOG_DIR/package.log"; then
    release_app="$target_dir/release/bucketftp"
    echo "==> tests/install/install_test.sh"
    tests/install/install_test.sh 2>&1 | tee "$LOG_DIR/install.log"
    tally "install test" "$LOG_DIR/install.log" "${PIPESTATUS[0]}"
else
    echo "scripts/package.sh failed: install test not run"
    failed=$((failed + 1))
fi

# --- Desktop app ---------------------------------------------------------------------------
# The release app package.sh built (what users run) when there is one: no second, debug
# build of the app; otherwise test-desktop.sh builds the debug app itself.
echo "==> scripts/test-desktop.sh --no-unit (the cargo test above ran its unit tests)"
BUCKETFTP_APP="$release_app" scripts/test-desktop.sh --no-unit 2>&1 | tee "$LOG_DIR/desktop.log"
tally "desktop test" "$LOG_DIR/desktop.log" "${PIPESTATUS[0]}"

echo
echo "${passed} passed, ${failed} failed"
((failed == 0))
