#!/usr/bin/env bash
# Calibrates moesim's cost model on the GPU of this machine.
#   tools/calibrate_gpu.sh [--quick] OUTDIR [MOESIM_BINARY]
# Builds cuda_calibration/ on its own (CUDA toolkit, cmake; ninja if present), runs the suite
# (under 4 minutes on an H100) and writes OUTDIR/measurements.json. With a moesim binary (the
# argument, `moesim` on PATH, or build*/tools/moesim in this checkout) it also writes
# OUTDIR/profile.json (moesim calibrate fit) and OUTDIR/check.txt (moesim calibrate check).
set -euo pipefail

quick=()
if [[ "${1:-}" == "--quick" ]]; then
  quick=(--quick)
  shift
fi
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 [--quick] OUTDIR [MOESIM_BINARY]" >&2
  exit 2
fi
out="$1"
moesim="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOESIM_CALIBRATION_BUILD:-${TMPDIR:-/tmp}/moesim-calibration-build}"

mkdir -p "$out"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root/cuda_calibration" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" >/dev/null
"$build/moesim_calibrate_gpu" "${quick[@]}" -o "$out/measurements.json"

if [[ -z "$moesim" ]]; then
  if command -v moesim >/dev/null 2>&1; then
    moesim="$(command -v moesim)"
  else
    for candidate in "$root"/build*/tools/moesim; do
      if [[ -x "$candidate" ]]; then
        moesim="$candidate"
        break
      fi
    done
  fi
fi
if [[ -z "$moesim" ]]; then
  echo "no moesim binary found: measurements are in $out/measurements.json; on a machine with moesim run" >&2
  echo "  moesim calibrate fit $out/measurements.json -o $out/profile.json" >&2
  echo "  moesim calibrate check $out/profile.json $out/measurements.json > $out/check.txt" >&2
  exit 0
fi
"$moesim" calibrate fit "$out/measurements.json" -o "$out/profile.json"
"$moesim" calibrate check "$out/profile.json" "$out/measurements.json" | tee "$out/check.txt"
