#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "sim/common/paths.hpp"
#include "sim/workload/trace_source.hpp"
#include "sim/workload/trace_statistics.hpp"
#include "tests/workload/workload_test_support.hpp"

using namespace moesim;
using moesim::test::drain;
using moesim::test::fixture;
using moesim::test::parse_workload_text;

namespace {

std::string fixture_workload(std::string_view format, std::string_view file, std::string_view extra = "") {
  return fmt::format(R"({{"kind": "trace", "format": "{}", "path": "tests/data/workload/{}"{}}})", format,
                     file, extra);
}

TraceStatistics statistics_of(TraceFormat format, std::string_view relative_path) {
  TraceSpec trace;
  trace.file = default_trace_file_spec(format, data_directory() / "traces" / relative_path);
  WorkloadSpec limits;
  TraceSource source(trace, limits);
  return compute_trace_statistics(source);
}

}  // namespace

TEST_CASE("rate_scale divides inter-arrival times", "[workload][trace]") {
  const auto plain = drain(parse_workload_text(fixture_workload("azure", "azure_2023_small.csv")));
  const auto fast =
      drain(parse_workload_text(fixture_workload("azure", "azure_2023_small.csv", R"(, "rate_scale": 4)")));
  REQUIRE(fast.size() == plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i)
    CHECK(fast[i].arrival == plain[i].arrival / 4);
}

