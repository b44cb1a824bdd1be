#!/usr/bin/env bash
# Runs the test suite once per Keras backend, each in its own process
# (KERAS_BACKEND is fixed per process). Extra arguments go to pytest,
# e.g. `bash scripts/test_all_backends.sh -m large`. Each backend lists its 20 slowest tests.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for backend in tensorflow jax torch; do
    echo "=== KERAS_BACKEND=$backend ==="
    KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=20 "$@"
    code=$?
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then status=$code; fi
done
exit $status
