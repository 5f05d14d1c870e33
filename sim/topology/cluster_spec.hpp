#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace moesim {

// What a link is made of; the network model applies a different achieved efficiency to each.
enum class LinkClass : unsigned char { scale_up, scale_out };

enum class ScaleUpKind { nvswitch, nvlink_mesh, pcie };
enum class FabricKind { single_switch, leaf_spine };

// The GPUs of one node and the link that joins them.
struct ScaleUpSpec {
  ScaleUpKind kind = ScaleUpKind::nvswitch;
  double bandwidth_GBps = 0;  // per GPU and direction, nominal (datasheet / 2)
  double latency_us = 0;      // GPU to GPU inside the node
};

// The network cards. A GPU with several NICs is modelled as one port of their summed rate.
struct NicSpec {
  int per_gpu = 1;
  double bandwidth_Gbps = 0;  // per NIC and direction, nominal line rate
  double latency_us = 0;      // added at the sending and at the receiving NIC
};

// The switches between nodes. leaf_spine is rail-optimised: NIC i of every node sits on leaf i.
struct FabricSpec {
  FabricKind kind = FabricKind::single_switch;
  double oversubscription = 1;   // leaf downlink capacity / uplink capacity
  double switch_latency_us = 0;  // per switch traversal
};

// One link of an explicit cluster. Vertices named "gpu<i>" are the GPUs; any other name is a switch.
struct ExplicitLink {
  std::string from;
  std::string to;
  double bandwidth_GBps = 0;  // per direction
  double latency_us = 0;
  LinkClass link_class = LinkClass::scale_up;
  bool duplex = true;  // false: only from -> to
};

// A cluster from topologies/clusters/<name>.json: either the generated form (scale_up, nic, fabric)
// or an explicit link list.
struct ClusterSpec {
  std::string source;  // file or label the spec came from, for error messages
  std::string name;
  std::string gpu;  // GPU catalogue name, resolved by the hardware component
  int nodes = 1;
  int gpus_per_node = 1;
  std::optional<ScaleUpSpec> scale_up;
  std::optional<NicSpec> nic;
  std::optional<FabricSpec> fabric;
  std::vector<ExplicitLink> links;  // non-empty: the explicit form

  int gpu_count() const { return nodes * gpus_per_node; }
  bool is_explicit() const { return !links.empty(); }
};

// The largest cluster moesim builds: all GPU pairs' paths are kept in memory.
inline constexpr int kMaxClusterGpus = 2048;

ClusterSpec load_cluster(const std::filesystem::path& file);
ClusterSpec parse_cluster(const nlohmann::json& document, std::string_view source);
nlohmann::json to_json(const ClusterSpec& spec);

std::string_view to_string(LinkClass link_class);
std::string_view to_string(ScaleUpKind kind);
std::string_view to_string(FabricKind kind);

}  // namespace moesim