TEST_CASE("a time window selects its rows and re-bases them to 0", "[workload][trace]") {
  // Rows of the fixture sit at 0, 4.314579, 4.314579 and 14.31941 s.
  const auto window = drain(parse_workload_text(fixture_workload(
      "azure", "azure_2023_small.csv", R"(, "start_s": 4, "duration_s": 10, "rate_scale": 2)")));
  REQUIRE(window.size() == 2);
  CHECK(window[0].id == 0);
  CHECK(window[0].input_tokens == 396);
  CHECK(window[0].arrival == 157'289'500);
  CHECK(window[1].input_tokens == 879);
  const auto open_end =
      drain(parse_workload_text(fixture_workload("azure", "azure_2023_small.csv", R"(, "start_s": 5)")));
  REQUIRE(open_end.size() == 1);
  CHECK(open_end[0].arrival == 9'319'410'000);
}

TEST_CASE("max_requests, token caps and the constant class", "[workload][trace]") {
  const auto requests = drain(parse_workload_text(fixture_workload(
      "mooncake", "mooncake_small.jsonl",
      R"(, "max_requests": 4, "max_input_tokens": 600, "max_output_tokens": 6, "traffic_class": 3)")));
  REQUIRE(requests.size() == 4);
  CHECK(requests[0].input_tokens == 600);
  CHECK(requests[0].output_tokens == 5);
  CHECK(requests[2].output_tokens == 6);
  CHECK(requests[3].input_tokens == 600);
  // The cut prompt keeps the blocks that cover its 600 tokens.
  CHECK(requests[3].prefix_blocks == std::vector<std::uint64_t>{0, 1});
  for (const auto& request : requests)
    CHECK(request.traffic_class == 3);
}

TEST_CASE("Mooncake buckets are spread evenly over the bucket, order kept", "[workload][trace]") {
  const auto spec = parse_workload_text(fixture_workload("mooncake", "mooncake_small.jsonl"));
  const auto source = make_request_source(spec, 1);
  CHECK(source->prefix_block_tokens() == 512);
  const auto requests = drain(*source);
  REQUIRE(requests.size() == 6);
  // Three rows at 0 over 3 s, one at 3 s, two at 4 s spread over the default 3 s (the last bucket).
  const std::vector<SimTime> expected = {
      0, 1'000'000'000, 2'000'000'000, 3'000'000'000, 4'000'000'000, 5'500'000'000};
  for (std::size_t i = 0; i < requests.size(); ++i) {
    CHECK(requests[i].arrival == expected[i]);
    CHECK(requests[i].id == i);
  }
  CHECK(requests[1].output_tokens == 6);
  CHECK(requests[3].prefix_blocks == std::vector<std::uint64_t>{0, 1, 4});
  // A bucket never spills past the next one: spreading over 2 s squeezes the 0 s bucket into [0, 2).
  const auto squeezed = drain(parse_workload_text(
      fixture_workload("mooncake", "mooncake_small.jsonl", R"(, "spread_buckets_s": 0.5)")));
  CHECK(squeezed[2].arrival == 333'333'333);
  CHECK(squeezed[5].arrival == 4'250'000'000);
  const auto raw = drain(parse_workload_text(
      fixture_workload("mooncake", "mooncake_small.jsonl", R"(, "spread_buckets_s": 0)")));
  CHECK(raw[2].arrival == 0);
}

TEST_CASE("the real Mooncake conversation trace spreads to increasing times inside each bucket",
          "[workload][trace][data]") {
  const auto spec = parse_workload_text(
      R"({"kind": "trace", "format": "mooncake", "path": "${MOESIM_DATA}/traces/mooncake-fast25/conversation_trace.jsonl"})");
  const auto spread = make_request_source(spec, 1);
  auto raw_spec = spec;
  std::get<TraceSpec>(raw_spec.source).spread_buckets_s = 0;
  const auto raw = make_request_source(raw_spec, 1);
  std::uint64_t rows = 0;
  SimTime previous = 0;
  while (auto request = spread->next()) {
    const auto original = raw->next();
    REQUIRE(original);
    CHECK(request->input_tokens == original->input_tokens);
    REQUIRE(request->arrival >= original->arrival);
    REQUIRE(request->arrival < original->arrival + 3 * kNanosecondsPerSecond);
    REQUIRE(request->arrival >= previous);
    previous = request->arrival;
    ++rows;
  }
  CHECK(raw->exhausted());
  CHECK(rows == 12'031);
}

TEST_CASE("statistics of the Azure 2023 traces match SOURCE.md", "[workload][trace][data]") {
  const auto code = statistics_of(TraceFormat::azure, "azure-llm-2023/AzureLLMInferenceTrace_code.csv");
  CHECK(code.rows == 8'819);
  CHECK(code.span_s == Approx(3'436).margin(0.5));
  CHECK(code.mean_rate_per_s == Approx(2.57).margin(0.005));
  CHECK(code.interarrival_cv == Approx(13.2).margin(0.05));
  CHECK(code.input.mean == Approx(2'048).margin(0.5));
  CHECK(code.input.p50 == 1'469);
  CHECK(code.input.p99 == Approx(7'436).margin(0.5));
  CHECK(code.input.max == 7'437);
  CHECK(code.output.mean == Approx(27.9).margin(0.05));
  CHECK(code.output.p50 == 13);
  CHECK(code.output.p99 == Approx(251).margin(0.5));
  CHECK(code.output.max == 1'899);
  CHECK(code.prefix_blocks == 0);

  const auto conv = statistics_of(TraceFormat::azure, "azure-llm-2023/AzureLLMInferenceTrace_conv.csv");
  CHECK(conv.rows == 19'366);
  CHECK(conv.span_s == Approx(3'502).margin(0.5));
  CHECK(conv.mean_rate_per_s == Approx(5.53).margin(0.005));
  CHECK(conv.interarrival_cv == Approx(1.09).margin(0.005));
  CHECK(conv.input.mean == Approx(1'155).margin(0.5));
  CHECK(conv.input.p50 == 1'020);
  CHECK(conv.input.p99 == Approx(4'142).margin(0.5));
  CHECK(conv.input.max == 14'050);
  CHECK(conv.output.mean == Approx(211).margin(0.5));
  CHECK(conv.output.p50 == 129);
  CHECK(conv.output.p99 == Approx(601).margin(0.5));
  CHECK(conv.output.max == 1'000);
}

TEST_CASE("statistics of the Mooncake traces match SOURCE.md", "[workload][trace][data]") {
  const auto conversation = statistics_of(TraceFormat::mooncake, "mooncake-fast25/conversation_trace.jsonl");
  CHECK(conversation.rows == 12'031);
  CHECK(conversation.span_s == Approx(3'537).margin(0.5));
  CHECK(conversation.mean_rate_per_s == Approx(3.40).margin(0.005));
  CHECK(conversation.input.mean == Approx(12'035).margin(0.5));
  CHECK(conversation.input.p50 == 6'909);
  CHECK(conversation.input.p99 == Approx(85'400).margin(0.5));
  CHECK(conversation.input.max == 126'195);
  CHECK(conversation.output.mean == Approx(343).margin(0.5));
  CHECK(conversation.output.p50 == 350);
  CHECK(conversation.output.p99 == Approx(1'119).margin(0.5));
  CHECK(conversation.output.max == 2'000);
  CHECK(conversation.repeated_block_fraction == Approx(0.366).margin(0.0005));

  const auto synthetic = statistics_of(TraceFormat::mooncake, "mooncake-fast25/synthetic_trace.jsonl");
  CHECK(synthetic.rows == 3'993);
  CHECK(synthetic.span_s == Approx(1'022).margin(0.5));
  CHECK(synthetic.mean_rate_per_s == Approx(3.91).margin(0.005));
  CHECK(synthetic.input.mean == Approx(15'325).margin(0.5));
  CHECK(synthetic.input.p50 == 11'587);
  CHECK(synthetic.input.p99 == Approx(66'456).margin(0.5));
  CHECK(synthetic.input.max == 191'378);
  CHECK(synthetic.output.mean == Approx(149).margin(0.5));
  CHECK(synthetic.output.p50 == 69);
  CHECK(synthetic.output.p99 == Approx(768).margin(0.5));
  CHECK(synthetic.output.max == 893);
  CHECK(synthetic.repeated_block_fraction == Approx(0.640).margin(0.0005));
}

TEST_CASE("percentiles interpolate between order statistics", "[workload][statistics]") {
  const auto requests = drain(parse_workload_text(fixture_workload("mooncake", "mooncake_small.jsonl")));
  const auto spec = parse_workload_text(fixture_workload("mooncake", "mooncake_small.jsonl"));
  const auto source = make_request_source(spec, 1);
  const auto statistics = compute_trace_statistics(*source);
  // Inputs sorted: 100 100 512 600 1000 1500; p50 at rank 2.5, p99 at rank 4.95.
  CHECK(statistics.input.p50 == Approx(556));
  CHECK(statistics.input.p99 == Approx(1475));
  CHECK(statistics.input.max == 1500);
  CHECK(statistics.input.mean == Approx(3812.0 / 6));
  CHECK(statistics.span_s == Approx(5.5));
  CHECK(statistics.prefix_blocks == 10);
  // Repeated ids: 0 (twice more), 1, 5.
  CHECK(statistics.repeated_block_fraction == Approx(0.4));
  CHECK(requests.size() == statistics.rows);
}
