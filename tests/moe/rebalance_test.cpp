#include <catch2/catch.hpp>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "sim/common/paths.hpp"
#include "sim/moe/layer_evaluator.hpp"
#include "sim/moe/rebalance.hpp"
#include "sim/router/router.hpp"

using namespace moesim;

namespace {

constexpr SimTime kSecond = kNanosecondsPerSecond;

std::vector<int> layout(const ExpertPlacement& placement, int layer) {
  std::vector<int> slots;
  for (int slot = 0; slot < placement.slots(); ++slot)
    slots.push_back(placement.slot_expert(layer, slot));
  return slots;
}

// One step at `now` routing `counts` at every layer.
void step(ExpertRebalancer& rebalancer, SimTime now, const std::vector<std::int32_t>& counts,
          int layers = 1) {
  rebalancer.begin_step(now);
  for (int layer = 0; layer < layers; ++layer)
    rebalancer.observe(layer, counts);
}

}  // namespace

TEST_CASE("rebalancing re-places from the observed window and charges the moved weights",
          "[moe][rebalance]") {
  // 4 experts + 2 redundant slots on 2 ranks. Old: rank 0 holds 0, 0, 1; rank 1 holds 2, 3, 3.
  const ExpertPlacement old(4, 2, {{0, 0, 1, 2, 3, 3}});
  ExpertRebalancer rebalancer({10, 10}, {4, 2, 2, 0}, false, 1, 1e9);
  CHECK_FALSE(rebalancer.due(9 * kSecond));
  step(rebalancer, 1 * kSecond, {0, 0, 10, 10});
  REQUIRE(rebalancer.due(10 * kSecond));
  const auto move = rebalancer.rebalance(10 * kSecond, old);
  REQUIRE(move);
  // EPLB gives experts 2 and 3 a second slot each and packs {0, 2, 3} and {1, 2, 3}; the first pack
  // shares two experts with old rank 1, so it goes there. Rank 0 keeps expert 1 and fetches 2 and 3
  // from rank 1; rank 1 keeps 2 and 3 and fetches 0 from rank 0.
  CHECK(layout(move->placement, 0) == std::vector<int>{1, 2, 3, 0, 2, 3});
  CHECK(move->slots_moved == 3);
  CHECK(move->bytes == std::vector<double>{0, 1e9, 2e9, 0});
  CHECK(rebalancer.next_due() == 20 * kSecond);

  // The new layout balances what was observed: 10 + 10 assignments over two ranks.
  MoeLayerEvaluator before(old, CapacitySpec{}, 4, 2), after(move->placement, CapacitySpec{}, 4, 2);
  const std::vector<std::int32_t> counts{0, 0, 10, 10};
  CHECK(before.evaluate(0, 10, counts).kept_per_rank == std::vector<std::int64_t>{0, 20});
  CHECK(after.evaluate(0, 10, counts).kept_per_rank == std::vector<std::int64_t>{10, 10});

  // The window was emptied: nothing observed in the next period, no rebalance, the schedule moves on
  // past idle periods.
  CHECK_FALSE(rebalancer.rebalance(45 * kSecond, move->placement));
  CHECK(rebalancer.next_due() == 50 * kSecond);
}

TEST_CASE("a layer keeps its layout unless the new one gains min_gain", "[moe][rebalance]") {
  // The setup above: the old layout's busiest rank carries 20 of the window's load, EPLB's new one 10.
  const ExpertPlacement old(4, 2, {{0, 0, 1, 2, 3, 3}});
  for (const double min_gain : {0.5, 0.6}) {
    CAPTURE(min_gain);
    ExpertRebalancer rebalancer({10, 10, min_gain}, {4, 2, 2, 0}, false, 1, 1e9);
    step(rebalancer, 1 * kSecond, {0, 0, 10, 10});
    const auto move = rebalancer.rebalance(10 * kSecond, old);
    REQUIRE(move);
    const bool kept = min_gain > 0.5;  // a gain of exactly one half
    CHECK(move->layers_kept == (kept ? 1 : 0));
    CHECK(move->slots_moved == (kept ? 0 : 3));
    CHECK(layout(move->placement, 0) ==
          (kept ? std::vector<int>{0, 0, 1, 2, 3, 3} : std::vector<int>{1, 2, 3, 0, 2, 3}));
  }
}

