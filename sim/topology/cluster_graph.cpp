#include "sim/topology/cluster_graph.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <queue>
#include <tuple>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr double kBytesPerGB = 1e9;
constexpr double kBitsPerByte = 8;
constexpr double kSecondsPerUs = 1e-6;

// Latencies are compared as integer picoseconds so equal-latency routes tie exactly.
std::int64_t to_picoseconds(double seconds) {
  return std::llround(seconds * 1e12);
}

// "gpu<i>" names GPU i in an explicit link list; returns -1 for any other name.
int explicit_gpu_index(const std::string& name) {
  if (name.size() <= 3 || name.compare(0, 3, "gpu") != 0) return -1;
  int index = -1;
  const char* begin = name.data() + 3;
  const char* end = name.data() + name.size();
  const auto [last, error] = std::from_chars(begin, end, index);
  if (error != std::errc() || last != end) return -1;
  return index;
}

}  // namespace

ClusterGraph::ClusterGraph(const ClusterSpec& spec)
    : name_(spec.name), gpu_count_(spec.gpu_count()), gpus_per_node_(spec.gpus_per_node) {
  if (gpu_count_ <= 0 || gpu_count_ > kMaxClusterGpus) {
    throw InputError(spec.source, "nodes", fmt::format("expected 1 to {} GPUs", kMaxClusterGpus));
  }
  for (int gpu = 0; gpu < gpu_count_; ++gpu)
    add_vertex(VertexKind::gpu, fmt::format("gpu{}", gpu));
  if (spec.is_explicit()) {
    build_explicit(spec);
  } else {
    build_generated(spec);
  }
  compute_paths(spec);
}

int ClusterGraph::add_vertex(VertexKind kind, std::string name) {
  const auto vertex = static_cast<int>(boost::add_vertex(VertexProperties{kind}, graph_));
  vertex_names_.push_back(std::move(name));
  vertex_kinds_.push_back(kind);
  out_links_.emplace_back();
  in_links_.emplace_back();
  return vertex;
}

void ClusterGraph::add_link(int from, int to, double bandwidth_Bps, double latency_s, LinkClass link_class) {
  const auto link = static_cast<std::int32_t>(link_bandwidth_.size());
  boost::add_edge(from, to, EdgeProperties{link}, graph_);
  link_bandwidth_.push_back(bandwidth_Bps);
  link_latency_.push_back(latency_s);
  link_class_.push_back(link_class);
  link_source_.push_back(from);
  link_target_.push_back(to);
  out_links_[from].push_back(link);
  in_links_[to].push_back(link);
}

void ClusterGraph::add_duplex(int a, int b, double bandwidth_Bps, double latency_s, LinkClass link_class) {
  add_link(a, b, bandwidth_Bps, latency_s, link_class);
  add_link(b, a, bandwidth_Bps, latency_s, link_class);
}

void ClusterGraph::build_generated(const ClusterSpec& spec) {
  const int nodes = spec.nodes;
  const int per_node = spec.gpus_per_node;
  if (spec.scale_up && per_node > 1) {
    const auto& scale_up = *spec.scale_up;
    const double bandwidth = scale_up.bandwidth_GBps * kBytesPerGB;
    const double latency = scale_up.latency_us * kSecondsPerUs;
    for (int node = 0; node < nodes; ++node) {
      const int first_gpu = node * per_node;
      if (scale_up.kind == ScaleUpKind::nvlink_mesh) {
        // Assumption: a full mesh splits each GPU's scale-up bandwidth evenly over its peers, as on
        // 8-GPU MI300X and 4-GPU NVLink bridges (moesim's own guess of an even split).
        const double per_peer = bandwidth / (per_node - 1);
        for (int a = first_gpu; a < first_gpu + per_node; ++a) {
          for (int b = first_gpu; b < first_gpu + per_node; ++b) {
            if (a != b) add_link(a, b, per_peer, latency, LinkClass::scale_up);
          }
        }
        continue;
      }
      const bool nvswitch = scale_up.kind == ScaleUpKind::nvswitch;
      const int hub = add_vertex(nvswitch ? VertexKind::nvswitch : VertexKind::pcie_switch,
                                 fmt::format("{}.node{}", nvswitch ? "nvswitch" : "pcie_switch", node));
      // The GPU-to-GPU latency is split over the two hops through the switch.
      for (int gpu = first_gpu; gpu < first_gpu + per_node; ++gpu)
        add_duplex(gpu, hub, bandwidth, latency / 2, LinkClass::scale_up);
    }
  }
  if (!spec.nic) return;
  const auto& nic = *spec.nic;
  const auto& fabric = *spec.fabric;
  // Assumption: the NICs of one GPU share its traffic evenly (NCCL and DeepEP stripe over them), so they
  // act as one port of the summed rate; the GPU-NIC PCIe hop is given the same rate, never less
  // (moesim's own guess; a Gen5 x16 slot carries ~64 GB/s, more than one 400 Gb/s NIC).
  const double nic_bandwidth = nic.per_gpu * nic.bandwidth_Gbps / kBitsPerByte * kBytesPerGB;
  const double nic_latency = nic.latency_us * kSecondsPerUs;
  const double switch_latency = fabric.switch_latency_us * kSecondsPerUs;
  std::vector<int> nic_vertex(gpu_count_);
  for (int gpu = 0; gpu < gpu_count_; ++gpu) {
    nic_vertex[gpu] = add_vertex(VertexKind::nic, fmt::format("nic.gpu{}", gpu));
    add_duplex(gpu, nic_vertex[gpu], nic_bandwidth, nic_latency, LinkClass::scale_out);
  }
  // A switch's latency sits on the links leaving it, so each traversal counts once.
  if (fabric.kind == FabricKind::single_switch) {
    const int hub = add_vertex(VertexKind::fabric_switch, "switch");
    for (int gpu = 0; gpu < gpu_count_; ++gpu) {
      add_link(nic_vertex[gpu], hub, nic_bandwidth, 0.0, LinkClass::scale_out);
      add_link(hub, nic_vertex[gpu], nic_bandwidth, switch_latency, LinkClass::scale_out);
    }
    return;
  }
  // Assumption: ECMP spreads cross-rail traffic evenly over the spines, so the spine layer acts as one
  // switch and each leaf has one uplink of its whole uplink capacity (moesim's own guess; a fluid model
  // of a non-blocking Clos fabric).
  const int spine = add_vertex(VertexKind::spine, "spine");
  const double uplink = nodes * nic_bandwidth / fabric.oversubscription;
  for (int rail = 0; rail < per_node; ++rail) {
    const int leaf = add_vertex(VertexKind::leaf, fmt::format("leaf{}", rail));
    for (int node = 0; node < nodes; ++node) {
      const int gpu = node * per_node + rail;
      add_link(nic_vertex[gpu], leaf, nic_bandwidth, 0.0, LinkClass::scale_out);
      add_link(leaf, nic_vertex[gpu], nic_bandwidth, switch_latency, LinkClass::scale_out);
    }
    add_link(leaf, spine, uplink, switch_latency, LinkClass::scale_out);
    add_link(spine, leaf, uplink, switch_latency, LinkClass::scale_out);
  }
}

