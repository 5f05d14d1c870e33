#include "sim/topology/cluster_spec.hpp"

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/json_reader.hpp"

namespace moesim {

namespace {

// Bounds that no real cluster reaches; larger values are typos (a unit slip) rather than hardware.
constexpr double kMaxBandwidthGBps = 100'000;
constexpr double kMaxBandwidthGbps = 800'000;
constexpr double kMaxLatencyUs = 1'000'000;
constexpr double kMaxOversubscription = 64;
constexpr int kMaxNicsPerGpu = 16;

double bounded_positive(const JsonReader& reader, std::string_view key, double limit) {
  const double value = reader.positive_number(key);
  if (value > limit) reader.fail(key, fmt::format("expected a number <= {}, got {}", limit, value));
  return value;
}

double bounded_non_negative(const JsonReader& reader, std::string_view key, double limit, double fallback) {
  const double value = reader.non_negative_number(key, fallback);
  if (value > limit) reader.fail(key, fmt::format("expected a number <= {}, got {}", limit, value));
  return value;
}

int bounded_count(const JsonReader& reader, std::string_view key, int limit) {
  const auto value = reader.positive_integer(key);
  if (value > limit) reader.fail(key, fmt::format("expected an integer <= {}, got {}", limit, value));
  return static_cast<int>(value);
}

ScaleUpSpec parse_scale_up(const JsonReader& reader) {
  ScaleUpSpec spec;
  const auto kind = reader.choice("kind", {"nvswitch", "nvlink_mesh", "pcie"});
  spec.kind = kind == "nvswitch" ? ScaleUpKind::nvswitch
              : kind == "pcie"   ? ScaleUpKind::pcie
                                 : ScaleUpKind::nvlink_mesh;
  spec.bandwidth_GBps = bounded_positive(reader, "bandwidth_GBps", kMaxBandwidthGBps);
  spec.latency_us = bounded_non_negative(reader, "latency_us", kMaxLatencyUs, 0.0);
  reader.finish();
  return spec;
}

NicSpec parse_nic(const JsonReader& reader) {
  NicSpec spec;
  spec.per_gpu = reader.has("per_gpu") ? bounded_count(reader, "per_gpu", kMaxNicsPerGpu) : 1;
  spec.bandwidth_Gbps = bounded_positive(reader, "bandwidth_Gbps", kMaxBandwidthGbps);
  spec.latency_us = bounded_non_negative(reader, "latency_us", kMaxLatencyUs, 0.0);
  reader.finish();
  return spec;
}

FabricSpec parse_fabric(const JsonReader& reader) {
  FabricSpec spec;
  spec.kind = reader.choice("kind", {"single_switch", "leaf_spine"}) == "leaf_spine"
                  ? FabricKind::leaf_spine
                  : FabricKind::single_switch;
  spec.oversubscription = reader.positive_number("oversubscription", 1.0);
  if (spec.oversubscription < 1 || spec.oversubscription > kMaxOversubscription) {
    reader.fail("oversubscription", fmt::format("expected a number in [1, {}], got {}", kMaxOversubscription,
                                                spec.oversubscription));
  }
  spec.switch_latency_us = bounded_non_negative(reader, "switch_latency_us", kMaxLatencyUs, 0.0);
  reader.finish();
  return spec;
}

ExplicitLink parse_link(const JsonReader& reader) {
  ExplicitLink link;
  link.from = reader.string("from");
  link.to = reader.string("to");
  if (link.from.empty()) reader.fail("from", "expected a vertex name, got an empty string");
  if (link.to.empty()) reader.fail("to", "expected a vertex name, got an empty string");
  if (link.from == link.to)
    reader.fail("to", fmt::format("a link must join two vertices, got \"{}\" twice", link.to));
  link.bandwidth_GBps = bounded_positive(reader, "bandwidth_GBps", kMaxBandwidthGBps);
  link.latency_us = bounded_non_negative(reader, "latency_us", kMaxLatencyUs, 0.0);
  link.link_class = reader.choice("class", {"scale_up", "scale_out"}) == "scale_up" ? LinkClass::scale_up
                                                                                    : LinkClass::scale_out;
  link.duplex = reader.boolean("duplex", true);
  reader.finish();
  return link;
}

}  // namespace

std::string_view to_string(LinkClass link_class) {
  return link_class == LinkClass::scale_up ? "scale_up" : "scale_out";
}

std::string_view to_string(ScaleUpKind kind) {
  switch (kind) {
    case ScaleUpKind::nvswitch:
      return "nvswitch";
    case ScaleUpKind::nvlink_mesh:
      return "nvlink_mesh";
    case ScaleUpKind::pcie:
      return "pcie";
  }
  return "nvswitch";
}

std::string_view to_string(FabricKind kind) {
  return kind == FabricKind::leaf_spine ? "leaf_spine" : "single_switch";
}

ClusterSpec parse_cluster(const nlohmann::json& document, std::string_view source) {
  const JsonReader reader(document, std::string(source));
  ClusterSpec spec;
  spec.source = std::string(source);
  spec.name = reader.string("name");
  if (spec.name.empty()) reader.fail("name", "expected a cluster name, got an empty string");
  spec.gpu = reader.string("gpu");
  if (spec.gpu.empty())
    reader.fail("gpu", "expected a GPU catalogue name such as \"h100\", got an empty string");
  spec.nodes = bounded_count(reader, "nodes", kMaxClusterGpus);
  spec.gpus_per_node = bounded_count(reader, "gpus_per_node", kMaxClusterGpus);
  if (spec.gpu_count() > kMaxClusterGpus) {
    reader.fail("nodes", fmt::format("nodes x gpus_per_node = {} GPUs, expected at most {}", spec.gpu_count(),
                                     kMaxClusterGpus));
  }
  if (reader.has("links")) {
    for (const auto& link : reader.object_array("links"))
      spec.links.push_back(parse_link(link));
    if (spec.links.empty()) reader.fail("links", "expected at least one link");
    for (const char* generated_key : {"scale_up", "nic", "fabric"}) {
      if (reader.has(generated_key)) {
        reader.fail(generated_key, "not allowed together with an explicit \"links\" list");
      }
    }
  } else {
    if (auto scale_up = reader.optional_object("scale_up")) spec.scale_up = parse_scale_up(*scale_up);
    if (auto nic = reader.optional_object("nic")) spec.nic = parse_nic(*nic);
    if (auto fabric = reader.optional_object("fabric")) spec.fabric = parse_fabric(*fabric);
    if (spec.gpus_per_node > 1 && !spec.scale_up) {
      reader.fail("scale_up", "missing required key (a node with several GPUs needs a scale-up link)");
    }
    if (spec.nodes > 1 && !spec.nic) reader.fail("nic", "missing required key (several nodes need NICs)");
    if (spec.nic && !spec.fabric) reader.fail("fabric", "missing required key (NICs need a fabric to join)");
    if (spec.fabric && !spec.nic) reader.fail("nic", "missing required key (a fabric needs NICs)");
  }
  reader.finish();
  return spec;
}

ClusterSpec load_cluster(const std::filesystem::path& file) {
  return parse_cluster(JsonReader::parse_file(file), file.string());
}

nlohmann::json to_json(const ClusterSpec& spec) {
  nlohmann::json out = {
      {"name", spec.name}, {"gpu", spec.gpu}, {"nodes", spec.nodes}, {"gpus_per_node", spec.gpus_per_node}};
  if (spec.scale_up) {
    out["scale_up"] = {{"kind", to_string(spec.scale_up->kind)},
                       {"bandwidth_GBps", spec.scale_up->bandwidth_GBps},
                       {"latency_us", spec.scale_up->latency_us}};
  }
  if (spec.nic) {
    out["nic"] = {{"per_gpu", spec.nic->per_gpu},
                  {"bandwidth_Gbps", spec.nic->bandwidth_Gbps},
                  {"latency_us", spec.nic->latency_us}};
  }
  if (spec.fabric) {
    out["fabric"] = {{"kind", to_string(spec.fabric->kind)},
                     {"oversubscription", spec.fabric->oversubscription},
                     {"switch_latency_us", spec.fabric->switch_latency_us}};
  }
  if (spec.is_explicit()) {
    auto& links = out["links"] = nlohmann::json::array();
    for (const auto& link : spec.links) {
      links.push_back({{"from", link.from},
                       {"to", link.to},
                       {"bandwidth_GBps", link.bandwidth_GBps},
                       {"latency_us", link.latency_us},
                       {"class", to_string(link.link_class)},
                       {"duplex", link.duplex}});
    }
  }
  return out;
}

}  // namespace moesim
