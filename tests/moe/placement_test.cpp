#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/moe/placement.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

TEST_CASE("contiguous placement puts expert e on rank e / (E / ranks)", "[moe][placement]") {
  const ExpertPlacement placement(PlacementKind::contiguous, 256, 32);
  CHECK(placement.slots() == 256);
  CHECK(placement.slots_per_rank() == 8);
  for (int e = 0; e < 256; ++e) {
    REQUIRE(placement.expert_slots(e).size() == 1);
    const int slot = placement.expert_slots(e)[0];
    CHECK(placement.slot_expert(slot) == e);
    CHECK(placement.slot_rank(slot) == e / 8);
  }
}

TEST_CASE("round-robin placement puts expert e on rank e % ranks", "[moe][placement]") {
  const ExpertPlacement placement(PlacementKind::round_robin, 64, 8);
  for (int e = 0; e < 64; ++e) {
    const int slot = placement.expert_slots(e)[0];
    CHECK(placement.slot_expert(slot) == e);
    CHECK(placement.slot_rank(slot) == e % 8);
  }
}

TEST_CASE("placement specs parse and bad shapes are input errors", "[moe][placement]") {
  const auto json = JsonReader::parse_text(R"({"kind": "round_robin"})", "scenario.json");
  const auto spec = parse_placement(JsonReader(json, "scenario.json", "placement"));
  CHECK(spec.kind == PlacementKind::round_robin);
  CHECK(to_json(spec) == json);
  const auto bad = JsonReader::parse_text(R"({"kind": "eplb"})", "scenario.json");
  CHECK_THROWS_WITH(parse_placement(JsonReader(bad, "scenario.json", "placement")),
                    Contains("placement.kind: expected one of [contiguous, round_robin]"));
  CHECK_THROWS_WITH(make_placement(spec, 256, 24), Contains("256 experts to split evenly over 24 EP ranks"));
  CHECK_THROWS_AS(ExpertPlacement(PlacementKind::contiguous, 8, 0), InputError);
}
