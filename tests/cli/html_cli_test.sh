#!/usr/bin/env bash
# `moesim report --html` and `moesim run --chrome-trace` as a user runs them: exit codes,
# messages naming the file or option, no partial output. Prints "N passed, M failed".
set -u
source "$(dirname "$0")/harness.sh"
absent() {  # absent NAME FILE: a failed command left nothing behind
  check "$1" 0 "" -- bash -c "! ls -a '$(dirname "$2")' | grep -q '$(basename "$2")'"
}

small="$work/small.json"
cat >"$small" <<JSON
{"name": "small", "model": "mixtral-8x7b", "cluster": "h100-8x1",
 "deployment": {"parallel": {"attention_tp": 8, "expert_ep": 8}},
 "workload": {"kind": "closed_loop", "concurrency": 8, "input_tokens": 512, "output_tokens": 16, "requests": 64},
 "router": {"kind": "zipf", "exponent": 1.0}, "capacity": {"capacity_factor": 1.0, "policy": "drop"}}
JSON
"$MOESIM" run "$small" --quiet --reproducible --report "$work/report.json"

check "report --html writes a page" 0 "html +$work/page.html" -- "$MOESIM" report "$work/report.json" --html "$work/page.html"
check "the page is HTML with the charts" 0 "" -- grep -q 'data-chart="expert-heat-map"' "$work/page.html"
check "report --quiet prints nothing" 0 "^$" -- "$MOESIM" report "$work/report.json" --html "$work/page2.html" --quiet
check "the page depends only on the report" 0 "" -- cmp "$work/page.html" "$work/page2.html"
"$MOESIM" sweep "$small" --vary capacity.capacity_factor=1.0,2.0 --out "$work/sweep" --quiet
check "a sweep directory" 0 "html" -- "$MOESIM" report "$work/sweep" --html "$work/sweep.html"
check "a sweep summary file" 0 "html" -- "$MOESIM" report "$work/sweep/summary.json" --html "$work/sweep2.html"
check "the sweep page has the curves" 0 "" -- grep -q 'data-chart="sweep-drop_rate"' "$work/sweep.html"

check "a scenario is not a report" 2 "small.json: expected a moesim report .* or a sweep summary" -- \
  "$MOESIM" report "$small" --html "$work/bad1.html"
absent "no page after a rejected input" "$work/bad1.html"
head -c 300 "$work/report.json" >"$work/truncated.json"
check "truncated report" 2 "truncated.json: line [0-9]+, column [0-9]+" -- \
  "$MOESIM" report "$work/truncated.json" --html "$work/bad2.html"
absent "no page after a truncated report" "$work/bad2.html"
: >"$work/empty.json"
check "empty report" 2 "empty.json" -- "$MOESIM" report "$work/empty.json" --html "$work/bad3.html"
check "missing report" 2 "none.json: cannot open" -- "$MOESIM" report "$work/none.json" --html "$work/bad4.html"
python3 -c "
import json
r = json.load(open('$work/report.json'))
r['summary']['ttft_s']['p99'] = 'x'
json.dump(r, open('$work/wrong_type.json', 'w'))"
check "a mistyped field" 2 "wrong_type.json: summary.ttft_s.p99: expected a finite number" -- \
  "$MOESIM" report "$work/wrong_type.json" --html "$work/bad5.html"
absent "no page after a mistyped field" "$work/bad5.html"
check "--html is required" 2 "html" -- "$MOESIM" report "$work/report.json"

check "run --chrome-trace" 0 "trace +$work/trace.json \([0-9]+ steps, [0-9]+ events\)" -- \
  "$MOESIM" run "$small" --report "$work/r2.json" --chrome-trace "$work/trace.json" --chrome-trace-duration 1
check "the trace is Trace Event Format JSON in the window" 0 "ok" -- python3 -c "
import json
t = json.load(open('$work/trace.json'))
x = [e for e in t['traceEvents'] if e['ph'] == 'X']
assert x and all(0 <= e['ts'] and e['ts'] + e['dur'] <= 1e6 + 1e-3 for e in x), 'events outside the window'
assert {'step', 'attention', 'dispatch', 'experts', 'combine'} <= {e['name'] for e in x}
print('ok')"
"$MOESIM" run "$small" --quiet --report "$work/r2b.json" --chrome-trace "$work/trace2b.json" --chrome-trace-duration 1
check "the same run gives the same trace" 0 "" -- cmp "$work/trace.json" "$work/trace2b.json"
check "a trace window later in the run" 0 "trace" -- "$MOESIM" run "$small" --report "$work/r3.json" \
  --chrome-trace "$work/trace3.json" --chrome-trace-start 0.5 --chrome-trace-duration 0.5
check "the event budget" 0 "stopped at --chrome-trace-max-events" -- "$MOESIM" run "$small" --report "$work/r4.json" \
  --chrome-trace "$work/trace4.json" --chrome-trace-max-events 500
check "a zero trace window" 2 "--chrome-trace-duration: expected" -- "$MOESIM" run "$small" \
  --report "$work/bad6.json" --chrome-trace "$work/bad6.trace.json" --chrome-trace-duration 0
absent "no report after a bad trace option" "$work/bad6.json"
absent "no trace after a bad trace option" "$work/bad6.trace.json"
check "a negative trace start" 2 "--chrome-trace-start: expected" -- "$MOESIM" run "$small" \
  --report "$work/bad7.json" --chrome-trace "$work/bad7.trace.json" --chrome-trace-start -1
check "a NaN trace start" 2 "--chrome-trace-start" -- "$MOESIM" run "$small" \
  --report "$work/bad8.json" --chrome-trace "$work/bad8.trace.json" --chrome-trace-start nan
check "a zero event budget" 2 "chrome-trace-max-events" -- "$MOESIM" run "$small" \
  --report "$work/bad9.json" --chrome-trace "$work/bad9.trace.json" --chrome-trace-max-events 0
check "a failed run leaves no trace" 2 "unknown key" -- "$MOESIM" run "$small" --set deployment.bogus=1 \
  --report "$work/bad10.json" --chrome-trace "$work/bad10.trace.json"
absent "no trace after a failed run" "$work/bad10.trace.json"

finish
