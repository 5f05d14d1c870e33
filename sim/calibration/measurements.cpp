#include "sim/calibration/measurements.hpp"

#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr const char* kFormat = "moesim-calibration-measurements";

const std::vector<std::string> kFamilyNames = {
    "memory", "gemm",      "grouped_gemm", "attention_decode", "attention_prefill",
    "launch", "moe_layer", "all_to_all"};

int positive_int(const JsonReader& reader, std::string_view key) {
  const std::int64_t value = reader.positive_integer(key);
  if (value > 1'000'000'000) reader.fail(key, fmt::format("expected an integer below 1e9, got {}", value));
  return static_cast<int>(value);
}

// Per-expert token counts: non-negative integers, at least one positive.
std::vector<std::int32_t> expert_counts(const JsonReader& reader) {
  const std::vector<std::int64_t> values = reader.integer_array("tokens_per_expert");
  if (values.empty()) reader.fail("tokens_per_expert", "expected a non-empty array");
  std::vector<std::int32_t> counts;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0 || values[i] > 1'000'000'000) {
      throw InputError(reader.source(), fmt::format("{}[{}]", reader.place("tokens_per_expert"), i),
                       fmt::format("expected a token count in [0, 1e9], got {}", values[i]));
    }
    counts.push_back(static_cast<std::int32_t>(values[i]));
    total += values[i];
  }
  if (total == 0) reader.fail("tokens_per_expert", "expected at least one expert with tokens");
  return counts;
}

Precision read_precision(const JsonReader& reader) {
  const std::string name = reader.choice("precision", {"bf16", "fp8", "fp4"});
  return name == "fp8" ? Precision::fp8 : name == "fp4" ? Precision::fp4 : Precision::bf16;
}

MeasurementSample parse_sample(const JsonReader& reader) {
  MeasurementSample sample;
  sample.place = fmt::format("{}: {}", reader.source(), reader.path());
  const std::string family = reader.choice("family", kFamilyNames);
  for (std::size_t i = 0; i < kFamilyNames.size(); ++i)
    if (kFamilyNames[i] == family) sample.family = static_cast<SampleFamily>(i);
  sample.label = reader.string("label");
  sample.median_seconds = reader.positive_number("median_seconds");
  sample.min_seconds = reader.positive_number("min_seconds");
  sample.max_seconds = reader.positive_number("max_seconds");
  if (sample.min_seconds > sample.median_seconds || sample.median_seconds > sample.max_seconds) {
    reader.fail("median_seconds",
                fmt::format("expected min_seconds <= median_seconds <= max_seconds, got {} {} {}",
                            sample.min_seconds, sample.median_seconds, sample.max_seconds));
  }
  sample.repetitions = positive_int(reader, "repetitions");
  sample.calls_per_repetition = positive_int(reader, "calls_per_repetition");
  switch (sample.family) {
    case SampleFamily::memory:
      sample.kind = reader.choice("kind", {"read", "write", "copy"});
      sample.bytes_read = reader.non_negative_number("bytes_read");
      sample.bytes_written = reader.non_negative_number("bytes_written");
      if (sample.bytes_read + sample.bytes_written <= 0)
        reader.fail("bytes_read", "expected some bytes moved");
      break;
    case SampleFamily::gemm:
      sample.precision = read_precision(reader);
      sample.m = positive_int(reader, "m");
      sample.n = positive_int(reader, "n");
      sample.k = positive_int(reader, "k");
      break;
    case SampleFamily::grouped_gemm:
      sample.precision = read_precision(reader);
      sample.hidden = positive_int(reader, "hidden");
      sample.ffn = positive_int(reader, "ffn");
      sample.skew = reader.non_negative_number("zipf_exponent");
      sample.tokens_per_expert = expert_counts(reader);
      break;
    case SampleFamily::attention_decode:
      sample.sequences = positive_int(reader, "sequences");
      sample.context_length = positive_int(reader, "context_length");
      sample.kv_heads = positive_int(reader, "kv_heads");
      sample.query_heads = positive_int(reader, "query_heads");
      sample.head_dim = positive_int(reader, "head_dim");
      sample.kv_bytes = reader.positive_number("kv_bytes");
      sample.flops = reader.positive_number("flops");
      break;
    case SampleFamily::attention_prefill:
      sample.heads = positive_int(reader, "heads");
      sample.sequence_length = positive_int(reader, "sequence_length");
      sample.head_dim = positive_int(reader, "head_dim");
      sample.flops = reader.positive_number("flops");
      sample.bytes = reader.positive_number("bytes");
      break;
    case SampleFamily::launch:
      sample.kind = reader.choice("kind", {"kernel", "sync"});
      break;
    case SampleFamily::moe_layer: {
      sample.precision = read_precision(reader);
      sample.tokens = positive_int(reader, "tokens");
      sample.hidden = positive_int(reader, "hidden");
      sample.ffn = positive_int(reader, "ffn");
      sample.experts = positive_int(reader, "experts");
      sample.top_k = positive_int(reader, "top_k");
      sample.skew = reader.non_negative_number("router_skew");
      sample.tokens_per_expert = expert_counts(reader);
      if (sample.tokens_per_expert.size() != static_cast<std::size_t>(sample.experts)) {
        reader.fail("tokens_per_expert", fmt::format("expected {} entries (one per expert), got {}",
                                                     sample.experts, sample.tokens_per_expert.size()));
      }
      double total = 0;
      for (std::int32_t count : sample.tokens_per_expert)
        total += count;
      if (total != sample.tokens * sample.top_k) {
        reader.fail("tokens_per_expert", fmt::format("expected counts summing to tokens x top_k = {}, got {}",
                                                     sample.tokens * sample.top_k, total));
      }
      break;
    }
    case SampleFamily::all_to_all:
      sample.ranks = positive_int(reader, "ranks");
      sample.bytes_per_peer = reader.positive_number("bytes_per_peer");
      break;
  }
  reader.finish();
  return sample;
}

