#include "sim/network/expert_parallel_comm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/top_k.hpp"
#include "sim/network/collectives.hpp"

namespace moesim {

namespace {

constexpr double kSecondsPerUs = 1e-6;

// x^n for the small positive n of top-k routing: cheaper than std::pow on the hot path.
double integer_power(double x, int n) {
  double result = 1.0;
  for (; n > 0; n >>= 1, x *= x)
    if (n & 1) result *= x;
  return result;
}

// result x x^N by integer_power's multiplications, written out at compile time (straight-line code,
// so that the loops calling it vectorise).
template <int N>
double times_power(double result, double x) {
  if constexpr (N == 0) {
    return result;
  } else {
    return times_power<(N >> 1)>((N & 1) != 0 ? result * x : result, x * x);
  }
}

// x^n by the same multiplications as integer_power; for N > 0 the exponent is the constant N.
template <int N>
double power_of(double x, int n) {
  if constexpr (N == 0) {
    return integer_power(x, n);
  } else {
    return times_power<N>(1.0, x);
  }
}

// Four doubles, lane by lane (GCC's vector extension: one AVX register with x86-64-v3, two SSE registers
// without). Helpers take them by reference: by value, their ABI would differ with and without AVX.
using Quad = double __attribute__((vector_size(4 * sizeof(double))));

void load(Quad& quad, const double* values) {
  std::memcpy(&quad, values, sizeof quad);
}

void store(double* values, const Quad& quad) {
  std::memcpy(values, &quad, sizeof quad);
}

// largest = std::max(largest, value) lane by lane.
void raise_to(Quad& largest, const Quad& value) {
  largest = largest < value ? value : largest;
}

double largest_lane(const Quad& quad) {
  return std::max(std::max(quad[0], quad[1]), std::max(quad[2], quad[3]));
}

// result x x^N by power_of<N>'s multiplications, lane by lane (x may be overwritten); for N = 0 the exponent
// is n.
template <int N>
void multiply_by_power(Quad& result, Quad& x, int n) {
  if constexpr (N == 0) {
    for (int lane = 0; lane < 4; ++lane)
      result[lane] *= integer_power(x[lane], n);
  } else {
    if constexpr ((N & 1) != 0) result *= x;
    if constexpr (N > 1) {
      x *= x;
      multiply_by_power<(N >> 1)>(result, x, n);
    }
  }
}

// Stores what summarise_ranks reads of one rank, from its port loads in the dispatch direction: the
// seconds of its busiest port in each phase (the combine swaps every port's directions) and the bytes it
// sends.
struct RankRecorder {
  const double* up_out_cost;
  const double* up_in_cost;
  const double* net_out_cost;
  const double* net_in_cost;
  double* dispatch;
  double* combine;
  double* bytes;

