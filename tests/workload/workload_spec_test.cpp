#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/workload/trace_writer.hpp"
#include "tests/workload/workload_test_support.hpp"

using namespace moesim;
using moesim::test::drain;
using moesim::test::parse_workload_text;

TEST_CASE("defaults of a trace workload are filled in and reported", "[workload][spec]") {
  const auto spec = parse_workload_text(
      R"({"kind": "trace", "format": "mooncake", "path": "${MOESIM_DATA}/traces/mooncake-fast25/synthetic_trace.jsonl"})");
  const auto json = to_json(spec);
  CHECK(json["kind"] == "trace");
  CHECK(json["format"] == "mooncake");
  CHECK(json["spread_buckets_s"] == 3.0);
  CHECK(json["rate_scale"] == 1.0);
  CHECK(json["start_s"] == 0.0);
  CHECK(json["zero_output"] == "one_token");
  CHECK(json["max_input_tokens"] == 0);
  CHECK_FALSE(json.contains("duration_s"));
  CHECK(json["path"].get<std::string>().find("${MOESIM_DATA}") == std::string::npos);
  CHECK(std::filesystem::path(json["path"].get<std::string>()).is_absolute());
  const auto csv = to_json(parse_workload_text(R"({"kind": "trace", "format": "csv", "path": "x.csv"})"));
  CHECK(csv["spread_buckets_s"] == 0.0);
  CHECK(csv["timestamp_column"] == "timestamp");
  CHECK(csv["timestamp_unit"] == "s");
  CHECK(csv["input_column"] == "input_tokens");
}

TEST_CASE("to_json round-trips through parse_workload", "[workload][spec]") {
  for (
      const char* text : {
          R"({"kind": "trace", "format": "jsonl", "path": "a.jsonl", "timestamp_column": "t", "timestamp_unit": "ms",
               "class_column": "c", "class_names": ["chat", "code"], "prefix_blocks_column": "b",
               "prefix_block_tokens": 64, "rate_scale": 2.5, "start_s": 10, "duration_s": 60, "max_requests": 7,
               "zero_output": "skip", "max_input_tokens": 4096, "traffic_class": 1})",
          R"({"kind": "gamma", "rate": 3, "cv": 2, "requests": 100, "duration_s": 9,
               "input": {"kind": "lognormal", "mean": 500, "sigma": 0.7, "max": 8000},
               "output": {"kind": "empirical", "format": "azure", "path": "conv.csv"}})",
          R"({"kind": "poisson", "rate": 3, "requests": 100, "input": {"kind": "uniform", "min": 1, "max": 9},
               "output": {"kind": "fixed", "tokens": 4}, "max_output_tokens": 3})",
          R"({"kind": "closed_loop", "concurrency": 64, "input_tokens": 1024, "output_tokens": 256, "requests": 2000})",
      }) {
    INFO(text);
    const auto first = to_json(parse_workload_text(text));
    const auto second = to_json(parse_workload_text(first.dump()));
    CHECK(first == second);
  }
}

