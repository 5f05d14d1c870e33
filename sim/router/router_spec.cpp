#include "sim/router/router_spec.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"

namespace moesim {

namespace {

constexpr double kMaxZipfExponent = 5.0;
constexpr double kMinDirichletAlpha = 0.01;
constexpr double kMaxDirichletAlpha = 1000.0;
constexpr double kMaxConcentration = 1e6;
// Assumption (moesim's own choice): 8 affinity groups per class stand for the spread of requests
// around their class; enough that no single group dominates a batch's class, few enough that each
// keeps its O(experts) sampler tables per layer.
constexpr int kDefaultAffinityGroups = 8;
constexpr int kMaxAffinityGroups = 64;
constexpr double kMaxTimeSeconds = 1e9;

std::vector<std::string> class_names(const std::vector<TrafficClassSpec>& classes) {
  std::vector<std::string> names;
  for (const auto& traffic_class : classes)
    names.push_back(traffic_class.name);
  return names;
}

int class_index(const std::vector<std::string>& names, const std::string& name) {
  const auto found = std::find(names.begin(), names.end(), name);
  return found == names.end() ? -1 : static_cast<int>(found - names.begin());
}

// {"code": 0.7, "chat": 0.3}: non-negative weights of known classes (missing ones weigh 0), summing
// to more than 0; returned normalised, per class.
std::vector<double> parse_mix(const JsonReader& reader, const std::string& key,
                              const std::vector<std::string>& names) {
  const JsonReader mix = reader.object(key);
  std::vector<double> weights(names.size(), 0.0);
  for (const auto& item : mix.json().items()) {
    const int index = class_index(names, item.key());
    if (index < 0) {
      mix.fail(item.key(), fmt::format("expected one of the classes [{}]", fmt::join(names, ", ")));
    }
    weights[static_cast<std::size_t>(index)] = mix.non_negative_number(item.key());
  }
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  if (!(total > 0) || !std::isfinite(total)) reader.fail(key, "expected class weights with a positive sum");
  for (double& weight : weights)
    weight /= total;
  return weights;
}

nlohmann::json mix_json(const std::vector<double>& weights, const std::vector<std::string>& names) {
  nlohmann::json json = nlohmann::json::object();
  for (std::size_t c = 0; c < names.size(); ++c)
    json[names[c]] = weights[c];
  return json;
}

void parse_drift(const JsonReader& drift, RouterSpec& spec, const std::vector<std::string>& names) {
  if (drift.has("schedule")) {
    if (spec.class_source != ClassSource::mix) {
      drift.fail("schedule", "a schedule of mixes needs class_from.mix");
    }
    for (const auto& point : drift.object_array("schedule")) {
      MixPoint mix_point;
      mix_point.at_s = point.non_negative_number("at_s");
      if (mix_point.at_s > kMaxTimeSeconds) point.fail("at_s", "expected at most 1e9 s");
      if (mix_point.at_s <= spec.mix.back().at_s && !(spec.mix.size() == 1 && mix_point.at_s == 0)) {
        point.fail("at_s", fmt::format("expected times increasing after {} s, got {} s", spec.mix.back().at_s,
                                       mix_point.at_s));
      }
      mix_point.weights = parse_mix(point, "mix", names);
      point.finish();
      // A point at 0 replaces class_from's mix.
      if (mix_point.at_s == 0) {
        spec.mix.back() = std::move(mix_point);
      } else {
        spec.mix.push_back(std::move(mix_point));
      }
    }
  }
  spec.interpolate = drift.boolean("interpolate", false);
  if (auto rotation = drift.optional_object("rotation")) {
    spec.rotation.period_s = rotation->positive_number("period_s");
    if (spec.rotation.period_s > kMaxTimeSeconds) rotation->fail("period_s", "expected at most 1e9 s");
    const auto experts = rotation->positive_integer("experts_per_period", 1);
    if (experts > 1 << 20) rotation->fail("experts_per_period", "expected at most 2^20");
    spec.rotation.experts_per_period = static_cast<int>(experts);
    rotation->finish();
  }
  drift.finish();
}

void parse_class_source(const JsonReader& reader, RouterSpec& spec, const std::vector<std::string>& names) {
  if (!reader.has("class_from")) {
    if (names.size() > 1)
      reader.fail("class_from",
                  "expected how requests get their class (mix, trace_column "
                  "or tenant_map) when there are several classes");
    spec.mix.push_back(MixPoint{0, std::vector<double>(names.size(), 1.0)});
    return;
  }
  const JsonReader from = reader.object("class_from");
  const int given = int(from.has("mix")) + int(from.has("trace_column")) + int(from.has("tenant_map"));
  if (given != 1) reader.fail("class_from", "expected exactly one of mix, trace_column, tenant_map");
  if (from.has("mix")) {
    spec.class_source = ClassSource::mix;
    spec.mix.push_back(MixPoint{0, parse_mix(from, "mix", names)});
  } else if (from.has("trace_column")) {
    spec.class_source = ClassSource::trace_column;
    spec.trace_column = from.string("trace_column");
    if (spec.trace_column.empty()) from.fail("trace_column", "expected the workload's class column name");
  } else {
    spec.class_source = ClassSource::tenant_map;
    const JsonReader map = from.object("tenant_map");
    for (const auto& item : map.json().items()) {
      const std::string target = map.string(item.key());
      if (class_index(names, target) < 0) {
        map.fail(item.key(),
                 fmt::format("expected one of the classes [{}], got \"{}\"", fmt::join(names, ", "), target));
      }
      spec.tenant_map.emplace_back(item.key(), target);
    }
    if (spec.tenant_map.empty()) from.fail("tenant_map", "expected at least one tenant");
  }
  from.finish();
}

// file, model, domains and selection of a measured counts file.
EmpiricalSource parse_counts_source(const JsonReader& reader, std::string_view default_file,
                                    const std::filesystem::path& base_dir) {
  EmpiricalSource source;
  source.file = resolve_user_path(reader.string("file", default_file), base_dir);
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
  return source;
}

nlohmann::json counts_source_json(const EmpiricalSource& source) {
  return {{"file", source.file.string()},
          {"model", source.model},
          {"domains", source.domains},
          {"selection", source.selection == CountSelection::top1 ? "top1" : "topk"}};
}

}  // namespace

CorrelationSpec parse_correlation(const JsonReader& reader, const std::filesystem::path& base_dir) {
  CorrelationSpec spec;
  spec.strength = reader.fraction("strength", 1.0);
  if (reader.has("successors")) {
    for (const char* key : {"file", "model", "domains", "selection"}) {
      if (reader.has(key)) {
        reader.fail(key, "expected nothing: a synthetic correlation (successors) has no measured counts");
      }
    }
    spec.kind = CorrelationKind::synthetic;
    const auto successors = reader.positive_integer("successors");
    if (successors > 1 << 20) reader.fail("successors", "expected at most 2^20 (and at most the experts)");
    spec.successors = static_cast<int>(successors);
  } else {
    if (!reader.has("model")) {
      reader.fail("model",
                  "expected the model of the measured transition counts (with domains), or successors for a "
                  "synthetic correlation");
    }
    spec.kind = CorrelationKind::fitted;
    spec.counts =
        parse_counts_source(reader, "${MOESIM_DATA}/routing/olmoe-mixtral/crosslayer_counts.csv", base_dir);
  }
  reader.finish();
  return spec;
}

PopularitySpec parse_popularity(const JsonReader& reader, const std::filesystem::path& base_dir) {
  PopularitySpec spec;
  const auto kind = reader.choice("kind", {"uniform", "zipf", "empirical", "preset", "dirichlet"}, "uniform");
  if (kind == "zipf") {
    spec.kind = PopularityKind::zipf;
    spec.zipf_exponent = reader.non_negative_number("exponent", 1.0);
    if (spec.zipf_exponent > kMaxZipfExponent) {
      reader.fail("exponent", "expected a number in [0, 5] (larger exponents put all load on top_k experts)");
    }
  } else if (kind == "dirichlet") {
    spec.kind = PopularityKind::dirichlet;
    spec.dirichlet_alpha = reader.positive_number("alpha", 1.0);
    if (spec.dirichlet_alpha < kMinDirichletAlpha || spec.dirichlet_alpha > kMaxDirichletAlpha) {
      reader.fail("alpha", "expected a number in [0.01, 1000]");
    }
  } else if (kind == "empirical") {
    spec.kind = PopularityKind::empirical;
    spec.empirical =
        parse_counts_source(reader, "${MOESIM_DATA}/routing/olmoe-mixtral/expert_counts.csv", base_dir);
  } else if (kind == "preset") {
    spec.kind = PopularityKind::preset;
    reader.choice("name", {"deepseek-v3"});
    spec.preset = PopularityPreset::deepseek_v3;
  }
  return spec;
}

RouterSpec parse_router(const JsonReader& reader, const std::filesystem::path& base_dir) {
  RouterSpec spec;
  if (reader.has("classes")) {
    if (reader.has("kind")) reader.fail("kind", "expected either classes or one popularity kind, not both");
    for (const auto& entry : reader.object_array("classes")) {
      TrafficClassSpec traffic_class;
      traffic_class.name = entry.string("name");
      if (traffic_class.name.empty()) entry.fail("name", "expected a class name, got an empty string");
      if (class_index(class_names(spec.classes), traffic_class.name) >= 0) {
        entry.fail("name",
                   fmt::format("expected distinct class names, \"{}\" appears twice", traffic_class.name));
      }
      const JsonReader popularity = entry.object("popularity");
      traffic_class.popularity = parse_popularity(popularity, base_dir);
      popularity.finish();
      traffic_class.concentration = entry.non_negative_number("concentration", 0.0);
      if (traffic_class.concentration > kMaxConcentration)
        entry.fail("concentration", "expected at most 1e6");
      if (traffic_class.concentration > 0) {
        const auto groups = entry.positive_integer("affinity_groups", kDefaultAffinityGroups);
        if (groups > kMaxAffinityGroups) entry.fail("affinity_groups", "expected at most 64 groups");
        traffic_class.affinity_groups = static_cast<int>(groups);
      } else if (entry.has("affinity_groups")) {
        entry.fail("affinity_groups", "needs a concentration > 0");
      }
      entry.finish();
      spec.classes.push_back(std::move(traffic_class));
    }
    if (spec.classes.empty()) reader.fail("classes", "expected at least one class");
    if (spec.classes.size() > kMaxTrafficClasses) reader.fail("classes", "expected at most 64 classes");
    int components = 0;
    for (const auto& traffic_class : spec.classes)
      components += traffic_class.affinity_groups;
    if (components > kMaxRoutingComponents) {
      reader.fail("classes", fmt::format("expected at most {} affinity groups over all classes, got {}",
                                         kMaxRoutingComponents, components));
    }
  } else if (reader.has("kind") && reader.raw("kind") == "replay") {
    reader.choice("kind", {"replay"});
    spec.replay_file = resolve_user_path(reader.string("file"), base_dir);
    for (const char* key : {"class_from", "drift", "correlation"}) {
      if (reader.has(key))
        reader.fail(key,
                    "expected nothing: a replayed routing trace has no classes, mix, drift or correlation");
    }
    reader.finish();
    return spec;
  } else {
    static_cast<PopularitySpec&>(spec) = parse_popularity(reader, base_dir);
  }
  const auto names = class_names(spec.resolved_classes());
  parse_class_source(reader, spec, names);
  if (auto drift = reader.optional_object("drift")) parse_drift(*drift, spec, names);
  if (auto correlation = reader.optional_object("correlation"))
    spec.correlation = parse_correlation(*correlation, base_dir);
  reader.finish();
  return spec;
}

std::vector<TrafficClassSpec> RouterSpec::resolved_classes() const {
  if (!classes.empty()) return classes;
  return {TrafficClassSpec{"default", static_cast<const PopularitySpec&>(*this), 0, 1}};
}

nlohmann::json to_json(const PopularitySpec& spec) {
  switch (spec.kind) {
    case PopularityKind::uniform:
      return {{"kind", "uniform"}};
    case PopularityKind::zipf:
      return {{"kind", "zipf"}, {"exponent", spec.zipf_exponent}};
    case PopularityKind::dirichlet:
      return {{"kind", "dirichlet"}, {"alpha", spec.dirichlet_alpha}};
    case PopularityKind::empirical: {
      nlohmann::json json = counts_source_json(spec.empirical);
      json["kind"] = "empirical";
      return json;
    }
    case PopularityKind::preset:
      return {{"kind", "preset"}, {"name", "deepseek-v3"}};
  }
  return {};
}

nlohmann::json to_json(const RouterSpec& spec) {
  if (!spec.replay_file.empty()) return {{"kind", "replay"}, {"file", spec.replay_file.string()}};
  const auto names = class_names(spec.resolved_classes());
  nlohmann::json json;
  if (spec.classes.empty()) {
    json = to_json(static_cast<const PopularitySpec&>(spec));
  } else {
    json["classes"] = nlohmann::json::array();
    for (const auto& traffic_class : spec.classes) {
      nlohmann::json entry = {{"name", traffic_class.name},
                              {"popularity", to_json(traffic_class.popularity)}};
      if (traffic_class.concentration > 0) {
        entry["concentration"] = traffic_class.concentration;
        entry["affinity_groups"] = traffic_class.affinity_groups;
      }
      json["classes"].push_back(std::move(entry));
    }
  }
  switch (spec.class_source) {
    case ClassSource::mix:
      if (!spec.classes.empty()) json["class_from"] = {{"mix", mix_json(spec.mix.front().weights, names)}};
      break;
    case ClassSource::trace_column:
      json["class_from"] = {{"trace_column", spec.trace_column}};
      break;
    case ClassSource::tenant_map: {
      nlohmann::json map = nlohmann::json::object();
      for (const auto& [tenant, name] : spec.tenant_map)
        map[tenant] = name;
      json["class_from"] = {{"tenant_map", map}};
      break;
    }
  }
  nlohmann::json drift = nlohmann::json::object();
  if (spec.mix.size() > 1) {
    drift["schedule"] = nlohmann::json::array();
    for (std::size_t i = 1; i < spec.mix.size(); ++i)
      drift["schedule"].push_back(
          {{"at_s", spec.mix[i].at_s}, {"mix", mix_json(spec.mix[i].weights, names)}});
    drift["interpolate"] = spec.interpolate;
  }
  if (spec.rotation.period_s > 0) {
    drift["rotation"] = {{"period_s", spec.rotation.period_s},
                         {"experts_per_period", spec.rotation.experts_per_period}};
  }
  if (!drift.empty()) json["drift"] = std::move(drift);
  if (spec.correlation.kind == CorrelationKind::fitted) {
    json["correlation"] = counts_source_json(spec.correlation.counts);
    json["correlation"]["strength"] = spec.correlation.strength;
  } else if (spec.correlation.kind == CorrelationKind::synthetic) {
    json["correlation"] = {{"successors", spec.correlation.successors},
                           {"strength", spec.correlation.strength}};
  }
  return json;
}

void bind_traffic_classes(RouterSpec& spec, const std::string& class_column,
                          const std::vector<std::string>& class_names_of_workload,
                          const std::string& source) {
  std::vector<int> class_of;  // assigned at the end: a failed bind leaves the spec as it was
  const auto names = class_names(spec.resolved_classes());
  if (spec.class_source == ClassSource::trace_column) {
    if (class_column.empty() || class_column != spec.trace_column) {
      throw InputError(
          source, "router.class_from.trace_column",
          fmt::format("expected the workload trace's class_column{}, got \"{}\"",
                      class_column.empty() ? " (the workload has none)" : " \"" + class_column + "\"",
                      spec.trace_column));
    }
    for (const auto& name : class_names_of_workload) {
      const int index = class_index(names, name);
      if (index < 0) {
        throw InputError(source, "router.class_from.trace_column",
                         fmt::format("the workload's class \"{}\" is none of the router's classes [{}]", name,
                                     fmt::join(names, ", ")));
      }
      class_of.push_back(index);
    }
  } else if (spec.class_source == ClassSource::tenant_map) {
    for (const auto& [tenant, name] : spec.tenant_map) {
      std::size_t value = 0;
      const auto named = std::find(class_names_of_workload.begin(), class_names_of_workload.end(), tenant);
      if (named != class_names_of_workload.end()) {
        value = static_cast<std::size_t>(named - class_names_of_workload.begin());
      } else if (class_names_of_workload.empty() && !tenant.empty() && tenant.size() < 7 &&
                 std::all_of(tenant.begin(), tenant.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        value = static_cast<std::size_t>(std::stoul(tenant));
      } else {
        throw InputError(
            source, "router.class_from.tenant_map." + tenant,
            class_names_of_workload.empty()
                ? std::string("expected a workload class index (the workload has no class_names)")
                : fmt::format("expected one of the workload's class_names [{}]",
                              fmt::join(class_names_of_workload, ", ")));
      }
      if (class_of.size() <= value) class_of.resize(value + 1, -1);
      class_of[value] = class_index(names, name);
    }
  }
  spec.class_of_traffic_class = std::move(class_of);
}

}  // namespace moesim
