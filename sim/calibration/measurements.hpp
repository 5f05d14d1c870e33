#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sim/common/json_reader.hpp"
#include "sim/cost/calibration_profile.hpp"

namespace moesim {

// The measurement file written by cuda_calibration/moesim_calibrate_gpu (format in
// cuda_calibration/README.md). Parsing is strict: each family has its own required keys and
// any other key is an error naming the sample.

enum class SampleFamily {
  memory,
  gemm,
  grouped_gemm,
  attention_decode,
  attention_prefill,
  launch,
  moe_layer,
  all_to_all
};
const char* family_name(SampleFamily family);

struct MeasuredDevice {
  std::string name;
  std::string compute_capability;
  int sm_count = 0;
  double max_sm_clock_mhz = 0;
  double max_memory_clock_mhz = 0;
  int memory_bus_bits = 0;
  double hbm_bytes = 0;
  double l2_bytes = 0;
  int device_count = 0;
  int driver_version = 0;
  int runtime_version = 0;
  int cublas_version = 0;
};

// One measured case. Only the fields of its family are meaningful; the others stay zero.
struct MeasurementSample {
  SampleFamily family = SampleFamily::memory;
  std::string label;
  std::string place;  // "file: samples[i]", for messages
  double median_seconds = 0, min_seconds = 0, max_seconds = 0;
  int repetitions = 0;
  int calls_per_repetition = 0;
  std::string kind;  // memory: read|write|copy; launch: kernel|sync
  Precision precision = Precision::bf16;
  double bytes_read = 0, bytes_written = 0;                     // memory
  double m = 0, n = 0, k = 0;                                   // gemm
  double hidden = 0, ffn = 0, skew = 0;                         // grouped_gemm, moe_layer
  std::vector<std::int32_t> tokens_per_expert;                  // grouped_gemm, moe_layer
  double sequences = 0, context_length = 0, kv_bytes = 0;       // attention_decode
  double kv_heads = 0, query_heads = 0, head_dim = 0;           // attention_decode, attention_prefill
  double flops = 0, bytes = 0, heads = 0, sequence_length = 0;  // attention_*
  double tokens = 0, experts = 0, top_k = 0;                    // moe_layer
  double ranks = 0, bytes_per_peer = 0;                         // all_to_all
};

struct Measurements {
  std::string source;  // the file
  std::string date;
  bool quick = false;
  MeasuredDevice device;
  std::vector<std::string> notes;
  std::vector<MeasurementSample> samples;
};

Measurements parse_measurements(const JsonReader& reader);
Measurements load_measurements(const std::filesystem::path& file);

}  // namespace moesim
