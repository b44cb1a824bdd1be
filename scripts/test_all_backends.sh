#!/usr/bin/env bash
# Runs the test suite once per Keras backend, each in its own pytest run
# (KERAS_BACKEND is fixed per process). Test files are shared out among
# KERAS_CLIP_TEST_PROCESSES pytest-xdist workers (default 2, one per core on
# the project's CI machine; 1 runs in one process), a whole file per worker.
# Extra arguments go to pytest, e.g. `bash scripts/test_all_backends.sh -m large`.
# Each run lists its 20 slowest tests.
set -uo pipefail
cd "$(dirname "$0")/.."
processes=${KERAS_CLIP_TEST_PROCESSES:-2}
parallel=()
if [ "$processes" -gt 1 ]; then parallel=(-n "$processes" --dist loadfile); fi
status=0
for backend in tensorflow jax torch; do
    echo "=== KERAS_BACKEND=$backend ==="
    KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=20 \
        "${parallel[@]}" "$@"
    code=$?
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then status=$code; fi
done
exit $status
