#include "sim/cost/calibration_profile.hpp"

#include <fmt/format.h>

namespace moesim {

namespace {

constexpr const char* kFormat = "moesim-calibration-profile";

MemoryParameters parse_memory(const JsonReader& reader) {
  MemoryParameters memory;
  memory.fixed_seconds = reader.non_negative_number("fixed_seconds");
  memory.bandwidth = reader.positive_number("bandwidth");
  memory.sharpness = reader.positive_number("sharpness");
  if (memory.sharpness < 1)
    reader.fail("sharpness", fmt::format("expected a number >= 1, got {}", memory.sharpness));
  reader.finish();
  return memory;
}

GemmParameters parse_gemm(const JsonReader& reader) {
  GemmParameters gemm;
  gemm.fixed_seconds = reader.non_negative_number("fixed_seconds");
  gemm.flops = reader.positive_number("flops");
  gemm.m_half = reader.non_negative_number("m_half");
  gemm.bandwidth = reader.positive_number("bandwidth");
  gemm.sharpness = reader.positive_number("sharpness");
  if (gemm.sharpness < 1)
    reader.fail("sharpness", fmt::format("expected a number >= 1, got {}", gemm.sharpness));
  reader.finish();
  return gemm;
}

}  // namespace

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::bf16:
      return "bf16";
    case Precision::fp8:
      return "fp8";
    case Precision::fp4:
      return "fp4";
  }
  return "bf16";
}

double precision_bytes(Precision precision) {
  switch (precision) {
    case Precision::bf16:
      return 2.0;
    case Precision::fp8:
      return 1.0;
    case Precision::fp4:
      return 0.5;
  }
  return 2.0;
}

CalibrationProfile parse_profile(const JsonReader& reader) {
  if (reader.string("format") != kFormat) reader.fail("format", fmt::format("expected \"{}\"", kFormat));
  if (reader.integer("version") != 1) reader.fail("version", "expected 1 (the only profile version)");
  CalibrationProfile profile;
  profile.gpu = reader.string("gpu");
  profile.measurements = reader.string("measurements", "");
  profile.measured_at = reader.string("measured_at", "");
  profile.fitted_at = reader.string("fitted_at", "");
  const JsonReader parameters = reader.object("parameters");
  if (auto memory = parameters.optional_object("memory")) profile.memory = parse_memory(*memory);
  if (auto gemm = parameters.optional_object("gemm")) {
    for (Precision precision : {Precision::bf16, Precision::fp8, Precision::fp4}) {
      if (auto block = gemm->optional_object(precision_name(precision)))
        profile.gemm[static_cast<int>(precision)] = parse_gemm(*block);
    }
    gemm->finish();
  }
  if (auto decode = parameters.optional_object("attention_decode")) {
    AttentionDecodeParameters value;
    value.fixed_seconds = decode->non_negative_number("fixed_seconds");
    value.bandwidth = decode->positive_number("bandwidth");
    value.sequences_half = decode->non_negative_number("sequences_half");
    decode->finish();
    profile.attention_decode = value;
  }
  if (auto prefill = parameters.optional_object("attention_prefill")) {
    AttentionPrefillParameters value;
    value.fixed_seconds = prefill->non_negative_number("fixed_seconds");
    value.flops = prefill->positive_number("flops");
    prefill->finish();
    profile.attention_prefill = value;
  }
  if (parameters.has("launch_seconds"))
    profile.launch_seconds = parameters.non_negative_number("launch_seconds");
  if (parameters.has("sync_seconds")) profile.sync_seconds = parameters.non_negative_number("sync_seconds");
  parameters.finish();
  if (auto residuals = reader.optional_object("residuals")) {
    for (const auto& item : residuals->json().items()) {
      const JsonReader family = residuals->object(item.key());
      FitResidual residual;
      residual.samples = static_cast<int>(family.non_negative_integer("samples"));
      residual.median_relative_error = family.non_negative_number("median_relative_error");
      residual.max_relative_error = family.non_negative_number("max_relative_error");
      family.finish();
      profile.residuals[item.key()] = residual;
    }
    residuals->finish();
  }
  reader.finish();
  return profile;
}

CalibrationProfile load_profile(const std::filesystem::path& file) {
  const nlohmann::json document = JsonReader::parse_file(file);
  return parse_profile(JsonReader(document, file.string()));
}

nlohmann::json to_json(const CalibrationProfile& profile) {
  nlohmann::json parameters = nlohmann::json::object();
  if (profile.memory) {
    parameters["memory"] = {{"fixed_seconds", profile.memory->fixed_seconds},
                            {"bandwidth", profile.memory->bandwidth},
                            {"sharpness", profile.memory->sharpness}};
  }
  for (Precision precision : {Precision::bf16, Precision::fp8, Precision::fp4}) {
    const auto& gemm = profile.gemm[static_cast<int>(precision)];
    if (!gemm) continue;
    parameters["gemm"][precision_name(precision)] = {{"fixed_seconds", gemm->fixed_seconds},
                                                     {"flops", gemm->flops},
                                                     {"m_half", gemm->m_half},
                                                     {"bandwidth", gemm->bandwidth},
                                                     {"sharpness", gemm->sharpness}};
  }
  if (profile.attention_decode) {
    parameters["attention_decode"] = {{"fixed_seconds", profile.attention_decode->fixed_seconds},
                                      {"bandwidth", profile.attention_decode->bandwidth},
                                      {"sequences_half", profile.attention_decode->sequences_half}};
  }
  if (profile.attention_prefill) {
    parameters["attention_prefill"] = {{"fixed_seconds", profile.attention_prefill->fixed_seconds},
                                       {"flops", profile.attention_prefill->flops}};
  }
  if (profile.launch_seconds) parameters["launch_seconds"] = *profile.launch_seconds;
  if (profile.sync_seconds) parameters["sync_seconds"] = *profile.sync_seconds;
  nlohmann::json residuals = nlohmann::json::object();
  for (const auto& [family, residual] : profile.residuals) {
    residuals[family] = {{"samples", residual.samples},
                         {"median_relative_error", residual.median_relative_error},
                         {"max_relative_error", residual.max_relative_error}};
  }
  return {{"format", kFormat},
          {"version", 1},
          {"gpu", profile.gpu},
          {"measurements", profile.measurements},
          {"measured_at", profile.measured_at},
          {"fitted_at", profile.fitted_at},
          {"parameters", parameters},
          {"residuals", residuals}};
}

}  // namespace moesim
