#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/moe/capacity.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

CapacitySpec parse(std::string_view text) {
  const auto json = JsonReader::parse_text(text, "scenario.json");
  return parse_capacity(JsonReader(json, "scenario.json", "capacity"));
}

}  // namespace

TEST_CASE("capacity specs parse with defaults and round-trip", "[moe][capacity]") {
  const auto defaults = parse("{}");
  CHECK(defaults.capacity_factor == 1.0);
  CHECK(defaults.policy == CapacityPolicy::dropless);
  CHECK(defaults.scope == CapacityScope::per_expert);
  const auto spec = parse(R"({"capacity_factor": 1.25, "policy": "drop", "scope": "per_rank"})");
  CHECK(spec.capacity_factor == 1.25);
  CHECK(spec.policy == CapacityPolicy::drop);
  CHECK(spec.scope == CapacityScope::per_rank);
  CHECK(to_json(parse(to_json(spec).dump())) == to_json(spec));
  const auto reroute = parse(R"({"policy": "reroute", "capacity_factor": [1, 1.5, 2]})");
  CHECK(reroute.policy == CapacityPolicy::reroute);
  CHECK(reroute.layer_factors == std::vector<double>{1, 1.5, 2});
  CHECK(reroute.factor(1) == 1.5);
  CHECK(to_json(reroute)["capacity_factor"] == nlohmann::json::array({1, 1.5, 2}));
  CHECK(to_json(parse(to_json(reroute).dump())) == to_json(reroute));
  CHECK_NOTHROW(check_capacity_layers(reroute, 3, "scenario.json"));
  CHECK_THROWS_WITH(
      check_capacity_layers(reroute, 58, "scenario.json"),
      Contains("scenario.json: capacity.capacity_factor: expected one factor per MoE layer (58 of "
               "them), got 3"));
  CHECK_NOTHROW(check_capacity_layers(spec, 58, "scenario.json"));
}

TEST_CASE("capacity is ceil(cf * tokens * k / experts)", "[moe][capacity]") {
  CapacitySpec spec{1.25, {}, CapacityPolicy::drop, CapacityScope::per_expert};
  CHECK(expert_capacity(spec.capacity_factor, 2048, 8, 256) == 80);  // exactly 80
  CHECK(expert_capacity(spec.capacity_factor, 2049, 8, 256) == 81);  // 80.03
  CHECK(expert_capacity(spec.capacity_factor, 1, 8, 256) == 1);
  CHECK(expert_capacity(spec.capacity_factor, 0, 8, 256) == 0);
  spec.capacity_factor = 1.1;
  CHECK(expert_capacity(spec.capacity_factor, 1000, 2, 8) == 275);  // 275 up to rounding of 1.1
  CHECK(rank_capacity(spec.capacity_factor, 1000, 2, 8, 2) == 550);
}

TEST_CASE("bad capacity specs name the key", "[moe][capacity]") {
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": 0})"),
                    Contains("scenario.json: capacity.capacity_factor: expected a positive"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": -1})"), Contains("capacity.capacity_factor"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": 1e9})"),
                    Contains("capacity.capacity_factor: expected a positive number of at most 1000"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": "1.2"})"), Contains("capacity.capacity_factor: expected a"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": null})"), Contains("capacity.capacity_factor"));
  CHECK_THROWS_WITH(parse(R"({"policy": "bounce"})"),
                    Contains("capacity.policy: expected one of [dropless, drop, reroute]"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": []})"),
                    Contains("capacity.capacity_factor: expected one factor per MoE layer, got []"));
  CHECK_THROWS_WITH(
      parse(R"({"capacity_factor": [1, -1]})"),
      Contains("capacity.capacity_factor[1]: expected a positive number of at most 1000, got -1"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": [1, 0]})"), Contains("capacity.capacity_factor[1]"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": [1, 2000]})"), Contains("capacity.capacity_factor[1]"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": [1, "2"]})"),
                    Contains("capacity.capacity_factor[1]: expected a finite number"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": [1, [2]]})"), Contains("capacity.capacity_factor[1]"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factor": {"a": 1}})"), Contains("capacity.capacity_factor"));
  CHECK_THROWS_WITH(parse(R"({"scope": 1})"), Contains("capacity.scope: expected a string"));
  CHECK_THROWS_WITH(parse(R"({"capacity_factr": 1})"), Contains("capacity_factr"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"capacity_factor": NaN})", "scenario.json"),
                    Contains("line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"capacity_factor": 1.)", "scenario.json"), Contains("line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text(" ", "scenario.json"), Contains("empty"));
  const auto json = JsonReader::parse_text("[1]", "scenario.json");
  CHECK_THROWS_WITH(parse_capacity(JsonReader(json, "scenario.json", "capacity")),
                    Contains("capacity: expected an object"));
}