TEST_CASE("the rebalancing window sees only its last window_s seconds", "[moe][rebalance]") {
  const ExpertPlacement old(4, 2, {{0, 1, 2, 3}});
  // Every 10 s from the last 4 s: the load at 2 s is not seen, the load at 7 s is.
  ExpertRebalancer short_window({10, 4}, {4, 2, 0, 0}, false, 1, 1.0);
  step(short_window, 2 * kSecond, {100, 100, 0, 0});
  step(short_window, 7 * kSecond, {10, 0, 10, 0});
  auto move = short_window.rebalance(10 * kSecond, old);
  REQUIRE(move);
  // Only experts 0 and 2 are loaded: they land on different ranks.
  CHECK(move->placement.slot_rank(move->placement.expert_slots(0, 0)[0]) !=
        move->placement.slot_rank(move->placement.expert_slots(0, 2)[0]));

  // A window of two periods keeps the previous period's load for one more rebalance.
  ExpertRebalancer long_window({10, 20}, {4, 2, 0, 0}, false, 1, 1.0);
  step(long_window, 5 * kSecond, {10, 10, 0, 0});
  REQUIRE(long_window.rebalance(10 * kSecond, old));
  CHECK(long_window.rebalance(20 * kSecond, old));        // still sees the load of 5 s
  CHECK_FALSE(long_window.rebalance(30 * kSecond, old));  // now forgotten
}

TEST_CASE("hierarchical rebalancing keeps packs on their node", "[moe][rebalance]") {
  // 8 experts on 4 ranks, 2 ranks per node, no redundancy; all load on experts 6 and 7.
  const ExpertPlacement old(PlacementKind::contiguous, 8, 4);
  ExpertRebalancer rebalancer({1, 1}, {8, 4, 0, 2}, true, 2, 1.0);
  step(rebalancer, 0, {1, 1, 1, 1, 1, 1, 50, 50}, 2);
  const auto move = rebalancer.rebalance(kSecond, old);
  REQUIRE(move);
  CHECK(move->placement.layers() == 2);
  for (int layer = 0; layer < 2; ++layer) {
    // The hot experts 6 and 7 (one group) share a node; no rank holds both.
    const int rank6 = move->placement.slot_rank(move->placement.expert_slots(layer, 6)[0]);
    const int rank7 = move->placement.slot_rank(move->placement.expert_slots(layer, 7)[0]);
    CHECK(rank6 / 2 == rank7 / 2);
    CHECK(rank6 != rank7);
  }
  // Every moved slot crossed between ranks, never to itself.
  double moved = 0;
  for (int rank = 0; rank < 4; ++rank)
    CHECK(move->bytes[static_cast<std::size_t>(rank * 4 + rank)] == 0);
  for (const double bytes : move->bytes)
    moved += bytes;
  CHECK(moved == static_cast<double>(move->slots_moved));
}

namespace {

std::unique_ptr<Router> olmoe_router(const std::string& domain, std::uint64_t seed) {
  RouterSpec spec;
  spec.kind = PopularityKind::empirical;
  spec.empirical = {data_directory() / "routing/olmoe-mixtral/expert_counts.csv",
                    "OLMoE-1B-7B-0924",
                    {domain},
                    CountSelection::topk};
  return make_router(spec, 16, 64, 8, seed);
}

struct Phase {
  double rank_excess = 0;  // (max - mean) / mean of the routed per-rank load, averaged over layers and steps
  double drop_rate = 0;    // of the rank capacity, averaged the same way
};

}  // namespace

