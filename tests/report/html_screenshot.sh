#!/usr/bin/env bash
# Opens moesim's HTML pages (a run report and a sweep summary) in headless Chromium and
# checks that they load without console errors, that the DOM holds every chart, and that a
# screenshot shows the charts (pixels, not only the file): tests/report/html_png_check.py.
# Needs Debian's chromium package (tools/setup.sh installs it); fails, saying so, without it.
# Environment: MOESIM (the executable), MOESIM_SOURCE (the source tree).
set -u
chromium_bin=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium_bin" ]; then
  echo "html_screenshot: FAILED: chromium not found; install Debian's chromium package (tools/setup.sh does)"
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
  echo "html_screenshot: FAILED: $*"
  failed=1
}

cat >"$work/scenario.json" <<JSON
{"name": "screenshot <check>", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
 "deployment": {"parallel": {"attention_dp": 8, "expert_ep": 8}},
 "workload": {"kind": "closed_loop", "concurrency": 16, "input_tokens": 512, "output_tokens": 64, "requests": 256},
 "router": {"kind": "zipf", "exponent": 1.0}, "capacity": {"policy": "drop", "capacity_factor": 1.25},
 "outputs": {"timeseries_window_s": 0.25}}
JSON
"$MOESIM" run "$work/scenario.json" --quiet --reproducible --report "$work/run.json" || fail "moesim run"
"$MOESIM" report "$work/run.json" --html "$work/run.html" --quiet || fail "moesim report (run)"
"$MOESIM" sweep "$work/scenario.json" --vary router.exponent=0.5,1.0,1.5 --vary capacity.capacity_factor=1.0:2.0:0.5 \
  --set workload.requests=64 --out "$work/sweep" --jobs 1 --quiet || fail "moesim sweep"
"$MOESIM" report "$work/sweep" --html "$work/sweep.html" --quiet || fail "moesim report (sweep)"

# Chromium in headless mode; its own profile directory keeps runs independent. The page
# is laid out 1200 CSS px wide and captured at half scale, which keeps the PNG check fast.
browse() {  # browse LOG ARGS...
  local log=$1
  shift
  timeout 60 "$chromium_bin" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --enable-logging=stderr --v=0 "$@" 2>"$log"
}
check_console() {  # check_console LOG PAGE
  # Every console message (errors of malformed SVG attributes included) is a failure: the pages log nothing.
  if grep -E ":CONSOLE|Uncaught" "$1" >/dev/null; then
    fail "$2: console messages: $(grep -E ':CONSOLE|Uncaught' "$1" | head -3)"
  fi
}

for page in run sweep; do
  browse "$work/$page.screenshot.log" --force-device-scale-factor=0.5 --window-size=1200,3000 \
    --screenshot="$work/$page.png" "file://$work/$page.html" >/dev/null
  [ -s "$work/$page.png" ] || fail "$page: chromium wrote no screenshot: $(tail -3 "$work/$page.screenshot.log")"
  check_console "$work/$page.screenshot.log" "$page"
  python3 "$MOESIM_SOURCE/tests/report/html_png_check.py" "$page" "$work/$page.png" || fail "$page: pixels"
done

browse "$work/run.dom.log" --dump-dom "file://$work/run.html" >"$work/run.dom.html"
check_console "$work/run.dom.log" "run (DOM)"
for chart in busy-time latency-cdf throughput requests queue step-time drop-rate-time imbalance-time \
  imbalance-layer drop-rate-layer rank-load rank-straggler expert-heat-map; do
  grep -q "data-chart=\"$chart\"" "$work/run.dom.html" || fail "run: the DOM has no chart $chart"
done
grep -q "screenshot &lt;check&gt;" "$work/run.dom.html" || fail "run: the scenario name is not shown as escaped text"

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "html_screenshot: ok"
