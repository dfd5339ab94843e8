#!/usr/bin/env bash
# Full test run (what `make test` and CI do):
#   1. throwaway PostgreSQL (scripts/pg-test.sh), stopped on exit whatever happens
#   2. swift build (debug, with tests)
#   3. swift test with NIMBUS_TEST_POSTGRES_URL set
#   4. pytest tests/frontdoor against .build/debug/nimbus
# Steps 3 and 4 both run even if one fails; the exit code is non-zero if any step failed.
# Extra flags: SWIFT_TEST_FLAGS="--filter X" and PYTEST_FLAGS="-x" (word-split), or
# pytest arguments after the script name: scripts/test-all.sh -k "token and not revoke".
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

VENV="${VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/pytest" ]]; then
    echo "test-all: $VENV/bin/pytest missing; run 'make venv' first" >&2
    exit 1
fi

cleanup() {
    "$ROOT/scripts/pg-test.sh" stop || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> starting throwaway PostgreSQL"
PG_URL="$("$ROOT/scripts/pg-test.sh" start)"
echo "    $PG_URL"
export NIMBUS_TEST_POSTGRES_URL="$PG_URL"

echo "==> swift build (debug, with tests)"
swift build --build-tests

# The tiny guest, built once from Debian packages, for the guest boot tests and the real-VM
# front-door tests (both read NIMBUS_GUEST_DIR).
export NIMBUS_GUEST_DIR="${NIMBUS_GUEST_DIR:-$ROOT/.build/nimbus-guest}"
if [[ ! -f "$NIMBUS_GUEST_DIR/disk.qcow2" ]]; then
    echo "==> building the test guest into $NIMBUS_GUEST_DIR"
    "$ROOT/.build/debug/nimbus" guest-image build --out "$NIMBUS_GUEST_DIR"
fi

swift_rc=0
echo "==> swift test"
# shellcheck disable=SC2086
swift test --skip-build ${SWIFT_TEST_FLAGS:-} || swift_rc=$?
# The in-process API suites once more with PostgreSQL as every test cloud's database: the same
# code paths as `nimbus serve`.
echo "==> swift test (API suites on PostgreSQL)"
NIMBUS_TEST_ENGINE=postgres swift test --skip-build --filter "APITests|PlacementTests|ComputeTests|NetworkTests" || swift_rc=$?

py_rc=0
echo "==> front-door tests (pytest tests/frontdoor)"
export NIMBUS_BIN="${NIMBUS_BIN:-$ROOT/.build/debug/nimbus}"
# shellcheck disable=SC2086
"$VENV/bin/pytest" tests/frontdoor -v ${PYTEST_FLAGS:-} "$@" || py_rc=$?

# On success print nothing more: pytest's summary stays the closing line.
if (( swift_rc != 0 || py_rc != 0 )); then
    echo "==> test-all: FAILED (swift test exit $swift_rc, front-door exit $py_rc)" >&2
    exit 1
fi