TEST_CASE(
    "a routing shift from one OLMoE domain to another raises imbalance and drops until the next "
    "rebalance",
    "[moe][rebalance][olmoe]") {
  // OLMoE (16 MoE layers, 64 experts, top-8) on EP8, 512 tokens per step, one step every 0.5 s, drop at
  // the rank's capacity (factor 1). Traffic is arxiv for 20 s, then github; rebalancing every 10 s
  // from the last 10 s. The placement starts as EPLB of the arxiv popularity.
  constexpr int kLayers = 16, kExperts = 64, kTopK = 8, kRanks = 8;
  constexpr std::int64_t kTokens = 512;
  auto arxiv = olmoe_router("arxiv", 1);
  auto github = olmoe_router("github", 2);
  PlacementSpec eplb;
  eplb.kind = PlacementKind::eplb;
  const PlacementShape shape{kExperts, kRanks, 0, 0};
  const CapacitySpec capacity{1.0, {}, CapacityPolicy::drop, CapacityScope::per_rank};

  const auto run = [&](bool rebalancing) {
    auto placement = std::make_unique<ExpertPlacement>(make_placement(eplb, shape, *arxiv));
    auto evaluator = std::make_unique<MoeLayerEvaluator>(*placement, capacity, kExperts, kTopK);
    auto routed = std::make_unique<MoeLayerEvaluator>(*placement, CapacitySpec{}, kExperts, kTopK);
    ExpertRebalancer rebalancer({10, 10}, shape, false, kLayers, 1.0);
    std::vector<Phase> phases(4);  // 0-10, 10-20, 20-30, 30-40 s
    std::vector<std::int32_t> counts(kExperts);
    for (int tick = 0; tick < 80; ++tick) {
      const SimTime now = tick * kSecond / 2;
      if (rebalancing && rebalancer.due(now)) {
        if (auto move = rebalancer.rebalance(now, *placement)) {
          auto next = std::make_unique<ExpertPlacement>(std::move(move->placement));
          evaluator = std::make_unique<MoeLayerEvaluator>(*next, capacity, kExperts, kTopK);
          routed = std::make_unique<MoeLayerEvaluator>(*next, CapacitySpec{}, kExperts, kTopK);
          placement = std::move(next);
        }
      }
      rebalancer.begin_step(now);
      Router& router = now < 20 * kSecond ? *arxiv : *github;
      Phase& phase = phases[static_cast<std::size_t>(tick / 20)];
      for (int layer = 0; layer < kLayers; ++layer) {
        router.sample_counts(layer, kTokens, counts);
        rebalancer.observe(layer, counts);
        const MoeLayerResult& r = evaluator->evaluate(layer, kTokens, counts);
        phase.rank_excess += (routed->evaluate(layer, kTokens, counts).rank_imbalance() - 1) / (20 * kLayers);
        phase.drop_rate += static_cast<double>(r.dropped_assignments) / r.assignments / (20 * kLayers);
      }
    }
    return phases;
  };
  const auto fixed = run(false);
  const auto rebalanced = run(true);
  std::ostringstream phases;
  for (std::size_t p = 0; p < 4; ++p) {
    phases << "\n"
           << p * 10 << "-" << p * 10 + 10 << " s: fixed " << fixed[p].rank_excess << " / "
           << fixed[p].drop_rate << ", rebalanced " << rebalanced[p].rank_excess << " / "
           << rebalanced[p].drop_rate;
  }
  INFO("rank (max - mean) / mean, drop rate" << phases.str());
  // The shift at 20 s raises both with the arxiv placement ...
  CHECK(fixed[2].rank_excess > 2 * fixed[1].rank_excess);
  CHECK(fixed[2].drop_rate > 2 * fixed[1].drop_rate);
  CHECK(fixed[3].rank_excess > 2 * fixed[1].rank_excess);
  CHECK(fixed[3].drop_rate > 2 * fixed[1].drop_rate);
  // ... the rebalance at 20 s (from the arxiv window) does not help ...
  CHECK(rebalanced[2].rank_excess > 2 * rebalanced[1].rank_excess);
  CHECK(rebalanced[2].drop_rate > 2 * rebalanced[1].drop_rate);
  // ... and the one at 30 s, from the github window, brings both back to the arxiv level.
  CHECK(rebalanced[3].rank_excess < 1.25 * rebalanced[1].rank_excess);
  CHECK(rebalanced[3].drop_rate < 1.25 * rebalanced[1].drop_rate);
}
