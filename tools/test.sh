#!/usr/bin/env bash
# Sets up and builds moesim (tools/setup.sh), then runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
ctest --test-dir "${MOESIM_BUILD_DIR:-build}" --output-on-failure -j "${MOESIM_JOBS:-2}"
