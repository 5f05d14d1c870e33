#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// Datasheet figures of one GPU, in base units. Achieved efficiencies are not here: the cost
// model owns them (and a calibration profile corrects them).
struct GpuSpec {
  std::string name;
  double hbm_bytes = 0;
  double hbm_bandwidth = 0;  // B/s
  double bf16_flops = 0;     // dense FLOP/s
  double fp8_flops = 0;      // 0 if unsupported
  double fp4_flops = 0;      // 0 if unsupported
  int sm_count = 0;          // streaming multiprocessors (compute units on AMD)
  double l2_bytes = 0;
  double scale_up_bandwidth = 0;  // B/s per direction (NVLink, Infinity Fabric)
  std::string source;             // where the figures come from
};

// File schema (units in the key names; 1 GB = 1e9 bytes, 1 GiB = 2^30 bytes, 1 MiB = 2^20 bytes):
//   {"name": str, "source": str, "hbm_GiB": >0, "hbm_bandwidth_GBps": >0, "bf16_TFLOPS": >0,
//    "fp8_TFLOPS": >=0 (default 0), "fp4_TFLOPS": >=0 (default 0), "sm_count": int >0,
//    "l2_MiB": >0, "scale_up_bandwidth_GBps": >0 (per direction)}
GpuSpec parse_gpu(const JsonReader& reader);
GpuSpec load_gpu(const std::filesystem::path& file);
nlohmann::json to_json(const GpuSpec& gpu);

}  // namespace moesim
