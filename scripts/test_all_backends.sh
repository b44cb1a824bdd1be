#!/usr/bin/env bash
# Runs the test suite once per Keras backend, each in its own processes
# (KERAS_BACKEND is fixed per process). Without arguments, each backend's test
# files are split between KERAS_CLIP_TEST_PROCESSES pytest processes (default
# 2, one per core on the project's CI machine) that run side by side; their
# outputs are printed one after the other. Arguments go to one pytest process,
# e.g. `bash scripts/test_all_backends.sh -m large` or `... tests/test_layers.py`.
# Each run lists its 20 slowest tests.
set -uo pipefail
cd "$(dirname "$0")/.."
processes=${KERAS_CLIP_TEST_PROCESSES:-2}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
files=(tests/test_*.py)
status=0

record() {  # pytest's exit code 5 means "no tests collected": not a failure
    if [ "$1" -ne 0 ] && [ "$1" -ne 5 ]; then status=$1; fi
}

for backend in tensorflow jax torch; do
    echo "=== KERAS_BACKEND=$backend ==="
    if [ "$#" -gt 0 ] || [ "$processes" -le 1 ]; then
        KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=20 "$@"
        record $?
        continue
    fi
    pids=()
    for ((part = 0; part < processes; part++)); do
        share=()
        for i in "${!files[@]}"; do
            if [ $((i % processes)) -eq "$part" ]; then share+=("${files[$i]}"); fi
        done
        KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=20 \
            "${share[@]}" > "$logs/$backend.$part.log" 2>&1 &
        pids+=($!)
    done
    for ((part = 0; part < processes; part++)); do
        wait "${pids[$part]}"
        code=$?
        echo "--- $backend, part $((part + 1)) of $processes (exit $code) ---"
        cat "$logs/$backend.$part.log"
        record $code
    done
done
exit $status