  void operator()(int rank, double up_out, double up_in, double net_out, double net_in) const {
    // Pairwise, so that a rank's four ports form a short chain.
    dispatch[rank] = std::max(std::max(up_out * up_out_cost[rank], up_in * up_in_cost[rank]),
                              std::max(net_out * net_out_cost[rank], net_in * net_in_cost[rank]));
    combine[rank] = std::max(std::max(up_in * up_out_cost[rank], up_out * up_in_cost[rank]),
                             std::max(net_in * net_out_cost[rank], net_out * net_in_cost[rank]));
    bytes[rank] = up_out + net_out;
  }
};

}  // namespace

ExpertParallelComm::ExpertParallelComm(const ClusterGraph& graph, std::vector<int> ep_gpus,
                                       NetworkParams params)
    : layout_(graph, std::move(ep_gpus)),
      params_(params),
      transport_(params.ep_transport),
      rdma_only_(path_policy(params.ep_transport, params) == PathPolicy::scale_out_only) {
  const int ranks = layout_.rank_count();
  const PathPolicy policy = path_policy(transport_, params_);
  rates_.resize(ranks);
  for (int rank = 0; rank < ranks; ++rank) {
    const int gpu = layout_.gpu(rank);
    auto& rate = rates_[rank];
    for (const auto link : graph.out_links(gpu)) {
      const double achieved = graph.link_bandwidth(link) * params_.efficiency(graph.link_class(link));
      (graph.link_class(link) == LinkClass::scale_up ? rate.scale_up_out : rate.scale_out_out) += achieved;
    }
    for (const auto link : graph.in_links(gpu)) {
      const double achieved = graph.link_bandwidth(link) * params_.efficiency(graph.link_class(link));
      (graph.link_class(link) == LinkClass::scale_up ? rate.scale_up_in : rate.scale_out_in) += achieved;
    }
  }
  // A missing port costs the largest finite value per byte: any load on it is (effectively) infinite
  // time, while no load costs 0 (0 x infinity would be NaN).
  auto reciprocal = [](double rate) { return rate > 0 ? 1.0 / rate : std::numeric_limits<double>::max(); };
  for (const auto& rate : rates_) {
    costs_.scale_up_out.push_back(reciprocal(rate.scale_up_out));
    costs_.scale_up_in.push_back(reciprocal(rate.scale_up_in));
    costs_.scale_out_out.push_back(reciprocal(rate.scale_out_out));
    costs_.scale_out_in.push_back(reciprocal(rate.scale_out_in));
  }
  // Routes are looked up once here (which also rejects RDMA-only on a cluster without NICs).
  for (int src = 0; src < ranks; ++src) {
    for (int dst = 0; dst < ranks; ++dst) {
      if (src == dst) continue;
      const int src_gpu = layout_.gpu(src);
      const int dst_gpu = layout_.gpu(dst);
      const GraphPath* path = policy == PathPolicy::shortest ? &graph.path(src_gpu, dst_gpu)
                                                             : graph.scale_out_path(src_gpu, dst_gpu);
      if (path == nullptr) {
        throw InputError(
            "network", "low_latency_over_nvlink",
            fmt::format("false needs an RDMA route from gpu{} to gpu{}, and cluster \"{}\" has none", src_gpu,
                        dst_gpu, graph.name()));
      }
      if (layout_.node(src) == layout_.node(dst)) {
        same_node_latency_ = std::max(same_node_latency_, path->latency_s);
      } else {
        cross_node_latency_ = std::max(cross_node_latency_, path->latency_s);
        if (dst == layout_.forwarder(src, layout_.node(dst)))
          rail_latency_ = std::max(rail_latency_, path->latency_s);
      }
    }
  }
  for (int rank = 0; rank < ranks; ++rank) {
    node_of_rank_.push_back(layout_.node(rank));
    position_of_rank_.push_back(layout_.position(rank));
    if (runs_.empty() || runs_.back().node != layout_.node(rank))
      runs_.push_back({layout_.node(rank), rank, rank});
    runs_.back().end = rank + 1;
  }
  const int per_node = layout_.ranks_per_node();
  if (static_cast<int>(runs_.size()) == layout_.node_count() && (per_node == 4 || per_node == 8))
    uniform_node_ranks_ = per_node;
  sends_.resize(ranks);
  rank_active_.resize(ranks);
  forwards_.resize(ranks);
  source_tokens_.assign(ranks, std::numeric_limits<double>::quiet_NaN());
  rail_tokens_.resize(ranks);
  relayed_tokens_.resize(ranks);
  rank_share_.resize(ranks);
  // Whole quads of nodes for high_throughput_uniform_nodes.
  const int padded_nodes = (layout_.node_count() + 3) / 4 * 4;
  node_share_.resize(padded_nodes);
  node_tokens_.resize(layout_.node_count());
  node_reach_.resize(padded_nodes);
  node_selected_.resize(padded_nodes);
  node_unique_.resize(layout_.node_count());
  rank_reach_.resize(static_cast<std::size_t>(layout_.rank_count()));
  node_active_ranks_.resize(layout_.node_count());
  position_tokens_.resize(layout_.ranks_per_node());
  rank_dispatch_.resize(ranks);
  rank_combine_.resize(ranks);
  rank_bytes_.resize(ranks);
  rank_peers_.resize(ranks);
}

void ExpertParallelComm::update_sources(std::span<const double> tokens_from_rank) const {
  const auto ranks = tokens_from_rank.size();
  std::copy(tokens_from_rank.begin(), tokens_from_rank.end(), source_tokens_.begin());
  std::fill(node_tokens_.begin(), node_tokens_.end(), 0.0);
  std::fill(position_tokens_.begin(), position_tokens_.end(), 0.0);
  all_tokens_ = 0;
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    all_tokens_ += tokens_from_rank[rank];
    node_tokens_[node_of_rank_[rank]] += tokens_from_rank[rank];
    position_tokens_[position_of_rank_[rank]] += tokens_from_rank[rank];
  }
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    rail_tokens_[rank] = position_tokens_[position_of_rank_[rank]];
    relayed_tokens_[rank] = rail_tokens_[rank] - tokens_from_rank[rank];
    sends_[rank] = tokens_from_rank[rank] > 0 ? 1.0 : 0.0;
    forwards_[rank] = tokens_from_rank[rank] > 0 || relayed_tokens_[rank] > 0 ? 1.0 : 0.0;
  }
}

