#include "sim/router/router_spec.hpp"

#include <algorithm>

#include "sim/common/paths.hpp"

namespace moesim {

namespace {

constexpr double kMaxZipfExponent = 5.0;

}  // namespace

RouterSpec parse_router(const JsonReader& reader, const std::filesystem::path& base_dir) {
  RouterSpec spec;
  const auto kind = reader.choice("kind", {"uniform", "zipf", "empirical", "preset"}, "uniform");
  if (kind == "zipf") {
    spec.kind = PopularityKind::zipf;
    spec.zipf_exponent = reader.non_negative_number("exponent", 1.0);
    if (spec.zipf_exponent > kMaxZipfExponent) {
      reader.fail("exponent", "expected a number in [0, 5] (larger exponents put all load on top_k experts)");
    }
  } else if (kind == "empirical") {
    spec.kind = PopularityKind::empirical;
    auto& source = spec.empirical;
    source.file = resolve_user_path(
        reader.string("file", "${MOESIM_DATA}/routing/olmoe-mixtral/expert_counts.csv"), base_dir);
    source.model = reader.string("model");
    if (source.model.empty()) reader.fail("model", "expected a model name, got an empty string");
    source.domains = reader.string_array("domains");
    if (source.domains.empty()) reader.fail("domains", "expected at least one domain");
    for (std::size_t i = 0; i < source.domains.size(); ++i) {
      if (std::find(source.domains.begin(), source.domains.begin() + i, source.domains[i]) !=
          source.domains.begin() + i) {
        reader.fail("domains", "expected distinct domains, \"" + source.domains[i] + "\" appears twice");
      }
    }
    source.selection = reader.choice("selection", {"topk", "top1"}, "topk") == "top1" ? CountSelection::top1
                                                                                      : CountSelection::topk;
  } else if (kind == "preset") {
    spec.kind = PopularityKind::preset;
    reader.choice("name", {"deepseek-v3"});
    spec.preset = PopularityPreset::deepseek_v3;
  }
  reader.finish();
  return spec;
}

nlohmann::json to_json(const RouterSpec& spec) {
  switch (spec.kind) {
    case PopularityKind::uniform:
      return {{"kind", "uniform"}};
    case PopularityKind::zipf:
      return {{"kind", "zipf"}, {"exponent", spec.zipf_exponent}};
    case PopularityKind::empirical:
      return {{"kind", "empirical"},
              {"file", spec.empirical.file.string()},
              {"model", spec.empirical.model},
              {"domains", spec.empirical.domains},
              {"selection", spec.empirical.selection == CountSelection::top1 ? "top1" : "topk"}};
    case PopularityKind::preset:
      return {{"kind", "preset"}, {"name", "deepseek-v3"}};
  }
  return {};
}

}  // namespace moesim
