#!/usr/bin/env bash
# The main job: builds moesim, then replays the real Azure LLM conversation trace
# (one hour, 19,366 requests) through DeepSeek-V3 on 4 x 8 H800 GPUs (attention DP32,
# expert EP32) and writes the JSON report to out/deepseek-v3-azure-conv.report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
build/tools/moesim run tools/scenarios/deepseek-v3-h800x32-azure-conv.json \
  --report out/deepseek-v3-azure-conv.report.json "$@"
