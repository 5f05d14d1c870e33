#include <catch2/catch.hpp>

#include <string>

#include "sim/common/error.hpp"
#include "sim/cost/calibration_profile.hpp"

using Catch::Matchers::Contains;
using moesim::CalibrationProfile;
using moesim::JsonReader;

namespace {

CalibrationProfile parse(const std::string& text) {
  const auto document = JsonReader::parse_text(text, "profile.json");
  return moesim::parse_profile(JsonReader(document, "profile.json"));
}

const char* kValid = R"({"format": "moesim-calibration-profile", "version": 1, "gpu": "H100",
  "measurements": "m.json", "measured_at": "2026-01-01", "fitted_at": "2026-01-02",
  "parameters": {"memory": {"fixed_seconds": 3e-6, "bandwidth": 3e12, "sharpness": 9},
                 "gemm": {"bf16": {"fixed_seconds": 8e-6, "flops": 8e14, "m_half": 0, "bandwidth": 2.7e12,
                                   "sharpness": 1.7}},
                 "attention_decode": {"fixed_seconds": 1e-5, "bandwidth": 1e12, "sequences_half": 1.5},
                 "attention_prefill": {"fixed_seconds": 2e-5, "flops": 1.1e14},
                 "launch_seconds": 4e-6, "sync_seconds": 5e-6},
  "residuals": {"memory": {"samples": 36, "median_relative_error": 0.05, "max_relative_error": 0.5}}})";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("profile: parse, and to_json round-trips", "[cost][profile]") {
  const CalibrationProfile profile = parse(kValid);
  CHECK(profile.gpu == "H100");
  REQUIRE(profile.memory);
  CHECK(profile.memory->bandwidth == 3e12);
  REQUIRE(profile.gemm[0]);
  CHECK(profile.gemm[0]->sharpness == 1.7);
  CHECK_FALSE(profile.gemm[1]);
  CHECK(profile.attention_decode->sequences_half == 1.5);
  CHECK(*profile.sync_seconds == 5e-6);
  CHECK(profile.residuals.at("memory").samples == 36);
  const CalibrationProfile again = parse(moesim::to_json(profile).dump());
  CHECK(moesim::to_json(again) == moesim::to_json(profile));
}

TEST_CASE("profile: bad input names the place", "[cost][profile]") {
  CHECK_THROWS_WITH(parse(""), Contains("profile.json") && Contains("empty"));
  CHECK_THROWS_WITH(parse(std::string(kValid).substr(0, 200)), Contains("profile.json: line"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"bandwidth\": 3e12", "\"bandwidth\": -3e12")),
                    Contains("parameters.memory.bandwidth") && Contains("positive"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"sharpness\": 9", "\"sharpness\": 0.5")),
                    Contains("parameters.memory.sharpness") && Contains(">= 1"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"flops\": 8e14", "\"flops\": \"fast\"")),
                    Contains("parameters.gemm.bf16.flops") && Contains("expected a number"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"m_half\": 0", "\"m_half\": 0, \"tile\": 64")),
                    Contains("parameters.gemm.bf16") && Contains("unknown key \"tile\""));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"bf16\": {", "\"int4\": {")),
                    Contains("parameters.gemm") && Contains("unknown key \"int4\""));
  CHECK_THROWS_WITH(parse(replaced(kValid, "moesim-calibration-profile", "something-else")),
                    Contains("format"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"version\": 1", "\"version\": 2")), Contains("version"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"launch_seconds\": 4e-6", "\"launch_seconds\": NaN")),
                    Contains("invalid JSON"));
  CHECK_THROWS_WITH(parse(replaced(kValid, "\"samples\": 36", "\"samples\": 1e400")),
                    Contains("profile.json"));
  CHECK_THROWS_AS(moesim::load_profile("/nonexistent/profile.json"), moesim::InputError);
}