void ExpertParallelComm::add_by_node(const double* values, double* node_sums) const {
  // Four nodes at a time, position by position: each node adds its ranks in rank order, as one pass
  // over the ranks would, and the four sums are independent of each other, so their additions overlap.
  const int nodes = layout_.node_count();
  const int per_node = layout_.ranks_per_node();
  int node = 0;
  for (; node + 4 <= nodes; node += 4) {
    double sums[4];
    for (int lane = 0; lane < 4; ++lane)
      sums[lane] = node_sums[node + lane];
    for (int position = 0; position < per_node; ++position) {
      for (int lane = 0; lane < 4; ++lane)
        sums[lane] += values[layout_.rank_at(node + lane, position)];
    }
    for (int lane = 0; lane < 4; ++lane)
      node_sums[node + lane] = sums[lane];
  }
  for (; node < nodes; ++node) {
    double sum = node_sums[node];
    for (int position = 0; position < per_node; ++position)
      sum += values[layout_.rank_at(node, position)];
    node_sums[node] = sum;
  }
}

template <int N>
void ExpertParallelComm::compute_rank_reach(int top_k, bool node_limited) const {
  const double* share = rank_share_.data();
  double* reach = rank_reach_.data();
  for (const NodeRun& run : runs_) {
    const double selected = node_limited ? node_selected_[run.node] : 1.0;
    if (selected > 0) {
      const double inverse = 1.0 / selected;
      for (int r = run.first; r < run.end; ++r)
        reach[r] = selected * (1 - power_of<N>(1 - share[r] * inverse, top_k));
    } else {
      std::fill(reach + run.first, reach + run.end, 0.0);
    }
  }
  add_by_node(reach, node_unique_.data());
}

