#include "sim/network/shared_transfers.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr double kSecondsPerUs = 1e-6;

// Whole nanoseconds to move `bytes` at `rate` bytes per second, rounded up; float noise below a
// millionth of a nanosecond does not add a nanosecond.
SimTime drain_ns(double bytes, double rate) {
  if (!(rate > 0)) return kTimeInfinity;
  return static_cast<SimTime>(std::ceil(bytes * 1e9 / rate - 1e-6));
}

}  // namespace

SharedLinkTransfers::SharedLinkTransfers(const ClusterGraph& graph, const NetworkParams& params)
    : graph_(graph), params_(params) {
  const auto links = static_cast<std::size_t>(graph.link_count());
  link_rate_.resize(links);
  for (int link = 0; link < graph.link_count(); ++link)
    link_rate_[link] = graph.link_bandwidth(link) * params_.efficiency(graph.link_class(link));
  capacity_left_.resize(links);
  unfrozen_on_link_.resize(links);
}

void SharedLinkTransfers::start(std::uint64_t tag, std::span<const TransferFlow> flows, SimTime now) {
  if (flows_left_.contains(tag)) throw InternalError(fmt::format("transfer {} is already in flight", tag));
  advance_to(now);
  int pending = 0;
  for (const TransferFlow& flow : flows) {
    if (flow.src_gpu == flow.dst_gpu || !(flow.bytes > 0)) continue;
    const GraphPath& path = graph_.path(flow.src_gpu, flow.dst_gpu);
    Flow added;
    added.tag = tag;
    added.links = path.links;
    added.remaining_bytes = flow.bytes;
    added.tail_ns = seconds_to_ns(params_.launch_overhead_us * kSecondsPerUs + path.latency_s);
    flowing_.push_back(added);
    ++pending;
  }
  if (pending == 0) {
    finished_.push_back({now, tag});
    return;
  }
  flows_left_.emplace(tag, pending);
  share_links(now);
}

SimTime SharedLinkTransfers::next_completion() const {
  SimTime next = kTimeInfinity;
  for (const Flow& flow : flowing_)
    next = std::min(next, flow.drains_at);
  for (const Tail& tail : tails_)
    next = std::min(next, tail.finishes_at);
  if (!finished_.empty()) next = std::min(next, now_);
  return next;
}

void SharedLinkTransfers::finish_until(SimTime now, std::vector<std::uint64_t>& finished) {
  advance_to(now);
  std::sort(finished_.begin(), finished_.end(), [](const Tail& a, const Tail& b) {
    return a.finishes_at != b.finishes_at ? a.finishes_at < b.finishes_at : a.tag < b.tag;
  });
  for (const Tail& done : finished_)
    finished.push_back(done.tag);
  finished_.clear();
}

void SharedLinkTransfers::flow_done(std::uint64_t tag, SimTime at) {
  const auto found = flows_left_.find(tag);
  if (--found->second == 0) {
    flows_left_.erase(found);
    finished_.push_back({at, tag});
  }
}

void SharedLinkTransfers::advance_to(SimTime now) {
  if (now < now_) throw InternalError(fmt::format("transfers moved back in time: {} < {}", now, now_));
  while (true) {
    SimTime next = kTimeInfinity;
    for (const Flow& flow : flowing_)
      next = std::min(next, flow.drains_at);
    for (const Tail& tail : tails_)
      next = std::min(next, tail.finishes_at);
    if (next > now) break;
    const double elapsed_s = ns_to_seconds(next - now_);
    bool drained = false;
    for (std::size_t i = 0; i < flowing_.size();) {
      Flow& flow = flowing_[i];
      if (flow.drains_at <= next) {
        tails_.push_back({flow.drains_at + flow.tail_ns, flow.tag});
        flow = flowing_.back();
        flowing_.pop_back();
        drained = true;
        continue;
      }
      flow.remaining_bytes = std::max(0.0, flow.remaining_bytes - flow.rate * elapsed_s);
      ++i;
    }
    for (std::size_t i = 0; i < tails_.size();) {
      if (tails_[i].finishes_at <= next) {
        flow_done(tails_[i].tag, tails_[i].finishes_at);
        tails_[i] = tails_.back();
        tails_.pop_back();
        continue;
      }
      ++i;
    }
    now_ = next;
    if (drained) share_links(next);
  }
  const double elapsed_s = ns_to_seconds(now - now_);
  for (Flow& flow : flowing_)
    flow.remaining_bytes = std::max(0.0, flow.remaining_bytes - flow.rate * elapsed_s);
  now_ = now;
}

void SharedLinkTransfers::share_links(SimTime now) {
  // Progressive filling: the link with the smallest fair share fixes the rate of its unfrozen flows,
  // which then use up that much of every link they cross; repeat until every flow has its rate.
  touched_links_.clear();
  frozen_.assign(flowing_.size(), 0);
  for (const Flow& flow : flowing_) {
    for (const std::int32_t link : flow.links) {
      if (unfrozen_on_link_[link] == 0) {
        touched_links_.push_back(link);
        capacity_left_[link] = link_rate_[link];
      }
      ++unfrozen_on_link_[link];
    }
  }
  std::size_t unfrozen = flowing_.size();
  while (unfrozen > 0) {
    std::int32_t tightest = -1;
    double share = 0;
    for (const std::int32_t link : touched_links_) {
      if (unfrozen_on_link_[link] == 0) continue;
      const double link_share = std::max(0.0, capacity_left_[link]) / unfrozen_on_link_[link];
      if (tightest < 0 || link_share < share) {
        tightest = link;
        share = link_share;
      }
    }
    for (std::size_t f = 0; f < flowing_.size(); ++f) {
      Flow& flow = flowing_[f];
      if (frozen_[f] || std::find(flow.links.begin(), flow.links.end(), tightest) == flow.links.end())
        continue;
      frozen_[f] = 1;
      --unfrozen;
      flow.rate = share;
      const SimTime drain = drain_ns(flow.remaining_bytes, share);
      flow.drains_at = drain == kTimeInfinity ? kTimeInfinity : now + drain;
      for (const std::int32_t link : flow.links) {
        capacity_left_[link] -= share;
        --unfrozen_on_link_[link];
      }
    }
  }
}

}  // namespace moesim
