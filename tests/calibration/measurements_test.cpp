#include <catch2/catch.hpp>

#include <string>

#include "sim/calibration/measurements.hpp"
#include "sim/common/error.hpp"
#include "sim/common/files.hpp"

using Catch::Matchers::Contains;
using moesim::JsonReader;
using moesim::Measurements;
using moesim::SampleFamily;

namespace {

const std::string kFixture = MOESIM_TEST_SOURCE_DIR "/tests/data/calibration/measurements_small.json";

Measurements parse(const std::string& text) {
  const auto document = JsonReader::parse_text(text, "m.json");
  return moesim::parse_measurements(JsonReader(document, "m.json"));
}

std::string fixture() {
  return moesim::read_text_file(kFixture);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

int count(const Measurements& measurements, SampleFamily family) {
  int n = 0;
  for (const auto& sample : measurements.samples)
    n += sample.family == family;
  return n;
}

}  // namespace

TEST_CASE("measurements: the fixture (a subset of an H100 run) parses", "[calibration]") {
  const Measurements measurements = moesim::load_measurements(kFixture);
  CHECK(measurements.device.name == "NVIDIA H100 80GB HBM3");
  CHECK(measurements.device.sm_count == 132);
  CHECK(measurements.samples.size() == 21);
  CHECK(count(measurements, SampleFamily::launch) == 2);
  CHECK(count(measurements, SampleFamily::memory) == 4);
  CHECK(count(measurements, SampleFamily::gemm) == 6);
  CHECK(count(measurements, SampleFamily::moe_layer) == 3);
  for (const auto& sample : measurements.samples) {
    CHECK(sample.min_seconds <= sample.median_seconds);
    CHECK(sample.median_seconds <= sample.max_seconds);
    if (sample.family != SampleFamily::moe_layer) continue;
    double total = 0;
    for (auto tokens : sample.tokens_per_expert)
      total += tokens;
    CHECK(total == sample.tokens * sample.top_k);
  }
}

TEST_CASE("measurements: malformed files are rejected with the place named", "[calibration]") {
  const std::string text = fixture();
  CHECK_THROWS_WITH(parse(""), Contains("m.json") && Contains("empty"));
  CHECK_THROWS_WITH(parse(text.substr(0, text.size() / 2)), Contains("m.json: line"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"median_seconds\": 4.06399995e-06", "\"median_seconds\": NaN")),
                    Contains("m.json: line") && Contains("invalid JSON"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"median_seconds\": 4.06399995e-06", "\"median_seconds\": -4e-06")),
                    Contains("samples[0].median_seconds") && Contains("positive"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"median_seconds\": 4.06399995e-06", "\"median_seconds\": 1")),
                    Contains("samples[0].median_seconds") && Contains("min_seconds <= median_seconds"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"m\": 1,", "\"m\": \"1\",")),
                    Contains("samples[6].m") && Contains("expected an integer"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"m\": 1,", "\"m\": 1e12,")),
                    Contains("samples[6].m") && Contains("below 1e9"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"m\": 1,", "\"m\": -1,")), Contains("samples[6].m"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"kind\": \"kernel\"", "\"kind\": \"kernel\", \"clock\": 1")),
                    Contains("samples[0]") && Contains("unknown key \"clock\""));
  CHECK_THROWS_WITH(parse(replaced(text, "\"family\": \"launch\"", "\"family\": \"lunch\"")),
                    Contains("samples[0].family") && Contains("expected one of"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"sm_count\": 132", "\"sm_count\": true")),
                    Contains("device.sm_count"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"precision\": \"bf16\"", "\"precision\": \"int3\"")),
                    Contains("samples[6].precision"));
  CHECK_THROWS_WITH(
      parse(replaced(text, "\"format\": \"moesim-calibration-measurements\"", "\"format\": \"x\"")),
      Contains("m.json: format"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"quick\": false,", "\"quick\": false, \"extra\": 1,")),
                    Contains("top level") && Contains("unknown key \"extra\""));
  CHECK_THROWS_WITH(parse(replaced(text, "\"samples\": [", "\"samples\": [], \"x\": [")),
                    Contains("samples"));
  CHECK_THROWS_WITH(parse(replaced(text, "\"bytes_read\": 262144", "\"bytes_read\": 1e999")),
                    Contains("m.json"));
}

TEST_CASE("measurements: MoE-layer counts must be one per expert and sum to tokens x top_k",
          "[calibration]") {
  const std::string text = fixture();
  const auto at = text.find("\"tokens_per_expert\": [", text.find("\"family\": \"moe_layer\""));
  REQUIRE(at != std::string::npos);
  const auto open = text.find('[', at);
  std::string broken = text;
  broken.insert(open + 1, "1, ");  // one count more than experts
  CHECK_THROWS_WITH(parse(broken), Contains("tokens_per_expert") && Contains("one per expert"));
  std::string negative = text;
  negative.insert(open + 1, "-5, ");
  CHECK_THROWS_WITH(parse(negative), Contains("tokens_per_expert[0]"));
}