template <int PerNode, int N>
void ExpertParallelComm::high_throughput_uniform_nodes(const EpTraffic& traffic,
                                                       double inverse_assignments) const {
  static_assert(PerNode % 4 == 0, "a node's ranks fill whole quads");
  constexpr int kQuads = PerNode / 4;
  constexpr Quad kOnes = {1.0, 1.0, 1.0, 1.0};
  constexpr Quad kZeros = {0.0, 0.0, 0.0, 0.0};
  const int nodes = layout_.node_count();
  const int top_k = traffic.top_k;
  const int limit = traffic.max_nodes_per_token;
  const bool node_limited = limit > 0 && limit < nodes;
  const double* assigned = traffic.assignments_to_rank.data();
  double* reach = rank_reach_.data();
  double* rank_active = rank_active_.data();

  // Three passes, each over independent nodes with short chains, so that nodes overlap; all as the general
  // path computes them (a node's sums add its ranks in rank order, from 0). Ranks: shares and activity.
  double* share = rank_share_.data();
  for (int node = 0; node < nodes; ++node) {
    const int first = node * PerNode;
    Quad active_count = kZeros;
    double node_share = 0;
    for (int quad = 0; quad < kQuads; ++quad) {
      Quad shares;
      load(shares, assigned + first + 4 * quad);
      shares *= inverse_assignments;
      store(share + first + 4 * quad, shares);
      const Quad active = shares > 0 ? kOnes : kZeros;
      store(rank_active + first + 4 * quad, active);
      active_count += active;
      for (int lane = 0; lane < 4; ++lane)
        node_share += shares[lane];
    }
    node_share_[node] = node_share;
    // Whole numbers: exact in any order.
    node_active_ranks_[node] = (active_count[0] + active_count[1]) + (active_count[2] + active_count[3]);
  }
  // Nodes, four at a time (the node arrays are padded to whole quads): selection and reach.
  for (int node = 0; node < nodes; node += 4) {
    Quad node_share, selected = kOnes, node_reach;
    load(node_share, node_share_.data() + node);
    if (node_limited) {
      const Quad scaled = static_cast<double>(limit) * node_share;
      selected = scaled < kOnes ? scaled : kOnes;
      Quad missed = 1.0 - node_share / selected;
      Quad power = kOnes;
      multiply_by_power<N>(power, missed, top_k);
      node_reach = selected > 0 ? selected * (1.0 - power) : kZeros;
    } else {
      Quad missed = 1.0 - node_share;
      Quad power = kOnes;
      multiply_by_power<N>(power, missed, top_k);
      node_reach = 1.0 - power;
    }
    store(node_selected_.data() + node, selected);
    store(node_reach_.data() + node, node_reach);
  }
  // Ranks: reaches and their sum by node.
  double reach_sum = 0;
  int nodes_reached = 0;
  for (int node = 0; node < nodes; ++node) {
    const int first = node * PerNode;
    const double selected = node_selected_[node];
    double unique = 0;
    for (int quad = 0; quad < kQuads; ++quad) {
      Quad rank_reach = kZeros;
      if (selected > 0) {
        Quad shares;
        load(shares, share + first + 4 * quad);
        Quad missed = 1.0 - shares * (1.0 / selected);
        Quad power = kOnes;
        multiply_by_power<N>(power, missed, top_k);
        rank_reach = selected * (1.0 - power);
      }
      store(reach + first + 4 * quad, rank_reach);
      for (int lane = 0; lane < 4; ++lane)
        unique += rank_reach[lane];
    }
    node_unique_[node] = unique;
    reach_sum += node_reach_[node];
    if (node_reach_[node] > 0) ++nodes_reached;
  }

  // Node by node: each rank's port loads as in the general path, then summarise_ranks' maxima (in any
  // lane) and byte lanes (rank r in lane r % 4, in rank order: every quad starts at a multiple of 4), and
  // the flags as the largest loads (> 0 when any is).
  const double payload = traffic.bytes_per_token;
  const double all_tokens = all_tokens_;
  const double* tokens_from = traffic.tokens_from_rank.data();
  Quad dispatch[kQuads] = {}, combine[kQuads] = {}, peers[kQuads] = {};
  Quad largest_up_out[kQuads] = {}, largest_net_out[kQuads] = {};
  Quad bytes = kZeros;
  for (int node = 0; node < nodes; ++node) {
    const double node_reach = node_reach_[node];
    const double other_nodes_reach = reach_sum - node_reach;
    const double unique = node_unique_[node];
    const double active = node_active_ranks_[node];
    const double remote_peers = nodes_reached - (node_reach > 0 ? 1 : 0);
    for (int quad = 0; quad < kQuads; ++quad) {
      const int r = node * PerNode + 4 * quad;
      Quad tokens, rail_tokens, relayed_tokens, rank_reach, forwards, sends, rank_is_active;
      load(tokens, tokens_from + r);
      load(rail_tokens, rail_tokens_.data() + r);
      load(relayed_tokens, relayed_tokens_.data() + r);
      load(rank_reach, reach + r);
      load(forwards, forwards_.data() + r);
      load(sends, sends_.data() + r);
      load(rank_is_active, rank_active + r);
      Quad up_out_cost, up_in_cost, net_out_cost, net_in_cost;
      load(up_out_cost, costs_.scale_up_out.data() + r);
      load(up_in_cost, costs_.scale_up_in.data() + r);
      load(net_out_cost, costs_.scale_out_out.data() + r);
      load(net_in_cost, costs_.scale_out_in.data() + r);
      const Quad net_out = tokens * payload * other_nodes_reach;
      const Quad net_in = payload * node_reach * relayed_tokens;
      const Quad up_out = payload * rail_tokens * (unique - rank_reach);
      const Quad up_in = payload * rank_reach * (all_tokens - rail_tokens);
      raise_to(dispatch[quad], up_out * up_out_cost);
      raise_to(dispatch[quad], up_in * up_in_cost);
      raise_to(dispatch[quad], net_out * net_out_cost);
      raise_to(dispatch[quad], net_in * net_in_cost);
      raise_to(combine[quad], up_in * up_out_cost);
      raise_to(combine[quad], up_out * up_in_cost);
      raise_to(combine[quad], net_in * net_out_cost);
      raise_to(combine[quad], net_out * net_in_cost);
      bytes += up_out + net_out;
      raise_to(largest_up_out[quad], up_out);
      raise_to(largest_net_out[quad], net_out);
      raise_to(peers[quad], forwards * (active - rank_is_active) + sends * remote_peers);
    }
  }
  for (int quad = 1; quad < kQuads; ++quad) {
    raise_to(dispatch[0], dispatch[quad]);
    raise_to(combine[0], combine[quad]);
    raise_to(peers[0], peers[quad]);
    raise_to(largest_up_out[0], largest_up_out[quad]);
    raise_to(largest_net_out[0], largest_net_out[quad]);
  }
  dispatch_transfer_ = largest_lane(dispatch[0]);
  combine_transfer_ = largest_lane(combine[0]);
  most_peers_ = static_cast<int>(largest_lane(peers[0]));
  load_bytes_ = (bytes[0] + bytes[1]) + (bytes[2] + bytes[3]);
  any_same_node_ = largest_lane(largest_up_out[0]) > 0;
  any_cross_node_ = largest_lane(largest_net_out[0]) > 0;
}

