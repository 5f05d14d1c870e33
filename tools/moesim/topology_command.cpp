#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"
#include "sim/topology/cluster_graph.hpp"
#include "sim/topology/cluster_spec.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

struct InspectOptions {
  std::string cluster;
  std::optional<int> from;
  std::optional<int> to;
};

std::string_view kind_name(VertexKind kind) {
  switch (kind) {
    case VertexKind::gpu:
      return "GPU";
    case VertexKind::nvswitch:
      return "NVSwitch";
    case VertexKind::pcie_switch:
      return "PCIe switch";
    case VertexKind::nic:
      return "NIC";
    case VertexKind::leaf:
      return "leaf switch";
    case VertexKind::spine:
      return "spine switch";
    case VertexKind::fabric_switch:
      return "fabric switch";
  }
  return "vertex";
}

void print_path(const ClusterGraph& graph, int from, int to) {
  const GraphPath& path = graph.path(from, to);
  fmt::print("path gpu{} -> gpu{}: {} links, bottleneck {:.1f} GB/s, latency {:.2f} us\n", from, to,
             path.links.size(), path.bottleneck_Bps / 1e9, path.latency_s * 1e6);
  for (const auto link : path.links) {
    fmt::print("  {:<28} {:>8.1f} GB/s  {:>6.2f} us  {}\n", graph.link_name(link),
               graph.link_bandwidth(link) / 1e9, graph.link_latency(link) * 1e6,
               to_string(graph.link_class(link)));
  }
}

void inspect(const InspectOptions& options) {
  const auto file = resolve_catalogue_entry(options.cluster, "topologies/clusters", ".");
  const ClusterSpec spec = load_cluster(file);
  const ClusterGraph graph(spec);
  fmt::print("cluster {} ({}): {} nodes x {} GPUs of {} = {} GPUs\n", spec.name, file.string(), spec.nodes,
             spec.gpus_per_node, spec.gpu, graph.gpu_count());

  std::map<std::string_view, int> vertices;
  for (int v = 0; v < graph.vertex_count(); ++v)
    ++vertices[kind_name(graph.vertex_kind(v))];
  fmt::print("graph: {} vertices (", graph.vertex_count());
  bool first = true;
  for (const auto& [kind, count] : vertices) {
    fmt::print("{}{} {}", first ? "" : ", ", count, kind);
    first = false;
  }
  int scale_up = 0, scale_out = 0;
  for (int link = 0; link < graph.link_count(); ++link) {
    (graph.link_class(link) == LinkClass::scale_up ? scale_up : scale_out) += 1;
  }
  fmt::print("), {} directed links ({} scale-up, {} scale-out)\n", graph.link_count(), scale_up, scale_out);

  // The slowest and fastest pair of each kind: inside a node and across nodes.
  struct Range {
    double min_bandwidth = 1e300, max_bandwidth = 0, min_latency = 1e300, max_latency = 0;
    int pairs = 0;
  };
  Range intra, inter;
  for (int a = 0; a < graph.gpu_count(); ++a) {
    for (int b = 0; b < graph.gpu_count(); ++b) {
      if (a == b) continue;
      Range& range = graph.node_of(a) == graph.node_of(b) ? intra : inter;
      const double bandwidth = graph.bottleneck_bandwidth(a, b);
      const double latency = graph.path_latency(a, b);
      range.min_bandwidth = std::min(range.min_bandwidth, bandwidth);
      range.max_bandwidth = std::max(range.max_bandwidth, bandwidth);
      range.min_latency = std::min(range.min_latency, latency);
      range.max_latency = std::max(range.max_latency, latency);
      ++range.pairs;
    }
  }
  auto print_range = [](std::string_view label, const Range& range) {
    if (range.pairs == 0) return;
    fmt::print("{:<12} {:>6} GPU pairs: bottleneck {:.1f} .. {:.1f} GB/s, latency {:.2f} .. {:.2f} us\n",
               label, range.pairs, range.min_bandwidth / 1e9, range.max_bandwidth / 1e9,
               range.min_latency * 1e6, range.max_latency * 1e6);
  };
  print_range("inside node", intra);
  print_range("across nodes", inter);

  if (options.from || options.to) {
    const int from = options.from.value_or(0);
    const int to = options.to.value_or(graph.gpu_count() - 1);
    for (const auto& [name, gpu] : {std::pair{"--from", from}, std::pair{"--to", to}}) {
      if (gpu < 0 || gpu >= graph.gpu_count()) {
        throw InputError(name, "",
                         fmt::format("expected a GPU index in [0, {}), got {}", graph.gpu_count(), gpu));
      }
    }
    print_path(graph, from, to);
  } else if (graph.gpu_count() > 1) {
    print_path(graph, 0, 1);
    if (graph.node_count() > 1) print_path(graph, 0, graph.gpus_per_node());
  }
}

}  // namespace

void add_topology_commands(CLI::App& app) {
  CLI::App* topology = app.add_subcommand("topology", "Inspect cluster topologies");
  topology->require_subcommand(1);
  auto options = std::make_shared<InspectOptions>();
  CLI::App* inspect_command = topology->add_subcommand(
      "inspect", "Summarise a cluster's graph and the bottleneck bandwidth and latency between GPUs");
  inspect_command->add_option("cluster", options->cluster, "Cluster name (topologies/clusters) or file")
      ->required();
  inspect_command->add_option("--from", options->from, "Source GPU index for a path");
  inspect_command->add_option("--to", options->to, "Destination GPU index for a path");
  inspect_command->callback([options] { inspect(*options); });
}

}  // namespace moesim::cli
