#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/workload/trace_reader.hpp"
#include "sim/workload/trace_source.hpp"
#include "tests/workload/workload_test_support.hpp"

using namespace moesim;
using moesim::test::drain;
using moesim::test::fixture;
using moesim::test::scratch_file;

namespace {

std::vector<Request> read_file(TraceFormat format, const std::filesystem::path& path) {
  TraceSpec trace;
  trace.file = default_trace_file_spec(format, path);
  WorkloadSpec limits;
  TraceSource source(trace, limits);
  return drain(source);
}

// Reads a scratch file and returns the InputError message.
std::string error_of(TraceFormat format, std::string_view name, std::string_view content) {
  const auto path = scratch_file(name, content);
  try {
    read_file(format, path);
  } catch (const InputError& error) {
    return error.what();
  }
  FAIL("no InputError for " << name);
  return "";
}

}  // namespace

TEST_CASE("date-times parse in both Azure forms, to exact nanoseconds", "[workload][reader]") {
  const auto base = parse_datetime_ns("2023-11-16 18:15:46");
  REQUIRE(base);
  CHECK(*base == 1'700'158'546LL * kNanosecondsPerSecond);
  CHECK(*parse_datetime_ns("2023-11-16 18:15:46.6805900") - *base == 680'590'000);
  CHECK(*parse_datetime_ns("1970-01-01 00:00:00") == 0);
  CHECK(*parse_datetime_ns("2024-02-29T12:00:00Z") == 1'709'208'000LL * kNanosecondsPerSecond);
  const auto utc = *parse_datetime_ns("2024-05-10 00:00:00.009930+00:00");
  CHECK(utc == *parse_datetime_ns("2024-05-10 00:00:00") + 9'930'000);
  CHECK(*parse_datetime_ns("2024-05-10 02:00:01+02:00") == *parse_datetime_ns("2024-05-10 00:00:01+00:00"));
  CHECK(*parse_datetime_ns("2024-05-10 00:00:00.1234567891") - *parse_datetime_ns("2024-05-10 00:00:00") ==
        123'456'789);
  for (const char* bad : {"", "2024-05-10", "2024-05-10 00:00", "2024-13-10 00:00:00", "2024-05-10 24:00:00",
                          "2024-05-10 00:00:00.", "2024-05-10 00:00:00+0000", "2024/05/10 00:00:00", "nan",
                          "2024-05-10 00:00:00 junk"}) {
    INFO(bad);
    CHECK_FALSE(parse_datetime_ns(bad));
  }
}

TEST_CASE("decimal timestamps convert exactly in each unit", "[workload][reader]") {
  CHECK(*parse_decimal_ns("1.5", TimestampUnit::seconds) == 1'500'000'000);
  CHECK(*parse_decimal_ns(".25", TimestampUnit::seconds) == 250'000'000);
  CHECK(*parse_decimal_ns("250.5", TimestampUnit::milliseconds) == 250'500'000);
  CHECK(*parse_decimal_ns("3", TimestampUnit::microseconds) == 3'000);
  CHECK(*parse_decimal_ns("7.9", TimestampUnit::nanoseconds) == 7);
  CHECK(*parse_decimal_ns("12.123456789", TimestampUnit::seconds) == 12'123'456'789);
  for (const char* bad : {"", ".", "-1", "nan", "inf", "1e3", "1.2.3", "99999999999999999999"}) {
    INFO(bad);
    CHECK_FALSE(parse_decimal_ns(bad, TimestampUnit::seconds));
  }
}

TEST_CASE("Azure 2023 rows come relative to the first row; zero outputs become one token",
          "[workload][reader]") {
  const auto requests = read_file(TraceFormat::azure, fixture("azure_2023_small.csv"));
  REQUIRE(requests.size() == 4);
  CHECK(requests[0].arrival == 0);
  CHECK(requests[1].arrival == 4'314'579'000);
  CHECK(requests[2].arrival == 4'314'579'000);
  CHECK(requests[3].arrival == 14'319'410'000);
  CHECK(requests[2].input_tokens == 879);
  CHECK(requests[2].output_tokens == 1);
  CHECK(requests[3].id == 3);
  CHECK(requests[0].prefix_blocks.empty());
}

TEST_CASE("Azure 2024 rows with +00:00 and mixed precision (and CRLF lines)", "[workload][reader]") {
  const auto requests = read_file(TraceFormat::azure, fixture("azure_2024_small.csv"));
  REQUIRE(requests.size() == 4);
  CHECK(requests[1].arrival == 990'070'000);
  CHECK(requests[2].arrival == 1'490'070'000);
  CHECK(requests[3].arrival == 2'240'070'000);
  CHECK(requests[3].input_tokens == 400);
  CHECK(requests[3].output_tokens == 40);
}

TEST_CASE("generic CSV with named columns, a unit and class names", "[workload][reader]") {
  TraceSpec trace;
  trace.file = default_trace_file_spec(TraceFormat::csv, fixture("generic_classes.csv"));
  trace.file.timestamp_column = "arrival_ms";
  trace.file.timestamp_unit = TimestampUnit::milliseconds;
  trace.file.input_column = "prompt";
  trace.file.output_column = "completion";
  trace.file.class_column = "tenant";
  trace.file.class_names = {"chat", "code"};
  WorkloadSpec limits;
  TraceSource source(trace, limits);
  const auto requests = drain(source);
  REQUIRE(requests.size() == 3);
  CHECK(requests[1].arrival == 250'500'000);
  CHECK(requests[1].traffic_class == 1);
  CHECK(requests[2].traffic_class == 0);
  CHECK(requests[2].input_tokens == 30);
}

TEST_CASE("generic JSONL with block ids and integer classes; extra keys are ignored", "[workload][reader]") {
  TraceSpec trace;
  trace.file = default_trace_file_spec(TraceFormat::jsonl, fixture("generic.jsonl"));
  trace.file.timestamp_column = "t";
  trace.file.input_column = "in";
  trace.file.output_column = "out";
  trace.file.class_column = "cls";
  trace.file.prefix_blocks_column = "blocks";
  trace.file.prefix_block_tokens = 16;
  WorkloadSpec limits;
  TraceSource source(trace, limits);
  CHECK(source.prefix_block_tokens() == 16);
  const auto requests = drain(source);
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].arrival == 750'000'000);
  CHECK(requests[0].traffic_class == 2);
  CHECK(requests[0].prefix_blocks == std::vector<std::uint64_t>{7, 8});
}

TEST_CASE("bad CSV rows name the file, the line and the column", "[workload][reader][fuzz]") {
  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  const std::string good = "2023-11-16 18:15:46.6805900,374,44\n";
  struct Case {
    const char* name;
    std::string content;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"empty.csv", "", {"empty.csv", "file is empty"}},
      {"blank.csv", "\n  \n", {"blank.csv", "file is empty"}},
      {"header_only.csv", header, {"header_only.csv", "no data rows"}},
      {"missing_column.csv", "TIMESTAMP,ContextTokens\n", {"line 1", "missing column \"GeneratedTokens\""}},
      {"negative.csv",
       header + good + "2023-11-16 18:15:47,100,-3\n",
       {"negative.csv: line 3, column GeneratedTokens", "expected a positive integer", "\"-3\""}},
      {"zero_input.csv", header + "2023-11-16 18:15:47,0,3\n", {"line 2, column ContextTokens", "\"0\""}},
      {"nan.csv", header + "2023-11-16 18:15:47,nan,3\n", {"line 2, column ContextTokens", "\"nan\""}},
      {"float.csv", header + "2023-11-16 18:15:47,12.5,3\n", {"line 2, column ContextTokens", "\"12.5\""}},
      {"huge.csv",
       header + "2023-11-16 18:15:47,99999999999,3\n",
       {"line 2, column ContextTokens", "below 2^31", "\"99999999999\""}},
      {"huger.csv",
       header + "2023-11-16 18:15:47,999999999999999999999999,3\n",
       {"line 2, column ContextTokens", "expected a positive integer"}},
      {"bad_time.csv",
       header + "yesterday,10,3\n",
       {"line 2, column TIMESTAMP", "date-time", "\"yesterday\""}},
      {"order.csv",
       header + good + "2023-11-16 18:15:40,10,3\n",
       {"line 3, column TIMESTAMP", "must not decrease", "line 2"}},
      {"truncated.csv",
       header + good + "2023-11-16 18:15:47,10",
       {"line 3", "expected 3 comma-separated fields, got 2"}},
      {"cut_time.csv", header + good + "2023-11-16 18:1", {"line 3"}},
      {"extra.csv", header + "2023-11-16 18:15:47,10,3,4\n", {"line 2", "got more"}},
  };
  for (const auto& test_case : cases) {
    const std::string message = error_of(TraceFormat::azure, test_case.name, test_case.content);
    INFO(message);
    for (const auto& part : test_case.expected)
      CHECK_THAT(message, Catch::Contains(part));
  }
}

TEST_CASE("zero output tokens follow the zero_output policy", "[workload][reader]") {
  TraceSpec trace;
  trace.file = default_trace_file_spec(TraceFormat::azure, fixture("azure_2023_small.csv"));
  WorkloadSpec limits;
  trace.file.zero_output = ZeroOutputPolicy::skip;
  TraceSource skipping(trace, limits);
  const auto kept = drain(skipping);
  REQUIRE(kept.size() == 3);
  CHECK(kept[2].input_tokens == 1200);
  CHECK(kept[2].id == 2);
  trace.file.zero_output = ZeroOutputPolicy::error;
  CHECK_THROWS_WITH(
      [&] {
        TraceSource strict(trace, limits);
        drain(strict);
      }(),
      Catch::Contains("line 4, column GeneratedTokens") && Catch::Contains("zero_output"));
}

TEST_CASE("bad JSONL rows name the file, the line and the key", "[workload][reader][fuzz]") {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [1]}\n";
  struct Case {
    const char* name;
    std::string content;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"empty.jsonl", "", {"empty.jsonl", "no rows"}},
      {"truncated.jsonl",
       good + "{\"timestamp\": 5, \"input_len",
       {"truncated.jsonl: line 2", "invalid JSON"}},
      {"nan.jsonl",
       good + "{\"timestamp\": NaN, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}\n",
       {"line 2", "invalid JSON"}},
      {"array.jsonl", "[1, 2]\n", {"line 1", "expected a JSON object"}},
      {"missing.jsonl",
       "{\"timestamp\": 0, \"input_length\": 10, \"hash_ids\": []}\n",
       {"line 1, column output_length", "missing key"}},
      {"string_length.jsonl",
       "{\"timestamp\": 0, \"input_length\": \"10\", \"output_length\": 1, \"hash_ids\": []}\n",
       {"line 1, column input_length", "expected a positive integer", "string"}},
      {"negative.jsonl",
       good + "{\"timestamp\": 1, \"input_length\": 10, \"output_length\": -3, \"hash_ids\": []}\n",
       {"line 2, column output_length", "\"-3\""}},
      {"huge.jsonl",
       "{\"timestamp\": 0, \"input_length\": 18446744073709551615, \"output_length\": 1, \"hash_ids\": []}\n",
       {"line 1, column input_length", "below 2^31"}},
      {"negative_time.jsonl",
       "{\"timestamp\": -5, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}\n",
       {"line 1, column timestamp", "non-negative number"}},
      {"order.jsonl",
       "{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}\n" + good,
       {"line 2, column timestamp", "must not decrease"}},
      {"blocks.jsonl",
       "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1, -2]}\n",
       {"line 1, column hash_ids", "block ids >= 0"}},
      {"blocks_type.jsonl",
       "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": 4}\n",
       {"line 1, column hash_ids", "expected an array"}},
  };
  for (const auto& test_case : cases) {
    const std::string message = error_of(TraceFormat::mooncake, test_case.name, test_case.content);
    INFO(message);
    for (const auto& part : test_case.expected)
      CHECK_THAT(message, Catch::Contains(part));
  }
}

TEST_CASE("a missing file or a directory is an InputError naming it", "[workload][reader][fuzz]") {
  CHECK_THROWS_WITH(read_file(TraceFormat::azure, "/nonexistent/trace.csv"),
                    Catch::Contains("/nonexistent/trace.csv") && Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(read_file(TraceFormat::csv, std::filesystem::temp_directory_path()),
                    Catch::Contains("is a directory"));
}

TEST_CASE("lines longer than the read buffer are read whole", "[workload][reader]") {
  std::string blocks;
  for (int i = 0; i < 300'000; ++i)
    blocks += fmt::format("{}{}", i == 0 ? "" : ", ", i);
  const auto path = scratch_file(
      "long.jsonl",
      fmt::format("{{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [{}]}}\n"
                  "{{\"timestamp\": 1, \"input_length\": 2, \"output_length\": 1, \"hash_ids\": [1]}}",
                  blocks));
  const auto requests = read_file(TraceFormat::mooncake, path);
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].prefix_blocks.size() == 300'000);
  CHECK(requests[0].prefix_blocks.back() == 299'999);
  CHECK(requests[1].arrival == 1'000'000);
}