void ClusterGraph::build_explicit(const ClusterSpec& spec) {
  std::map<std::string, int, std::less<>> vertex_by_name;
  for (int gpu = 0; gpu < gpu_count_; ++gpu)
    vertex_by_name.emplace(vertex_names_[gpu], gpu);
  const auto vertex_of = [&](const std::string& name, std::size_t link_index, const char* key) {
    const int gpu = explicit_gpu_index(name);
    if (gpu >= gpu_count_) {
      throw InputError(spec.source, fmt::format("links[{}].{}", link_index, key),
                       fmt::format("\"{}\" names a GPU beyond the cluster's {} GPUs", name, gpu_count_));
    }
    if (gpu >= 0) return gpu;
    const auto found = vertex_by_name.find(name);
    if (found != vertex_by_name.end()) return found->second;
    const int vertex = add_vertex(VertexKind::fabric_switch, name);
    vertex_by_name.emplace(name, vertex);
    return vertex;
  };
  for (std::size_t i = 0; i < spec.links.size(); ++i) {
    const auto& link = spec.links[i];
    const int from = vertex_of(link.from, i, "from");
    const int to = vertex_of(link.to, i, "to");
    const double bandwidth = link.bandwidth_GBps * kBytesPerGB;
    const double latency = link.latency_us * kSecondsPerUs;
    if (link.duplex) {
      add_duplex(from, to, bandwidth, latency, link.link_class);
    } else {
      add_link(from, to, bandwidth, latency, link.link_class);
    }
  }
}

void ClusterGraph::shortest_links_from(int src_gpu, bool allow_scale_up,
                                       std::vector<std::int32_t>& predecessor) const {
  using Key = std::tuple<std::int64_t, int, int>;  // (latency ps, hops, vertex)
  const int vertices = vertex_count();
  std::vector<Key> best(vertices, Key{std::numeric_limits<std::int64_t>::max(), 0, 0});
  std::vector<bool> settled(vertices, false);
  predecessor.assign(vertices, -1);
  std::priority_queue<Key, std::vector<Key>, std::greater<>> frontier;
  best[src_gpu] = Key{0, 0, src_gpu};
  frontier.push(best[src_gpu]);
  while (!frontier.empty()) {
    const auto [latency, hops, vertex] = frontier.top();
    frontier.pop();
    if (settled[vertex]) continue;
    settled[vertex] = true;
    // GPUs do not forward traffic: a route may start or end at a GPU, never pass through one.
    if (vertex != src_gpu && vertex_kinds_[vertex] == VertexKind::gpu) continue;
    for (const auto edge : boost::make_iterator_range(boost::out_edges(vertex, graph_))) {
      const std::int32_t link = graph_[edge].link;
      if (!allow_scale_up && link_class_[link] == LinkClass::scale_up) continue;
      const int next = static_cast<int>(boost::target(edge, graph_));
      if (settled[next]) continue;
      const Key candidate{latency + to_picoseconds(link_latency_[link]), hops + 1, next};
      const bool better = std::tie(std::get<0>(candidate), std::get<1>(candidate)) <
                          std::tie(std::get<0>(best[next]), std::get<1>(best[next]));
      const bool tie_with_lower_link = std::get<0>(candidate) == std::get<0>(best[next]) &&
                                       std::get<1>(candidate) == std::get<1>(best[next]) &&
                                       link < predecessor[next];
      if (better || tie_with_lower_link) {
        best[next] = candidate;
        predecessor[next] = link;
        frontier.push(candidate);
      }
    }
  }
}

