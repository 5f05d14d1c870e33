#include "sim/hardware/gpu_spec.hpp"

#include <limits>

namespace moesim {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGB = 1e9;
constexpr double kTera = 1e12;

}  // namespace

GpuSpec parse_gpu(const JsonReader& reader) {
  GpuSpec gpu;
  gpu.name = reader.string("name");
  if (gpu.name.empty()) reader.fail("name", "expected a non-empty string");
  gpu.source = reader.string("source");
  gpu.hbm_bytes = reader.positive_number("hbm_GiB") * kGiB;
  gpu.hbm_bandwidth = reader.positive_number("hbm_bandwidth_GBps") * kGB;
  gpu.bf16_flops = reader.positive_number("bf16_TFLOPS") * kTera;
  gpu.fp8_flops = reader.non_negative_number("fp8_TFLOPS", 0.0) * kTera;
  gpu.fp4_flops = reader.non_negative_number("fp4_TFLOPS", 0.0) * kTera;
  const std::int64_t sm_count = reader.positive_integer("sm_count");
  if (sm_count > std::numeric_limits<int>::max()) reader.fail("sm_count", "value is too large");
  gpu.sm_count = static_cast<int>(sm_count);
  gpu.l2_bytes = reader.positive_number("l2_MiB") * kMiB;
  gpu.scale_up_bandwidth = reader.positive_number("scale_up_bandwidth_GBps") * kGB;
  reader.finish();
  return gpu;
}

GpuSpec load_gpu(const std::filesystem::path& file) {
  const nlohmann::json document = JsonReader::parse_file(file);
  return parse_gpu(JsonReader(document, file.string()));
}

nlohmann::json to_json(const GpuSpec& gpu) {
  return {{"name", gpu.name},
          {"source", gpu.source},
          {"hbm_GiB", gpu.hbm_bytes / kGiB},
          {"hbm_bandwidth_GBps", gpu.hbm_bandwidth / kGB},
          {"bf16_TFLOPS", gpu.bf16_flops / kTera},
          {"fp8_TFLOPS", gpu.fp8_flops / kTera},
          {"fp4_TFLOPS", gpu.fp4_flops / kTera},
          {"sm_count", gpu.sm_count},
          {"l2_MiB", gpu.l2_bytes / kMiB},
          {"scale_up_bandwidth_GBps", gpu.scale_up_bandwidth / kGB}};
}

}  // namespace moesim
