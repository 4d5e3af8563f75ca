#!/usr/bin/env bash
# Build the C matching core with AddressSanitizer + UndefinedBehaviorSanitizer into a
# separate directory and run the C-vs-Python equivalence tests (and the wrapper's unit
# tests) against that build. Fails on a test failure or on any sanitizer report.
#
# The interpreter is not instrumented, so libasan is LD_PRELOADed; leak detection is off
# (the interpreter itself "leaks" at exit). VMSCHED_CORE_LIB makes vmsched._core load the
# sanitized module instead of the in-tree one.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
OUT=${SANITIZE_BUILD_DIR:-build/sanitize}
LOGDIR=$(mktemp -d -t vmsched-sanitize.XXXXXX)
LOG="$LOGDIR/pytest.log"
trap 'rm -rf "$LOGDIR"' EXIT

rm -rf "$OUT"
SO=$("$PY" csrc/build_core.py --sanitize "$OUT" | tail -n 1)
[ -f "$SO" ] || { echo "sanitize: build produced no module ($SO)" >&2; exit 1; }

LIBASAN=$(${CC:-gcc} -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize: libasan.so not found (gcc -print-file-name)" >&2; exit 1; }

echo "sanitize: testing $SO with $LIBASAN"
set +e
env LD_PRELOAD="$LIBASAN" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=99:log_path=$LOGDIR/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98:log_path=$LOGDIR/ubsan" \
    VMSCHED_CORE_LIB="$SO" VMSCHED_REQUIRE_C=1 VMSCHED_FAST_EQUIV=1 \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_core_equivalence.py tests/test_core_unit.py \
    2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e

# reports go to files (pytest captures the test's stderr and a halting sanitizer loses it)
reports=$(find "$LOGDIR" -name 'asan*' -o -name 'ubsan*')
if [ -n "$reports" ] || grep -E -q "runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$LOG"; then
    for f in $reports; do echo "== $f" >&2; cat "$f" >&2; done
    echo "sanitize: sanitizer report above" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "sanitize: tests failed (exit $rc)" >&2
    exit "$rc"
fi
echo "sanitize: clean"
