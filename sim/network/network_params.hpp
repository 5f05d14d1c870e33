#pragma once

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"
#include "sim/topology/cluster_spec.hpp"

namespace moesim {

// How expert-parallel dispatch and combine move tokens (DeepEP's two kernel families).
enum class EpTransport {
  // Every (token, expert) pair is sent straight to its destination rank, no de-duplication.
  low_latency,
  // A token crosses RDMA once per destination node, to the same-rail GPU there, which fans it out over
  // NVLink; inside a node a token is sent once per destination rank.
  high_throughput,
};

// Parameters of the analytical network model: the scenario's "network" object.
//   {"backend": "analytical", "ep_transport": "high_throughput", "scale_up_efficiency": 0.69,
//    "scale_out_efficiency": 0.92, "launch_overhead_us": 15, "per_peer_overhead_us": 0.045,
//    "low_latency_over_nvlink": true}
struct NetworkParams {
  EpTransport ep_transport = EpTransport::high_throughput;
  // Assumption: achieved NVLink rate is 69 % of nominal, fitted to DeepEP's intranode EP8 kernels (153 GB/s
  // dispatch, 158 GB/s combine on H800's 200 GB/s per direction, REFERENCE.md §2). DeepEP counts the bytes
  // each rank receives including its own tokens' local copies (1/8 of them at EP8), so the link itself runs
  // at about 7/8 of the counted rate (moesim's own fit; 0.78, the counted rate over nominal, made every
  // NVLink-bound case 11-24 % too fast). The same efficiency prices every NVLink transfer (TP all-reduce,
  // KV-cache moves, expert weight moves): moesim's own extension of the DeepEP fit, unmeasured for NCCL.
  double scale_up_efficiency = 0.69;
  // Assumption: achieved RDMA rate is 92 % of the line rate: DeepEP low-latency kernels reach 46 GB/s at
  // EP8 on 400 Gb/s (50 GB/s) ConnectX-7 (REFERENCE.md §2).
  double scale_out_efficiency = 0.92;
  // Assumption: a fixed cost per collective (kernel launch, barrier, completion polling), fitted so the
  // DeepEP low-latency dispatch at EP8 takes its 163 us (REFERENCE.md §2); moesim's own fit.
  double launch_overhead_us = 15;
  // Assumption: a cost per destination peer of the busiest sender (queue pairs, doorbells, per-peer
  // signalling), fitted to the rise of DeepEP low-latency dispatch from 163 us at EP8 to 194 us at EP256
  // (REFERENCE.md §2); moesim's own fit.
  double per_peer_overhead_us = 0.045;
  // Whether low-latency kernels send same-node traffic over NVLink (DeepEP's later version) instead of
  // RDMA loopback through the NIC (the version REFERENCE.md §2 tabulates).
  bool low_latency_over_nvlink = true;

  double efficiency(LinkClass link_class) const {
    return link_class == LinkClass::scale_up ? scale_up_efficiency : scale_out_efficiency;
  }
};

NetworkParams parse_network_params(const JsonReader& reader);
nlohmann::json to_json(const NetworkParams& params);

}  // namespace moesim
