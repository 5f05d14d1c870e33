#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/moe/placement.hpp"
#include "sim/router/router.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

PlacementSpec parse(std::string_view text) {
  const auto json = JsonReader::parse_text(text, "scenario.json");
  return parse_placement(JsonReader(json, "scenario.json", "deployment.placement"));
}

}  // namespace

TEST_CASE("contiguous placement puts expert e on rank e / (E / ranks)", "[moe][placement]") {
  const ExpertPlacement placement(PlacementKind::contiguous, 256, 32);
  CHECK(placement.slots() == 256);
  CHECK(placement.slots_per_rank() == 8);
  CHECK(placement.layers() == 1);
  for (int e = 0; e < 256; ++e) {
    REQUIRE(placement.expert_slots(0, e).size() == 1);
    const int slot = placement.expert_slots(0, e)[0];
    CHECK(placement.slot_expert(0, slot) == e);
    CHECK(placement.slot_expert(57, slot) == e);  // the shared layout serves every layer
    CHECK(placement.slot_rank(slot) == e / 8);
  }
}

TEST_CASE("round-robin placement puts expert e on rank e % ranks", "[moe][placement]") {
  const ExpertPlacement placement(PlacementKind::round_robin, 64, 8);
  for (int e = 0; e < 64; ++e) {
    const int slot = placement.expert_slots(0, e)[0];
    CHECK(placement.slot_expert(0, slot) == e);
    CHECK(placement.slot_rank(slot) == e % 8);
  }
}

TEST_CASE("per-layer placements index each layer's slots", "[moe][placement]") {
  const ExpertPlacement placement(3, 2, {{0, 1, 2, 0}, {2, 2, 1, 0}});
  CHECK(placement.layers() == 2);
  CHECK(placement.slots_per_rank() == 2);
  CHECK(std::vector<int>(placement.expert_slots(0, 0).begin(), placement.expert_slots(0, 0).end()) ==
        std::vector<int>{0, 3});
  CHECK(std::vector<int>(placement.expert_slots(1, 2).begin(), placement.expert_slots(1, 2).end()) ==
        std::vector<int>{0, 1});
  CHECK(placement.expert_slots(1, 0).size() == 1);
  CHECK(placement.slot_expert(1, 2) == 1);
  CHECK_THROWS_WITH(ExpertPlacement(3, 2, {{0, 1, 1, 0}}), Contains("expert 2 has no slot in layer 0"));
  CHECK_THROWS_AS(ExpertPlacement(3, 2, {{0, 1, 2, 0}, {0, 1, 2}}), InternalError);
  CHECK_THROWS_AS(ExpertPlacement(3, 2, {{0, 1, 2}}), InternalError);  // 3 slots on 2 ranks
  CHECK_THROWS_AS(ExpertPlacement(3, 2, {{0, 1, 2, 3}}), InternalError);
}

TEST_CASE("placement specs parse, round-trip, and bad ones name the key", "[moe][placement]") {
  CHECK(parse("{}").kind == PlacementKind::contiguous);
  CHECK(parse(R"({"kind": "round_robin"})").kind == PlacementKind::round_robin);
  const auto eplb = parse(R"({"kind": "eplb"})");
  CHECK(eplb.kind == PlacementKind::eplb);
  CHECK_FALSE(eplb.hierarchical);
  CHECK(parse(R"({"kind": "eplb", "hierarchical": true})").hierarchical);
  for (const auto* text : {R"({"kind": "round_robin"})", R"({"kind": "eplb", "hierarchical": true})",
                           R"({"kind": "eplb", "hierarchical": false})", R"({"kind": "contiguous"})"}) {
    CHECK(to_json(parse(text)) == JsonReader::parse_text(text, "x"));
  }
  CHECK_THROWS_WITH(
      parse(R"({"kind": "greedy"})"),
      Contains("scenario.json: deployment.placement.kind: expected one of [contiguous, round_robin, eplb]"));
  CHECK_THROWS_WITH(parse(R"({"kind": 7})"), Contains("deployment.placement.kind: expected a string"));
  CHECK_THROWS_WITH(parse(R"({"kind": null})"), Contains("deployment.placement.kind"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "hierarchical": "yes"})"),
                    Contains("deployment.placement.hierarchical"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "hierarchical": 1})"),
                    Contains("deployment.placement.hierarchical"));
  CHECK_THROWS_WITH(parse(R"({"kind": "contiguous", "hierarchical": true})"),
                    Contains("deployment.placement: unknown key \"hierarchical\""));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "redundant": 32})"),
                    Contains("deployment.placement: unknown key \"redundant\""));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "eplb", "hierarchical": NaN})", "scenario.json"),
                    Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "ep)", "scenario.json"),
                    Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text("", "scenario.json"), Contains("empty"));
}

TEST_CASE("bad placement shapes are input errors that say what was expected", "[moe][placement]") {
  const PlacementSpec contiguous;
  CHECK_THROWS_WITH(make_placement(contiguous, 256, 24),
                    Contains("256 experts to split evenly over 24 EP ranks"));
  CHECK_THROWS_AS(ExpertPlacement(PlacementKind::contiguous, 8, 0), InputError);
  PlacementSpec eplb;
  eplb.kind = PlacementKind::eplb;
  CHECK_THROWS_WITH(make_placement(eplb, 256, 32), Contains("placement: kind: eplb placement needs"));

  RouterSpec uniform;
  const auto router = make_router(uniform, 4, 64, 4, 1);
  CHECK_THROWS_WITH(make_placement(contiguous, {64, 8, 8, 0}, *router),
                    Contains("8 redundant expert slots need the eplb placement"));
  CHECK_THROWS_WITH(make_placement(eplb, {64, 8, 4, 0}, *router),
                    Contains("68 slots (64 experts + 4 redundant) to split evenly over 8 EP ranks"));
  CHECK_THROWS_WITH(make_placement(eplb, {64, 8, -8, 0}, *router),
                    Contains("placement: redundant_experts: expected an integer >= 0, got -8"));
  CHECK_THROWS_WITH(make_placement(eplb, {64, 8, 1 << 30, 0}, *router),
                    Contains("expected at most 448 redundant slots"));
  CHECK(make_placement(eplb, {64, 8, 448, 0}, *router).slots_per_rank() == 64);
  CHECK(make_placement(eplb, {64, 8, 8, 0}, *router).slots() == 72);
  CHECK(make_placement(contiguous, {64, 8, 0, 0}, *router).layers() == 1);
}
