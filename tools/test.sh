#!/usr/bin/env bash
# tools/test.sh - the whole test suite, as CI runs it (.ci/run calls exactly this).
#   1. installs missing dependencies (tools/setup.sh --deps)
#   2. release build + every meson test suite (ops, io, models, pipeline, cli, shapes, fuzz corpus)
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build + the same suites
#   4. short libFuzzer runs of the fuzz targets (clang), seeded with the committed corpus
# Ends with the line "N passed, N failed" (meson tests across all builds, plus fuzz runs).
# Options: --quick (release suites only), REEL_FUZZ_SECONDS (default 20 per target).
set -uo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true
fuzz_seconds="${REEL_FUZZ_SECONDS:-20}"
jobs="$(nproc 2>/dev/null || echo 2)"

tools/setup.sh --deps || { echo "test: dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0

count() {   # count <build dir>: adds its meson test results to passed/failed
    local log="$1/meson-logs/testlog.json" p f
    if [ ! -f "$log" ]; then failed=$((failed + 1)); return; fi
    p=$(grep -c '"result": "OK"' "$log" || true)
    f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
    echo "test: $1: $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
}

run_build() {   # run_build <dir> <meson options...>
    local dir="$1"; shift
    rm -rf "$dir"
    if ! meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        echo "test: build $dir failed:"; tail -30 "$dir.setup.log" "$dir.build.log" 2>/dev/null
        failed=$((failed + 1))
        return 1
    fi
    rm -f "$dir.setup.log" "$dir.build.log"
    meson test -C "$dir" --num-processes "$jobs" --print-errorlogs >"$dir.test.log" 2>&1
    grep -E "^ *[0-9]+/[0-9]+ " "$dir.test.log" | sed 's/^/  /'
    grep -q -E "FAIL|TIMEOUT" "$dir.test.log" && sed -n '/^--- command ---/,/^------/p' "$dir.test.log" | tail -200
    count "$dir"
}

echo "== release build and tests"
run_build build-test --buildtype=release

if ! $quick; then
    echo "== sanitizers (address, undefined)"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    run_build build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

    if command -v clang >/dev/null; then
        echo "== libFuzzer, ${fuzz_seconds}s per target"
        rm -rf build-fuzz
        if CC=clang meson setup build-fuzz --buildtype=debugoptimized -Dfuzz=true -Db_sanitize=address,undefined \
                -Db_lundef=false -Dopenmp=disabled >build-fuzz.log 2>&1 && ninja -C build-fuzz >>build-fuzz.log 2>&1; then
            for fz in build-fuzz/tests/fuzz/fuzz_*; do
                [ -f "$fz" ] && [ -x "$fz" ] || continue
                name=$(basename "$fz")
                work=$(mktemp -d)
                cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
                if "$fz" -max_total_time="$fuzz_seconds" -max_len=65536 -timeout=10 "$work" >"build-fuzz/$name.log" 2>&1; then
                    echo "  fuzz $name: ok ($(grep -o 'Done [0-9]* runs' "build-fuzz/$name.log" | tail -1))"
                    passed=$((passed + 1))
                else
                    echo "  fuzz $name: FAILED"; tail -40 "build-fuzz/$name.log"
                    failed=$((failed + 1))
                fi
                rm -rf "$work"
            done
        else
            echo "test: fuzz build failed"; tail -30 build-fuzz.log; failed=$((failed + 1))
        fi
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
