#include <string>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/hardware/gpu_spec.hpp"

namespace {

const std::string kGpus = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/gpus/";

std::string parse_error(const std::string& text) {
  try {
    const nlohmann::json document = moesim::JsonReader::parse_text(text, "gpu.json");
    moesim::parse_gpu(moesim::JsonReader(document, "gpu.json"));
  } catch (const moesim::InputError& error) {
    return error.what();
  }
  return "";
}

const std::string kValid = R"({"name": "X", "source": "test", "hbm_GiB": 80, "hbm_bandwidth_GBps": 3350,
  "bf16_TFLOPS": 989, "fp8_TFLOPS": 1979, "sm_count": 132, "l2_MiB": 50, "scale_up_bandwidth_GBps": 450})";

std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("shipped GPU files load in base units", "[hardware]") {
  const moesim::GpuSpec h100 = moesim::load_gpu(kGpus + "h100.json");
  CHECK(h100.hbm_bytes == 81559.0 * 1024 * 1024);
  CHECK(h100.hbm_bandwidth == 3.35e12);
  CHECK(h100.bf16_flops == 989e12);
  CHECK(h100.fp8_flops == 1979e12);
  CHECK(h100.fp4_flops == 0);
  CHECK(h100.sm_count == 132);
  CHECK(h100.l2_bytes == 50.0 * 1024 * 1024);
  CHECK(h100.scale_up_bandwidth == 450e9);

  const moesim::GpuSpec a100 = moesim::load_gpu(kGpus + "a100.json");
  CHECK(a100.hbm_bytes == 80.0 * 1024 * 1024 * 1024);
  CHECK(a100.fp8_flops == 0);
  CHECK(moesim::load_gpu(kGpus + "h200.json").hbm_bytes == 143771.0 * 1024 * 1024);
  CHECK(moesim::load_gpu(kGpus + "h800.json").scale_up_bandwidth == 200e9);
  CHECK(moesim::load_gpu(kGpus + "b200.json").fp4_flops == 9000e12);
  CHECK(moesim::load_gpu(kGpus + "mi300x.json").bf16_flops == 1307e12);

  for (const char* name : {"a100", "h100", "h200", "h800", "b200", "mi300x"}) {
    INFO(name);
    const moesim::GpuSpec gpu = moesim::load_gpu(kGpus + name + ".json");
    const nlohmann::json written = moesim::to_json(gpu);
    CHECK(moesim::to_json(moesim::parse_gpu(moesim::JsonReader(written, "round trip"))) == written);
    CHECK(written == moesim::JsonReader::parse_file(kGpus + name + ".json"));
  }
}

TEST_CASE("bad GPU files name the file, the key and what was expected", "[hardware][fuzz]") {
  REQUIRE(parse_error(kValid).empty());
  const std::pair<std::string, const char*> cases[] = {
      {"", "gpu.json: file is empty"},
      {kValid.substr(0, 40), "gpu.json: line 1"},
      {with(kValid, "\"hbm_GiB\": 80", "\"hbm_GiB\": NaN"), "invalid JSON"},
      {with(kValid, "\"hbm_GiB\": 80", "\"hbm_GiB\": -80"),
       "gpu.json: hbm_GiB: expected a positive number, got -80"},
      {with(kValid, "\"hbm_GiB\": 80", "\"hbm_GB\": 80"), "gpu.json: hbm_GiB: missing required key"},
      {with(kValid, "\"sm_count\": 132", "\"sm_count\": 13.2"), "gpu.json: sm_count: expected an integer"},
      {with(kValid, "\"sm_count\": 132", "\"sm_count\": 1e12"), "gpu.json: sm_count: value is too large"},
      {with(kValid, "\"fp8_TFLOPS\": 1979", "\"fp8_TFLOPS\": -1"),
       "gpu.json: fp8_TFLOPS: expected a number >= 0"},
      {with(kValid, "\"l2_MiB\": 50", "\"l2_MiB\": \"50\""),
       "gpu.json: l2_MiB: expected a number, got the string \"50\""},
      {with(kValid, "\"l2_MiB\": 50", "\"l2_MiB\": 50, \"nvlink\": 1"),
       "gpu.json: top level: unknown key \"nvlink\""},
      {with(kValid, "\"bf16_TFLOPS\": 989", "\"bf16_TFLOPS\": 1e999"), "invalid JSON"},
      {with(kValid, "\"name\": \"X\"", "\"name\": 7"), "gpu.json: name: expected a string, got the number 7"},
  };
  for (const auto& [text, expected] : cases) {
    INFO(text);
    CHECK_THAT(parse_error(text), Catch::Contains(expected));
  }
  CHECK_THROWS_WITH(moesim::load_gpu(kGpus + "tpu.json"), Catch::Contains("tpu.json"));
}
