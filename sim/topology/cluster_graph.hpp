#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <boost/graph/adjacency_list.hpp>

#include "sim/topology/cluster_spec.hpp"

namespace moesim {

enum class VertexKind : unsigned char { gpu, nvswitch, pcie_switch, nic, leaf, spine, fabric_switch };

// The route between two GPUs: the ids of the directed links it crosses, in order.
struct GraphPath {
  std::span<const std::int32_t> links;
  double latency_s = 0;       // sum of the links' latencies
  double bottleneck_Bps = 0;  // smallest nominal bandwidth on the path; infinite for a GPU to itself
  bool uses_scale_up = false;
  bool uses_scale_out = false;
};

// The cluster as a directed graph (Boost.Graph adjacency_list): GPUs, NVSwitches or PCIe switches, NICs,
// leaf and spine switches; each directed edge is a link with a nominal bandwidth and a latency. GPU ids
// are 0..gpu_count()-1, node-major. All GPU-to-GPU paths are computed once at construction (shortest by
// latency, then by hop count, ties broken by the lower link id), never through another GPU.
class ClusterGraph {
 public:
  explicit ClusterGraph(const ClusterSpec& spec);

  int gpu_count() const { return gpu_count_; }
  int gpus_per_node() const { return gpus_per_node_; }
  int node_count() const { return gpu_count_ / gpus_per_node_; }
  int node_of(int gpu) const { return gpu / gpus_per_node_; }
  int local_index(int gpu) const { return gpu % gpus_per_node_; }
  const std::string& name() const { return name_; }

  const GraphPath& path(int src_gpu, int dst_gpu) const;
  // The route that avoids scale-up links (RDMA through the NICs even inside a node); null if none exists.
  const GraphPath* scale_out_path(int src_gpu, int dst_gpu) const;
  double bottleneck_bandwidth(int src_gpu, int dst_gpu) const {
    return path(src_gpu, dst_gpu).bottleneck_Bps;
  }
  double path_latency(int src_gpu, int dst_gpu) const { return path(src_gpu, dst_gpu).latency_s; }

  int link_count() const { return static_cast<int>(link_bandwidth_.size()); }
  double link_bandwidth(int link) const { return link_bandwidth_[link]; }  // bytes per second, nominal
  double link_latency(int link) const { return link_latency_[link]; }      // seconds
  LinkClass link_class(int link) const { return link_class_[link]; }
  int link_source(int link) const { return link_source_[link]; }  // vertex ids
  int link_target(int link) const { return link_target_[link]; }
  std::string link_name(int link) const;

  int vertex_count() const { return static_cast<int>(vertex_names_.size()); }
  const std::string& vertex_name(int vertex) const { return vertex_names_[vertex]; }
  VertexKind vertex_kind(int vertex) const { return vertex_kinds_[vertex]; }
  // Links leaving / entering a vertex, in link id order.
  std::span<const std::int32_t> out_links(int vertex) const;
  std::span<const std::int32_t> in_links(int vertex) const;

 private:
  struct VertexProperties {
    VertexKind kind;
  };
  struct EdgeProperties {
    std::int32_t link;
  };
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, VertexProperties,
                                      EdgeProperties>;

  int add_vertex(VertexKind kind, std::string name);
  void add_link(int from, int to, double bandwidth_Bps, double latency_s, LinkClass link_class);
  void add_duplex(int a, int b, double bandwidth_Bps, double latency_s, LinkClass link_class);
  void build_generated(const ClusterSpec& spec);
  void build_explicit(const ClusterSpec& spec);
  void compute_paths(const ClusterSpec& spec);
  // Shortest routes from one GPU; returns the predecessor link per vertex (-1 where unreachable).
  void shortest_links_from(int src_gpu, bool allow_scale_up, std::vector<std::int32_t>& predecessor) const;
  GraphPath record_path(int src_gpu, int dst_gpu, const std::vector<std::int32_t>& predecessor,
                        std::vector<std::int32_t>& link_storage) const;

  Graph graph_;
  std::string name_;
  int gpu_count_ = 0;
  int gpus_per_node_ = 1;
  std::vector<std::string> vertex_names_;
  std::vector<VertexKind> vertex_kinds_;
  std::vector<double> link_bandwidth_;
  std::vector<double> link_latency_;
  std::vector<LinkClass> link_class_;
  std::vector<std::int32_t> link_source_;
  std::vector<std::int32_t> link_target_;
  std::vector<std::vector<std::int32_t>> out_links_;
  std::vector<std::vector<std::int32_t>> in_links_;
  // paths_[src * gpu_count + dst]; their link spans point into path_links_.
  std::vector<GraphPath> paths_;
  std::vector<std::int32_t> path_links_;
  // scale_out_paths_[src * gpus_per_node + local_index(dst)] for same-node pairs.
  std::vector<GraphPath> scale_out_paths_;
  std::vector<bool> has_scale_out_path_;
  std::vector<std::int32_t> scale_out_links_;
};

}  // namespace moesim