void ExpertParallelComm::summarise_ranks() const {
  const int ranks = layout_.rank_count();
  // Four lanes, rank r in lane r % 4: the maxima do not depend on the order, and the bytes (a sum of
  // four partial sums, fixed for a given rank count) need no chain of 144 dependent additions.
  double dispatch[4] = {0, 0, 0, 0}, combine[4] = {0, 0, 0, 0}, peers[4] = {0, 0, 0, 0};
  double bytes[4] = {0, 0, 0, 0};
  int next = 0;
  for (; next + 4 <= ranks; next += 4) {
    for (int lane = 0; lane < 4; ++lane) {
      dispatch[lane] = std::max(dispatch[lane], rank_dispatch_[next + lane]);
      combine[lane] = std::max(combine[lane], rank_combine_[next + lane]);
      peers[lane] = std::max(peers[lane], rank_peers_[next + lane]);
      bytes[lane] += rank_bytes_[next + lane];
    }
  }
  for (; next < ranks; ++next) {
    dispatch[0] = std::max(dispatch[0], rank_dispatch_[next]);
    combine[0] = std::max(combine[0], rank_combine_[next]);
    peers[0] = std::max(peers[0], rank_peers_[next]);
    bytes[0] += rank_bytes_[next];
  }
  auto largest = [](const double(&lanes)[4]) {
    return std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  };
  dispatch_transfer_ = largest(dispatch);
  combine_transfer_ = largest(combine);
  most_peers_ = static_cast<int>(largest(peers));
  load_bytes_ = (bytes[0] + bytes[1]) + (bytes[2] + bytes[3]);
}

