#!/usr/bin/env bash
# tests/cli_bench.sh REEL - `reel bench` runs and prints its figures (a smoke run on small
# shapes with no minimum time: this checks that the benchmarks work, it times nothing).
set -u
REEL=${1:?usage: cli_bench.sh PATH/TO/reel}
pass=0
fail=0
check() {   # check PATTERN -- ARGS...: reel ARGS exits 0 and prints a line matching PATTERN
    local pattern=$1
    shift 2
    local out
    out=$("$REEL" "$@" 2>&1)
    local rc=$?
    if [ $rc -eq 0 ] && grep -Eq -- "$pattern" <<<"$out"; then
        echo "  ok   reel $*: $(grep -E -- "$pattern" <<<"$out" | head -1 | tr -s ' ')"
        pass=$((pass + 1))
    else
        echo "  FAIL reel $*: exit $rc, no line matching /$pattern/:"
        sed 's/^/       | /' <<<"$out" | head -20
        fail=$((fail + 1))
    fi
}
check "attention \(temporal\).*GFLOP/s.*% of sgemm" -- bench ops --quick --min-time 0 --threads 2
check "clips/s"                                     -- bench shapes --min-time 0 --threads 2
check "step .*[0-9] s \(median"                                -- bench unet --model tests/fixtures/models/tiny_a --frames 4 --steps 1 --min-time 0 --threads 2
if "$REEL" bench nothing >/dev/null 2>&1; then
    echo "  FAIL reel bench nothing: exit 0"; fail=$((fail + 1))
else
    echo "  ok   reel bench nothing: refused"; pass=$((pass + 1))
fi
echo "cli_bench: $pass passed, $fail failed"
test $fail -eq 0