GraphPath ClusterGraph::record_path(int src_gpu, int dst_gpu, const std::vector<std::int32_t>& predecessor,
                                    std::vector<std::int32_t>& link_storage) const {
  GraphPath path;
  path.bottleneck_Bps = std::numeric_limits<double>::infinity();
  const std::size_t begin = link_storage.size();
  for (int vertex = dst_gpu; vertex != src_gpu;) {
    const std::int32_t link = predecessor[vertex];
    link_storage.push_back(link);
    path.latency_s += link_latency_[link];
    path.bottleneck_Bps = std::min(path.bottleneck_Bps, link_bandwidth_[link]);
    (link_class_[link] == LinkClass::scale_up ? path.uses_scale_up : path.uses_scale_out) = true;
    vertex = link_source_[link];
  }
  std::reverse(link_storage.begin() + static_cast<std::ptrdiff_t>(begin), link_storage.end());
  return path;
}

void ClusterGraph::compute_paths(const ClusterSpec& spec) {
  // Spans are set once the storage stops growing; until then each path's extent is kept aside.
  std::vector<std::pair<std::size_t, std::size_t>> extents;
  const auto record = [&](int src, int dst, const std::vector<std::int32_t>& predecessor,
                          std::vector<std::int32_t>& storage, GraphPath& slot, std::size_t slot_index) {
    const std::size_t begin = storage.size();
    slot = record_path(src, dst, predecessor, storage);
    extents[slot_index] = {begin, storage.size() - begin};
  };
  const auto rebase = [&](std::vector<GraphPath>& paths, const std::vector<std::int32_t>& storage) {
    for (std::size_t i = 0; i < paths.size(); ++i)
      paths[i].links = std::span<const std::int32_t>(storage.data() + extents[i].first, extents[i].second);
  };
  std::vector<std::int32_t> predecessor;
  paths_.resize(static_cast<std::size_t>(gpu_count_) * gpu_count_);
  extents.assign(paths_.size(), {0, 0});
  for (int src = 0; src < gpu_count_; ++src) {
    shortest_links_from(src, true, predecessor);
    for (int dst = 0; dst < gpu_count_; ++dst) {
      const std::size_t slot = static_cast<std::size_t>(src) * gpu_count_ + dst;
      if (src != dst && predecessor[dst] < 0) {
        throw InputError(spec.source, spec.is_explicit() ? "links" : "top level",
                         fmt::format("gpu{} cannot reach gpu{}: the cluster is not connected", src, dst));
      }
      record(src, dst, predecessor, path_links_, paths_[slot], slot);
    }
  }
  rebase(paths_, path_links_);

  scale_out_paths_.resize(static_cast<std::size_t>(gpu_count_) * gpus_per_node_);
  has_scale_out_path_.assign(scale_out_paths_.size(), false);
  extents.assign(scale_out_paths_.size(), {0, 0});
  for (int src = 0; src < gpu_count_; ++src) {
    shortest_links_from(src, false, predecessor);
    const int first = node_of(src) * gpus_per_node_;
    for (int dst = first; dst < first + gpus_per_node_; ++dst) {
      const std::size_t slot = static_cast<std::size_t>(src) * gpus_per_node_ + local_index(dst);
      if (src != dst && predecessor[dst] < 0) continue;
      record(src, dst, predecessor, scale_out_links_, scale_out_paths_[slot], slot);
      has_scale_out_path_[slot] = true;
    }
  }
  rebase(scale_out_paths_, scale_out_links_);
}

const GraphPath& ClusterGraph::path(int src_gpu, int dst_gpu) const {
  return paths_[static_cast<std::size_t>(src_gpu) * gpu_count_ + dst_gpu];
}

const GraphPath* ClusterGraph::scale_out_path(int src_gpu, int dst_gpu) const {
  if (node_of(src_gpu) != node_of(dst_gpu)) {
    const GraphPath& route = path(src_gpu, dst_gpu);
    return route.uses_scale_up ? nullptr : &route;
  }
  const std::size_t slot = static_cast<std::size_t>(src_gpu) * gpus_per_node_ + local_index(dst_gpu);
  return has_scale_out_path_[slot] ? &scale_out_paths_[slot] : nullptr;
}

std::string ClusterGraph::link_name(int link) const {
  return fmt::format("{}->{}", vertex_names_[link_source_[link]], vertex_names_[link_target_[link]]);
}

std::span<const std::int32_t> ClusterGraph::out_links(int vertex) const {
  return out_links_[vertex];
}

std::span<const std::int32_t> ClusterGraph::in_links(int vertex) const {
  return in_links_[vertex];
}

}  // namespace moesim