MeasuredDevice parse_device(const JsonReader& reader) {
  MeasuredDevice device;
  device.name = reader.string("name");
  device.compute_capability = reader.string("compute_capability");
  device.sm_count = positive_int(reader, "sm_count");
  device.max_sm_clock_mhz = reader.non_negative_number("max_sm_clock_mhz");
  device.max_memory_clock_mhz = reader.non_negative_number("max_memory_clock_mhz");
  device.memory_bus_bits = static_cast<int>(reader.non_negative_integer("memory_bus_bits"));
  device.hbm_bytes = reader.positive_number("hbm_bytes");
  device.l2_bytes = reader.non_negative_number("l2_bytes");
  device.device_count = positive_int(reader, "device_count");
  device.driver_version = static_cast<int>(reader.non_negative_integer("driver_version"));
  device.runtime_version = static_cast<int>(reader.non_negative_integer("runtime_version"));
  device.cublas_version = static_cast<int>(reader.non_negative_integer("cublas_version"));
  reader.finish();
  return device;
}

}  // namespace

const char* family_name(SampleFamily family) {
  return kFamilyNames[static_cast<std::size_t>(family)].c_str();
}

Measurements parse_measurements(const JsonReader& reader) {
  if (reader.string("format") != kFormat) reader.fail("format", fmt::format("expected \"{}\"", kFormat));
  if (reader.integer("version") != 1) reader.fail("version", "expected 1 (the only measurement version)");
  Measurements measurements;
  measurements.source = reader.source();
  measurements.date = reader.string("date");
  measurements.quick = reader.boolean("quick");
  measurements.device = parse_device(reader.object("device"));
  measurements.notes = reader.string_array("notes");
  for (const JsonReader& sample : reader.object_array("samples"))
    measurements.samples.push_back(parse_sample(sample));
  if (measurements.samples.empty()) reader.fail("samples", "expected at least one sample");
  reader.finish();
  return measurements;
}

Measurements load_measurements(const std::filesystem::path& file) {
  const nlohmann::json document = JsonReader::parse_file(file);
  return parse_measurements(JsonReader(document, file.string()));
}

}  // namespace moesim
