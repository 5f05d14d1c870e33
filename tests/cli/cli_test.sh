#!/usr/bin/env bash
# Runs the moesim executable as a user would and checks exit codes, messages
# and that failed runs leave no report behind. Prints "N passed, M failed".
set -u
source "$(dirname "$0")/harness.sh"

scenarios="$MOESIM_SOURCE/tools/scenarios"
small="$work/small.json"
cat >"$small" <<JSON
{"name": "small", "model": "mixtral-8x7b", "cluster": "h100-8x1",
 "deployment": {"parallel": {"attention_tp": 8, "expert_ep": 8}},
 "workload": {"kind": "closed_loop", "concurrency": 8, "input_tokens": 512, "output_tokens": 16, "requests": 64},
 "router": {"kind": "zipf", "exponent": 1.0}, "capacity": {"capacity_factor": 1.0, "policy": "drop"}}
JSON

check "validate a shipped scenario" 0 "valid" -- "$MOESIM" validate "$scenarios/deepseek-v3-h800x32-azure-conv.json"
check "run writes a report" 0 "report" -- "$MOESIM" run "$small" --report "$work/out/report.json"
check "the report has the documented fields" 0 "ok" -- python3 -c "
import json, sys
r = json.load(open('$work/out/report.json'))
for path in ['schema_version', 'summary.requests.arrived', 'summary.throughput.output_tokens_per_s',
             'summary.ttft_s.p99', 'summary.tpot_s.p999', 'summary.e2e_s.max', 'summary.queue_s.mean',
             'moe.drop_rate', 'moe.imbalance.expert_max_over_mean.p99', 'moe.imbalance.rank_max_over_mean.max',
             'moe.layers', 'moe.ranks', 'network.dispatch_s', 'network.bytes', 'timeseries.start_s',
             'simulator.events_per_s', 'scenario.model.name']:
    node = r
    for key in path.split('.'):
        node = node[key]
assert r['summary']['requests']['completed'] == 64
print('ok')"
check "quiet run prints nothing" 0 "^$" -- "$MOESIM" run "$small" --quiet --report "$work/quiet.json"
"$MOESIM" run "$small" --quiet --reproducible --seed 3 --report "$work/a.json"
"$MOESIM" run "$small" --quiet --reproducible --seed 3 --report "$work/b.json"
check "reproducible runs are byte-identical" 0 "" -- cmp "$work/a.json" "$work/b.json"
check "--set reaches the scenario" 0 "drop rate 0.00000" -- "$MOESIM" run "$small" --set capacity.policy=dropless --report "$work/c.json"

check "unknown --set key" 2 "small.json: deployment: unknown key \"bogus\"" -- \
  "$MOESIM" run "$small" --set deployment.bogus=1 --report "$work/bad1.json"
check "no report after a failed run" 1 "" -- test -e "$work/bad1.json"
echo '{"name": "x", "model": "mixtral-8x7b",' >"$work/truncated.json"
check "truncated scenario" 2 "truncated.json: line [0-9]+, column [0-9]+: invalid JSON" -- "$MOESIM" run "$work/truncated.json" --report "$work/bad2.json"
check "missing scenario" 2 "cannot open" -- "$MOESIM" validate "$work/none.json"
printf 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:47.0,abc,4\n' >"$work/bad.csv"
check "bad trace row names line and column" 2 "bad.csv: line 3, column ContextTokens" -- \
  "$MOESIM" run "$small" --set workload='{"kind": "trace", "format": "azure", "path": "'"$work"'/bad.csv"}' \
  --report "$work/bad3.json"
check "no report after a bad trace" 1 "" -- test -e "$work/bad3.json"
check "no temporary files left" 0 "^0$" -- bash -c "ls -A '$work' | grep -c tmp || true"
check "sweep runs a grid" 0 "" -- "$MOESIM" sweep "$small" --vary capacity.capacity_factor=1.0,2.0 \
  --out "$work/sweep" --jobs 2 --quiet
check "sweep summary has one row per point" 0 "^3$" -- bash -c "wc -l < '$work/sweep/summary.csv'"
check "sweep resumes without rerunning" 0 "" -- "$MOESIM" sweep "$small" --vary capacity.capacity_factor=1.0,2.0 \
  --out "$work/sweep" --quiet
check "sweep with another grid into the same folder" 2 "sweep.json" -- "$MOESIM" sweep "$small" \
  --vary capacity.capacity_factor=1.0,3.0 --out "$work/sweep" --quiet
