#!/usr/bin/env bash
# `moesim plan` as a user runs it: exit codes, messages, the plan file and no partial
# output. Prints "N passed, M failed".
set -u
source "$(dirname "$0")/harness.sh"

small="$work/small.json"
cat >"$small" <<JSON
{"name": "small", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
 "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 1, "expert_ep": 1},
                "scheduler": {"max_sequences": 8, "max_batched_tokens": 2048}},
 "workload": {"kind": "poisson", "rate": 60, "requests": 300,
              "input": {"kind": "uniform", "min": 200, "max": 1200}, "output": {"kind": "uniform", "min": 16, "max": 64}},
 "router": {"kind": "zipf", "exponent": 1.0}, "capacity": {"policy": "drop", "capacity_factor": 1.0}, "seed": 3}
JSON
search=(--search deployment.instances=1:8 --monotone deployment.instances
        --search deployment.parallel.attention_dp+deployment.parallel.expert_ep=1,2,4)

check "plan finds a deployment" 0 "^chosen +point [0-9]+: .*GPUs" -- \
  "$MOESIM" plan "$small" --slo ttft_p99=250ms "${search[@]}" --jobs 2 --out "$work/plan.json"
check "plan prints the frontier and the rejected points" 0 "^frontier .*deployment.instances" -- \
  "$MOESIM" plan "$small" --slo ttft_p99=250ms "${search[@]}"
check "plan file has the chosen point and every grid point" 0 "^ok$" -- python3 -c "
import json
p = json.load(open('$work/plan.json'))
assert p['chosen']['status'] == 'passed', p['chosen']
assert len(p['points']) == 24 and p['points_in_grid'] == 24
assert p['simulated'] < 24 - p['status_counts']['invalid']
assert any(f['status'] == 'found' for f in p['frontier'])
print('ok')"
check "exhaustive search agrees" 0 "^ok$" -- bash -c "
  '$MOESIM' plan '$small' --slo ttft_p99=250ms ${search[*]} --exhaustive --quiet --out '$work/brute.json' &&
  python3 -c \"
import json
a = json.load(open('$work/plan.json')); b = json.load(open('$work/brute.json'))
assert a['chosen']['index'] == b['chosen']['index'], (a['chosen'], b['chosen'])
print('ok')\""
check "--reports keeps the chosen point's report" 0 "^ok$" -- bash -c "
  '$MOESIM' plan '$small' --slo ttft_p99=250ms ${search[*]} --quiet --reports '$work/reports' --out '$work/r.json' &&
  python3 -c \"
import json
p = json.load(open('$work/r.json')); c = p['chosen']
r = json.load(open('$work/reports/' + c['report']))
assert r['summary']['ttft_s']['p99'] == c['metrics']['ttft_p99_s'] and r['summary']['gpus'] == c['gpus']
print('ok')\""
# The shipped Azure conversation scenario (Vidur's Llama-2-70B) at a fifth of the trace's rate: the
# bisection simulates fewer points than brute force and chooses the same deployment.
vidur="$MOESIM_SOURCE/tools/scenarios/llama2-70b-a100-tp2-azure-conv-vidur.json"
vidur_grid=(--slo ttft_p99=2s --slo tpot_p99=100ms --set workload.rate_scale=0.2
            --search deployment.parallel.attention_tp+deployment.parallel.expert_tp=2,4,8 --search deployment.instances=1:4)
check "plan on the Azure conversation scenario agrees with brute force" 0 "^ok 4 GPUs$" -- bash -c "
  '$MOESIM' plan '$vidur' ${vidur_grid[*]} --monotone deployment.instances --quiet --out '$work/v1.json' &&
  '$MOESIM' plan '$vidur' ${vidur_grid[*]} --exhaustive --quiet --out '$work/v2.json' &&
  python3 -c \"
import json
a = json.load(open('$work/v1.json')); b = json.load(open('$work/v2.json'))
assert a['chosen']['index'] == b['chosen']['index'] and a['simulated'] < b['simulated'], (a['chosen'], b['chosen'])
print('ok', a['chosen']['gpus'], 'GPUs')\""
check "quiet plan prints nothing" 0 "^$" -- "$MOESIM" plan "$small" --slo ttft_p99=250ms "${search[@]}" --quiet
"$MOESIM" plan "$small" --slo ttft_p99=250ms "${search[@]}" --quiet --jobs 1 --out "$work/j1.json"
"$MOESIM" plan "$small" --slo ttft_p99=250ms "${search[@]}" --quiet --jobs 3 --out "$work/j3.json"
check "plan files do not depend on --jobs" 0 "" -- cmp "$work/j1.json" "$work/j3.json"

for slo in foo_p99=2s ttft_p98=2s ttft_p99=2h ttft_p99=2 ttft_p99=-1s ttft_p99=nans ttft_p99=NaNms ttft_p99=0s; do
  check "bad --slo $slo" 2 "--slo: $slo" -- "$MOESIM" plan "$small" --slo "$slo" "${search[@]}" --out "$work/bad.json"
done
check "no plan file after bad input" 1 "" -- test -e "$work/bad.json"
check "bad --max-drop-rate" 2 "--max-drop-rate" -- "$MOESIM" plan "$small" --max-drop-rate 2 "${search[@]}"
check "no objective" 2 "at least one --slo" -- "$MOESIM" plan "$small" "${search[@]}"
check "no --search" 2 "search" -- "$MOESIM" plan "$small" --slo ttft_p99=1s
check "bad --search range" 2 "--search" -- "$MOESIM" plan "$small" --slo ttft_p99=1s --search deployment.instances=1:8:0
check "monotone key not searched" 2 "--monotone: deployment.bogus" -- \
  "$MOESIM" plan "$small" --slo ttft_p99=1s --search deployment.instances=1:2 --monotone deployment.bogus
check "unknown key makes no point valid" 2 "no point of the search grid is a valid scenario.*bogus" -- \
  "$MOESIM" plan "$small" --slo ttft_p99=1s --search deployment.bogus=1,2
check "bad --duration" 2 "--duration" -- "$MOESIM" plan "$small" --slo ttft_p99=1s --search deployment.instances=1:2 \
  --duration -5
check "missing GPU price" 2 "no price for GPU \"h100\"" -- "$MOESIM" plan "$small" --slo ttft_p99=1s \
  --search deployment.instances=1:2 --price-per-gpu-hour a100=1.5
check "no temporary files left" 0 "^0$" -- bash -c "ls -A '$work' | grep -c tmp || true"

finish
