#!/usr/bin/env bash
# The gloo tests with several torchrun ranks, N times in a row (default 10), one process at a
# time: the proof that distributed runs start and end cleanly (docs/reliability.md).
# Prints one line a round and a tally; a round fails on any failed test or on a rank's abort
# ("terminate called", SIGABRT) anywhere in the output.
#   scripts/repeat-gloo.sh 10            # BUSY=1: another process keeps one core busy meanwhile
set -u
cd "$(dirname "$0")/.."
rounds=${1:-10}
tests=(tests/test_fsdp.py tests/test_teardown.py
       "tests/test_train.py::test_torchrun_with_uneven_data_finishes_with_one_coherent_session"
       "tests/test_trl.py::test_under_torchrun_rank_0_alone_owns_the_session")
busy=
if [ "${BUSY:-0}" = 1 ]; then
    .venv/bin/python -c "while True: pass" & busy=$!
    trap 'kill $busy' EXIT
fi
passed=0
start=$(date +%s)
for i in $(seq 1 "$rounds"); do
    t0=$(date +%s)
    log=$(.venv/bin/python -m pytest -q -p no:cacheprovider "${tests[@]}" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && ! grep -q "terminate called" <<<"$log"; then
        passed=$((passed + 1)); verdict=passed
    else
        verdict=FAILED; printf '%s\n' "$log" > "/tmp/repeat-gloo-round-$i.log"
    fi
    echo "round $i: $verdict in $(( $(date +%s) - t0 )) s ($(tail -1 <<<"$log"))"
done
echo "$passed of $rounds rounds passed in $(( $(date +%s) - start )) s"
[ "$passed" -eq "$rounds" ]