TEST_CASE("bad workload objects name the key and what was expected", "[workload][spec][fuzz]") {
  struct Case {
    const char* text;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {R"({})", {"scenario.json: workload.kind", "missing required key"}},
      {R"({"kind": "open"})", {"workload.kind", "expected one of [trace, poisson, gamma, closed_loop]"}},
      {R"({"kind": "trace", "format": "parquet", "path": "a"})", {"workload.format", "expected one of"}},
      {R"({"kind": "trace", "format": "azure"})", {"workload.path", "missing required key"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "timestamp_column": "t"})",
       {"workload", "unknown key \"timestamp_column\""}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "rate_scale": 0})",
       {"workload.rate_scale", "positive"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "rate_scale": "fast"})",
       {"workload.rate_scale", "expected a number"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "start_s": -1})", {"workload.start_s", ">= 0"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "max_requests": 1.5})",
       {"workload.max_requests", "expected an integer"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "max_input_tokens": 1e12})",
       {"workload.max_input_tokens", "2^31"}},
      {R"({"kind": "trace", "format": "csv", "path": "a", "timestamp_unit": "h"})",
       {"workload.timestamp_unit"}},
      {R"({"kind": "trace", "format": "csv", "path": "a", "class_names": ["a"]})",
       {"workload.class_names", "needs a class_column"}},
      {R"({"kind": "trace", "format": "azure", "path": "a", "zero_output": "drop"})",
       {"workload.zero_output"}},
      {R"({"kind": "poisson", "rate": 1, "input": {"kind": "fixed", "tokens": 1}, "output": {"kind": "fixed", "tokens": 1}})",
       {"workload.requests", "\"requests\" or \"duration_s\""}},
      {R"({"kind": "poisson", "rate": -2, "requests": 1})", {"workload.rate", "positive"}},
      {R"({"kind": "gamma", "rate": 2, "requests": 1})", {"workload.cv", "missing"}},
      {R"({"kind": "poisson", "rate": 1, "requests": 1, "input": {"kind": "fixed", "tokens": 0}})",
       {"workload.input.tokens", "positive"}},
      {R"({"kind": "poisson", "rate": 1, "requests": 1, "input": {"kind": "uniform", "min": 9, "max": 3}})",
       {"workload.input.max", "max >= min"}},
      {R"({"kind": "poisson", "rate": 1, "requests": 1, "input": {"kind": "lognormal", "mean": 9, "sigma": 1, "mu": 2}})",
       {"workload.input", "unknown key \"mu\""}},
      {R"({"kind": "poisson", "rate": 1, "requests": 1, "input": 5})",
       {"workload.input", "expected an object"}},
      {R"({"kind": "closed_loop", "concurrency": 0, "input_tokens": 1, "output_tokens": 1, "requests": 1})",
       {"workload.concurrency", "positive"}},
      {R"({"kind": "closed_loop", "concurrency": 2, "input_tokens": 1, "output_tokens": 1, "requests": 1, "rate": 3})",
       {"workload", "unknown key \"rate\""}},
  };
  for (const auto& test_case : cases) {
    INFO(test_case.text);
    try {
      parse_workload_text(test_case.text);
      FAIL("no InputError");
    } catch (const InputError& error) {
      const std::string message = error.what();
      INFO(message);
      for (const auto& part : test_case.expected)
        CHECK_THAT(message, Catch::Contains(part));
    }
  }
}

TEST_CASE("a missing trace file fails when the source is made, naming the file", "[workload][spec][fuzz]") {
  const auto spec =
      parse_workload_text(R"({"kind": "trace", "format": "azure", "path": "no/such/trace.csv"})");
  CHECK_THROWS_WITH(make_request_source(spec, 1),
                    Catch::Contains("no/such/trace.csv") && Catch::Contains("cannot open"));
}

TEST_CASE("the shipped example trace is what its workload generates", "[workload][spec]") {
  const std::filesystem::path examples =
      std::filesystem::path(MOESIM_TEST_SOURCE_DIR) / "traces" / "examples";
  const auto document = JsonReader::parse_file(examples / "synthetic_small.json");
  const auto spec = parse_workload(JsonReader(document, "synthetic_small.json"), examples);
  const auto source = make_request_source(spec, 1);
  const std::string generated = write_generic_csv(*source);
  CHECK(generated == read_text_file(examples / "synthetic_small.csv"));

  // And it reads back as the same requests through the generic CSV reader.
  const auto replayed = drain(parse_workload_text(
      R"({"kind": "trace", "format": "csv", "path": "traces/examples/synthetic_small.csv", "class_column": "traffic_class"})"));
  const auto original = drain(spec, 1);
  REQUIRE(replayed.size() == original.size());
  for (std::size_t i = 0; i < original.size(); ++i) {
    REQUIRE(replayed[i].arrival - replayed[0].arrival == original[i].arrival - original[0].arrival);
    REQUIRE(replayed[i].input_tokens == original[i].input_tokens);
  }
}