bool ExpertParallelComm::compute_loads(const EpTraffic& traffic) const {
  const int ranks = layout_.rank_count();
  if (traffic.tokens_from_rank.size() != static_cast<std::size_t>(ranks) ||
      traffic.assignments_to_rank.size() != static_cast<std::size_t>(ranks) || traffic.top_k <= 0) {
    throw InternalError(fmt::format("EpTraffic: expected {} ranks and top_k > 0, got {} / {} ranks, top_k {}",
                                    ranks, traffic.tokens_from_rank.size(),
                                    traffic.assignments_to_rank.size(), traffic.top_k));
  }
  if (std::memcmp(traffic.tokens_from_rank.data(), source_tokens_.data(), sizeof(double) * ranks) != 0)
    update_sources(traffic.tokens_from_rank);
  const double* assigned = traffic.assignments_to_rank.data();
  // Four partial sums (assignment counts are whole numbers, so the order does not change the sum).
  double partial[4] = {0, 0, 0, 0};
  int next = 0;
  for (; next + 4 <= ranks; next += 4) {
    for (int lane = 0; lane < 4; ++lane)
      partial[lane] += assigned[next + lane];
  }
  for (; next < ranks; ++next)
    partial[0] += assigned[next];
  const double all_assignments = (partial[0] + partial[1]) + (partial[2] + partial[3]);
  const double all_tokens = all_tokens_;
  most_peers_ = 0;
  any_same_node_ = false;
  any_cross_node_ = false;
  if (!(all_assignments > 0) || !(all_tokens > 0)) return false;

  const double k = traffic.top_k;
  const double payload = traffic.bytes_per_token;
  const double* tokens_from = traffic.tokens_from_rank.data();
  const double inverse_assignments = 1.0 / all_assignments;
  if (transport_ == EpTransport::high_throughput && uniform_node_ranks_ != 0) {
    with_top_k(traffic.top_k, [&](auto top_k) {
      if (uniform_node_ranks_ == 8) {
        high_throughput_uniform_nodes<8, decltype(top_k)::value>(traffic, inverse_assignments);
      } else {
        high_throughput_uniform_nodes<4, decltype(top_k)::value>(traffic, inverse_assignments);
      }
    });
    return true;
  }
  double* share = rank_share_.data();
  double* rank_active = rank_active_.data();
  double active_ranks = 0;
  for (int r = 0; r < ranks; ++r) {
    share[r] = assigned[r] * inverse_assignments;
    rank_active[r] = share[r] > 0 ? 1.0 : 0.0;
    active_ranks += rank_active[r];
  }
  std::fill(node_share_.begin(), node_share_.end(), 0.0);
  std::fill(node_active_ranks_.begin(), node_active_ranks_.end(), 0.0);
  add_by_node(share, node_share_.data());
  add_by_node(rank_active, node_active_ranks_.data());
  const double* sends = sends_.data();
  const RankRecorder record_rank{costs_.scale_up_out.data(),  costs_.scale_up_in.data(),
                                 costs_.scale_out_out.data(), costs_.scale_out_in.data(),
                                 rank_dispatch_.data(),       rank_combine_.data(),
                                 rank_bytes_.data()};
  double* peers = rank_peers_.data();
  int same_node = 0, cross_node = 0;

  if (transport_ == EpTransport::low_latency) {
    const bool rdma_only = rdma_only_;
    for (const NodeRun& run : runs_) {
      const double node_share = node_share_[run.node];
      const double node_tokens = node_tokens_[run.node];
      // Every array written here is scratch of its own, read by no other rank's iteration.
#pragma GCC ivdep
      for (int r = run.first; r < run.end; ++r) {
        const double tokens = tokens_from[r];
        const double own_share = share[r];
        const double sent = k * tokens * payload;
        const double same_node_out = sent * (node_share - own_share);
        const double cross_node_out = sent * (1 - node_share);
        same_node |= static_cast<int>(same_node_out > 0);
        cross_node |= static_cast<int>(cross_node_out > 0);
        if (rdma_only) {
          record_rank(r, 0, 0, sent * (1 - own_share), k * payload * own_share * (all_tokens - tokens));
        } else {
          record_rank(r, same_node_out, k * payload * own_share * (node_tokens - tokens), cross_node_out,
                      k * payload * own_share * (all_tokens - node_tokens));
        }
        // Only ranks with tokens of their own send (sends_ is 1 for them, else 0).
        peers[r] = sends[r] * (active_ranks - rank_active[r]);
      }
    }
    summarise_ranks();
    any_same_node_ = same_node != 0;
    any_cross_node_ = cross_node != 0;
    return true;
  }

  const int limit = traffic.max_nodes_per_token;
  const bool node_limited = limit > 0 && limit < layout_.node_count();
  double reach_sum = 0;
  int nodes_reached = 0;
  for (int node = 0; node < layout_.node_count(); ++node) {
    if (node_limited) {
      const double selected = std::min(1.0, limit * node_share_[node]);
      node_selected_[node] = selected;
      node_reach_[node] =
          selected > 0 ? selected * (1 - integer_power(1 - node_share_[node] / selected, traffic.top_k))
                       : 0.0;
    } else {
      node_reach_[node] = 1 - integer_power(1 - node_share_[node], traffic.top_k);
    }
    reach_sum += node_reach_[node];
    if (node_reach_[node] > 0) ++nodes_reached;
  }
  std::fill(node_unique_.begin(), node_unique_.end(), 0.0);
  with_top_k(traffic.top_k,
             [&](auto top_k) { compute_rank_reach<decltype(top_k)::value>(traffic.top_k, node_limited); });
  const double* reach = rank_reach_.data();
  const double* rail_tokens = rail_tokens_.data();
  const double* relayed_tokens = relayed_tokens_.data();
  const double* forwards = forwards_.data();
  for (const NodeRun& run : runs_) {
    const double node_reach = node_reach_[run.node];
    const double other_nodes_reach = reach_sum - node_reach;
    const double unique = node_unique_[run.node];
    const double active = node_active_ranks_[run.node];
    const double remote_peers = nodes_reached - (node_reach > 0 ? 1 : 0);
    // Every array written here is scratch of its own, read by no other rank's iteration.
#pragma GCC ivdep
    for (int r = run.first; r < run.end; ++r) {
      const double rank_net_out = tokens_from[r] * payload * other_nodes_reach;
      const double rank_net_in = payload * node_reach * relayed_tokens[r];
      const double rank_up_out = payload * rail_tokens[r] * (unique - reach[r]);
      const double rank_up_in = payload * reach[r] * (all_tokens - rail_tokens[r]);
      record_rank(r, rank_up_out, rank_up_in, rank_net_out, rank_net_in);
      same_node |= static_cast<int>(rank_up_out > 0);
      cross_node |= static_cast<int>(rank_net_out > 0);
      // From the stored flags rather than comparisons, which the compiler turns into branches that
      // routing makes unpredictable.
      peers[r] = forwards[r] * (active - rank_active[r]) + sends[r] * remote_peers;
    }
  }
  summarise_ranks();
  any_same_node_ = same_node != 0;
  any_cross_node_ = cross_node != 0;
  return true;
}

