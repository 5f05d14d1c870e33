#!/usr/bin/env bash
# Downloads the public request traces moesim reads into FOLDER, in the layout of the shared data
# folder (FOLDER/azure-llm-2023/, FOLDER/mooncake-fast25/), and checks each file's sha256.
# Usage: traces/fetch_public_traces.sh FOLDER      (e.g. "$MOESIM_DATA/traces")
# Files already present with the right checksum are not downloaded again.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 FOLDER" >&2
  exit 2
fi
folder=$1

# Pinned commits, as recorded in each SOURCE.md of the shared data folder.
azure_base=https://raw.githubusercontent.com/Azure/AzurePublicDataset/b469a113cedca53ddc3bdea71a143dc4b7d8700c/data
mooncake_base=https://raw.githubusercontent.com/kvcache-ai/Mooncake/3b5a594133958449a1feaf1c9e0fc1b553e34a28/FAST25-release/traces

# destination (relative to FOLDER), url, sha256
files=(
  "azure-llm-2023/AzureLLMInferenceTrace_code.csv $azure_base/AzureLLMInferenceTrace_code.csv 54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6"
  "azure-llm-2023/AzureLLMInferenceTrace_conv.csv $azure_base/AzureLLMInferenceTrace_conv.csv 2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"
  "mooncake-fast25/conversation_trace.jsonl $mooncake_base/conversation_trace.jsonl b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df"
  "mooncake-fast25/synthetic_trace.jsonl $mooncake_base/synthetic_trace.jsonl bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131"
)

status=0
for entry in "${files[@]}"; do
  read -r destination url checksum <<<"$entry"
  target="$folder/$destination"
  mkdir -p "$(dirname "$target")"
  if [[ -f "$target" ]] && echo "$checksum  $target" | sha256sum --check --status; then
    echo "ok (present)  $destination"
    continue
  fi
  partial="$target.part"
  if ! curl --fail --location --silent --show-error --retry 3 --output "$partial" "$url"; then
    echo "FAILED download  $url" >&2
    rm -f "$partial"
    status=1
    continue
  fi
  if echo "$checksum  $partial" | sha256sum --check --status; then
    mv "$partial" "$target"
    echo "ok            $destination"
  else
    echo "FAILED sha256  $destination (expected $checksum)" >&2
    rm -f "$partial"
    status=1
  fi
done
exit $status
