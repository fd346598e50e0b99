#!/usr/bin/env bash
# scripts/test.sh — BucketFTP's one test command (the README's "how to test").
# Runs every Rust test of the workspace (`cargo test --workspace --no-fail-fast`: unit tests,
# doc tests, and the end-to-end tests against real Garage and moto servers), then the system
# test tests/system/ftp_clients.py (ftplib, curl and lftp against the built bucketftp-server,
# in local mode and against Garage), then the real FileZilla GUI against it under Xvfb
# (scripts/test-filezilla.sh), then the desktop app's real-parts tests
# (scripts/test-desktop.sh --no-unit: Secret Service keychain, WebDriver e2e, tray), then the
# packages: scripts/package.sh (release build, .deb/.rpm/.tar.gz in target/dist) and the
# clean-root install test tests/install/install_test.sh (Debian 12 root made by mmdebstrap).
# SKIP_PACKAGING=1 leaves the packages out (counted as neither passed nor failed).
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

echo "==> scripts/install-test-deps.sh"
scripts/install-test-deps.sh || { echo "installing the test dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

# --- Rust tests --------------------------------------------------------------------------
echo "==> cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo.log"
cargo_rc=${PIPESTATUS[0]}
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

# --- System test -------------------------------------------------------------------------
echo "==> cargo build -p gateway --bin bucketftp-server"
server_built=0
if cargo build -p gateway --bin bucketftp-server; then
    server_built=1
    echo "==> tests/system/ftp_clients.py"
    python3 tests/system/ftp_clients.py 2>&1 | tee "$LOG_DIR/system.log"
    sys_rc=${PIPESTATUS[0]}
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/system.log" | tail -n1)"
    if [[ -n "$summary" ]]; then
        s_pass="${summary%% passed*}"
        s_fail="${summary#*, }"
        s_fail="${s_fail%% failed*}"
        passed=$((passed + s_pass))
        failed=$((failed + s_fail))
        if ((sys_rc != 0 && s_fail == 0)); then failed=$((failed + 1)); fi
    else
        echo "system test exited with $sys_rc without a summary line"
        failed=$((failed + 1))
    fi
else
    echo "bucketftp-server does not build: system test not run"
    failed=$((failed + 1))
fi

# --- FileZilla ------------------------------------------------------------------------------
# The real FileZilla GUI under Xvfb against the bucketftp-server built above.
if ((server_built)); then
    target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
    [[ "$target_dir" == /* ]] || target_dir="$REPO/$target_dir"
    echo "==> scripts/test-filezilla.sh"
    BUCKETFTP_SERVER="${BUCKETFTP_SERVER:-$target_dir/debug/bucketftp-server}" scripts/test-filezilla.sh 2>&1 |
        tee "$LOG_DIR/filezilla.log"
    fz_rc=${PIPESTATUS[0]}
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/filezilla.log" | tail -n1)"
    if [[ -n "$summary" ]]; then
        f_pass="${summary%% passed*}"
        f_fail="${summary#*, }"
        f_fail="${f_fail%% failed*}"
        passed=$((passed + f_pass))
        failed=$((failed + f_fail))
        if ((fz_rc != 0 && f_fail == 0)); then failed=$((failed + 1)); fi
    else
        echo "FileZilla test exited with $fz_rc without a summary line"
        failed=$((failed + 1))
    fi
else
    echo "bucketftp-server does not build: FileZilla test not run"
    failed=$((failed + 1))
fi

# --- Desktop app ---------------------------------------------------------------------------
echo "==> scripts/test-desktop.sh --no-unit (the cargo test above ran its unit tests)"
scripts/test-desktop.sh --no-unit 2>&1 | tee "$LOG_DIR/desktop.log"
desk_rc=${PIPESTATUS[0]}
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/desktop.log" | tail -n1)"
if [[ -n "$summary" ]]; then
    d_pass="${summary%% passed*}"
    d_fail="${summary#*, }"
    d_fail="${d_fail%% failed*}"
    passed=$((passed + d_pass))
    failed=$((failed + d_fail))
    if ((desk_rc != 0 && d_fail == 0)); then failed=$((failed + 1)); fi
else
    echo "desktop test exited with $desk_rc without a summary line"
    failed=$((failed + 1))
fi

# --- Packages and the clean-root install test ------------------------------------------
if [[ "${SKIP_PACKAGING:-}" == 1 ]]; then
    echo "==> SKIP_PACKAGING=1: packages and install test not run"
else
    echo "==> scripts/package.sh"
    if scripts/package.sh 2>&1 | tee "$LOG_DIR/package.log"; then
        echo "==> tests/install/install_test.sh"
        tests/install/install_test.sh 2>&1 | tee "$LOG_DIR/install.log"
        inst_rc=${PIPESTATUS[0]}
        summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/install.log" | tail -n1)"
        if [[ -n "$summary" ]]; then
            i_pass="${summary%% passed*}"
            i_fail="${summary#*, }"
            i_fail="${i_fail%% failed*}"
            passed=$((passed + i_pass))
            failed=$((failed + i_fail))
            if ((inst_rc != 0 && i_fail == 0)); then failed=$((failed + 1)); fi
        else
            echo "install test exited with $inst_rc without a summary line"
            failed=$((failed + 1))
        fi
    else
        echo "scripts/package.sh failed: install test not run"
        failed=$((failed + 1))
    fi
fi

echo
echo "${passed} passed, ${failed} failed"
((failed == 0))