double ExpertParallelComm::phase_seconds(const EpTraffic& traffic, bool reverse) const {
  if (!compute_loads(traffic)) return 0;
  return phase_from_loads(reverse, 1.0);
}

double ExpertParallelComm::phase_from_loads(bool reverse, double payload_scale) const {
  return phase_total(reverse ? combine_transfer_ : dispatch_transfer_, payload_scale);
}

double ExpertParallelComm::phase_total(double transfer, double payload_scale) const {
  const double cross_latency = transport_ == EpTransport::low_latency ? cross_node_latency_ : rail_latency_;
  const double latency =
      std::max(any_same_node_ ? same_node_latency_ : 0.0, any_cross_node_ ? cross_latency : 0.0);
  if (most_peers_ == 0) return 0;
  return transfer * payload_scale + latency +
         (params_.launch_overhead_us + params_.per_peer_overhead_us * most_peers_) * kSecondsPerUs;
}

double ExpertParallelComm::dispatch_seconds(const EpTraffic& traffic) const {
  return phase_seconds(traffic, false);
}

double ExpertParallelComm::combine_seconds(const EpTraffic& traffic) const {
  return phase_seconds(traffic, true);
}

double ExpertParallelComm::bytes(const EpTraffic& traffic) const {
  if (!compute_loads(traffic)) return 0;
  return load_bytes_;
}

EpPhaseCosts ExpertParallelComm::dispatch_and_combine(const EpTraffic& traffic,
                                                      double combine_bytes_per_token) const {
  EpPhaseCosts costs;
  if (!compute_loads(traffic) || !(traffic.bytes_per_token > 0)) return costs;
  // Every load is linear in the payload, so the combine reuses the dispatch loads, reversed and rescaled.
  const double combine_scale = combine_bytes_per_token / traffic.bytes_per_token;
  costs.dispatch_seconds = phase_total(dispatch_transfer_, 1.0);
  costs.combine_seconds = phase_total(combine_transfer_, combine_scale);
  costs.dispatch_bytes = load_bytes_;
  costs.combine_bytes = load_bytes_ * combine_scale;
  return costs;
}

}  // namespace moesim