check "bad --vary" 2 "capacity.capacity_factor" -- "$MOESIM" sweep "$small" --vary capacity.capacity_factor=1:2:0 \
  --out "$work/sweep2" --quiet
check "sweep --duration becomes an override" 0 "workload.duration_s=30" -- bash -c "
  '$MOESIM' sweep '$scenarios/llama2-70b-a100-tp2-azure-conv-vidur.json' --vary deployment.scheduler.max_sequences=64,128 \
    --duration 30 --out '$work/sweep3' --quiet &&
  cat '$work/sweep3/sweep.json'"
check "bad sweep --duration" 2 "--duration: nan" -- "$MOESIM" sweep "$small" --vary capacity.capacity_factor=1:2 \
  --duration nan --out "$work/sweep4" --quiet
check "merge rebuilds the summary" 0 "" -- "$MOESIM" merge "$work/sweep" --out "$work/sweep"
check "routing inspect before and after EPLB" 0 "per rank +contiguous [0-9.]+ .*eplb\+32 0\.[01]" -- \
  "$MOESIM" routing inspect '{"kind":"preset","name":"deepseek-v3"}' --ep 32 --redundant 32 --steps 2
check "routing inspect rejects a bad router" 2 "kind: expected one of" -- "$MOESIM" routing inspect '{"kind":"magic"}'
check "EPLB with redundant slots runs" 0 "report" -- "$MOESIM" run "$small" --set deployment.placement.kind=eplb \
  --set deployment.parallel.redundant_experts=8 --report "$work/eplb.json"
check "redundant slots need EPLB" 2 "redundant_experts" -- "$MOESIM" validate "$small" \
  --set deployment.parallel.redundant_experts=8
check "reroute keeps more than drop" 0 "ok" -- bash -c "
  '$MOESIM' run '$small' --quiet --set capacity.policy=reroute --report '$work/reroute.json' &&
  python3 -c \"
import json
drop = json.load(open('$work/out/report.json'))['moe']
reroute = json.load(open('$work/reroute.json'))['moe']
assert reroute['rerouted_assignments'] > 0 and reroute['dropped_assignments'] < drop['dropped_assignments']
assert reroute['stragglers']['top'] and 'expert_overflow' in reroute['layers'][0]
print('ok')\""
check "per-layer capacity factors must match the MoE layers" 2 "capacity.capacity_factor: expected one factor per MoE layer \(32 of them\), got 2" -- \
  "$MOESIM" validate "$small" --set 'capacity.capacity_factor=[1, 2]'
python3 -c "import json; print(json.dumps({'layers': [[e for e in range(8)] + [0] * 8]}))" >"$work/placement.json"
check "a placement file with redundant slots runs" 0 "report" -- "$MOESIM" run "$small" \
  --set deployment.placement='{"kind": "file", "file": "'"$work"'/placement.json"}' \
  --set deployment.parallel.redundant_experts=8 --report "$work/file.json"
check "a placement file of the wrong size names it" 2 "placement.json: layers\[0\]: expected 8 slots" -- \
  "$MOESIM" validate "$small" --set deployment.placement='{"kind": "file", "file": "'"$work"'/placement.json"}'
check "EPLB rebalancing runs and reports its moves" 0 "ok" -- bash -c "
  '$MOESIM' run '$small' --quiet --set deployment.placement='{\"kind\": \"eplb\", \"rebalance\": {\"every_s\": 0.5}}' \
    --report '$work/rebalance.json' &&
  python3 -c \"
import json
moe = json.load(open('$work/rebalance.json'))['moe']
assert moe['rebalance']['count'] > 0 and moe['rebalance']['stall_s'] >= 0, moe['rebalance']
print('ok')\""
check "topology inspect" 0 "across nodes .*bottleneck 50.0 .. 50.0 GB/s" -- "$MOESIM" topology inspect h800-8x4
check "topology path" 0 "path gpu0 -> gpu1: 2 links, bottleneck 450.0 GB/s" -- "$MOESIM" topology inspect h100-8x1 --from 0 --to 1
check "topology bad GPU" 2 "--from: expected a GPU index" -- "$MOESIM" topology inspect h100-8x1 --from 9
check "usage error" 2 "" -- "$MOESIM" run
check "trace inspect" 0 "19366|rows" -- "$MOESIM" trace inspect "${MOESIM_DATA:-$MOESIM_SOURCE/../shared/data}/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"
check "models show" 0 "deepseek" -- "$MOESIM" models show deepseek-v3

finish
