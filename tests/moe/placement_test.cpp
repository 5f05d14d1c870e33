#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

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

// A placement file with `text` in a scratch folder.
std::filesystem::path placement_file(const std::string& name, const std::string& text) {
  const auto folder = std::filesystem::temp_directory_path() / "moesim_placement_tests";
  std::filesystem::create_directories(folder);
  const auto file = folder / name;
  std::ofstream(file) << text;
  return file;
}

PlacementSpec parse_file(const std::string& name, const std::string& text) {
  const auto file = placement_file(name, text);
  const auto json =
      JsonReader::parse_text(R"({"kind": "file", "file": ")" + file.string() + "\"}", "scenario.json");
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
      Contains("scenario.json: deployment.placement.kind: expected one of [contiguous, round_robin, eplb, "
               "file]"));
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

TEST_CASE("a placement file gives each layer its slots", "[moe][placement][file]") {
  // 4 experts + 2 redundant slots on 2 ranks; layer 1 replicates expert 3 instead of expert 0.
  const auto spec = parse_file("two_layers.json", R"({"description": "test", "layers": [[0, 0, 1, 2, 3, 1],
                                                                                      [3, 0, 1, 3, 2, 3]]})");
  CHECK(spec.kind == PlacementKind::file);
  CHECK(to_json(spec)["kind"] == "file");
  CHECK(to_json(spec)["file"] == spec.file.string());
  RouterSpec uniform;
  const auto router = make_router(uniform, 2, 4, 2, 1);
  const ExpertPlacement placement = make_placement(spec, {4, 2, 2, 0}, *router);
  CHECK(placement.layers() == 2);
  CHECK(placement.slots_per_rank() == 3);
  CHECK(placement.expert_slots(0, 0).size() == 2);
  CHECK(placement.expert_slots(1, 3).size() == 3);
  CHECK(placement.slot_expert(1, 4) == 2);
  // One layout serves every layer.
  const auto shared = parse_file("shared.json", R"({"layers": [[0, 1, 2, 3]]})");
  CHECK(make_placement(shared, {4, 2, 0, 0}, *router).layers() == 1);
  // Relative paths are resolved against the scenario's folder.
  const auto folder = std::filesystem::temp_directory_path() / "moesim_placement_tests";
  const auto json = JsonReader::parse_text(R"({"kind": "file", "file": "shared.json"})", "scenario.json");
  CHECK(parse_placement(JsonReader(json, "scenario.json", "deployment.placement"), folder).file ==
        folder / "shared.json");
}

TEST_CASE("bad placement files name the file and the entry", "[moe][placement][file]") {
  CHECK_THROWS_WITH(parse_file("empty.json", ""), Contains("empty.json") && Contains("empty"));
  CHECK_THROWS_WITH(parse_file("truncated.json", R"({"layers": [[0, 1, )"),
                    Contains("truncated.json: line 1"));
  CHECK_THROWS_WITH(parse_file("nan.json", R"({"layers": [[0, NaN]]})"), Contains("nan.json: line 1"));
  CHECK_THROWS_WITH(parse_file("no_layers.json", "{}"), Contains("no_layers.json: layers"));
  CHECK_THROWS_WITH(parse_file("not_array.json", R"({"layers": 3})"),
                    Contains("not_array.json: layers: expected a non-empty array of slot lists"));
  CHECK_THROWS_WITH(parse_file("no_layer.json", R"({"layers": []})"), Contains("no_layer.json: layers"));
  CHECK_THROWS_WITH(parse_file("empty_layer.json", R"({"layers": [[0, 1], []]})"),
                    Contains("empty_layer.json: layers[1]: expected a non-empty array of expert ids"));
  CHECK_THROWS_WITH(parse_file("negative.json", R"({"layers": [[0, -1]]})"),
                    Contains("negative.json: layers[0][1]: expected an expert id (an integer >= 0), got"));
  CHECK_THROWS_WITH(parse_file("string.json", R"({"layers": [[0, "1"]]})"),
                    Contains("string.json: layers[0][1]: expected an expert id"));
  CHECK_THROWS_WITH(parse_file("float.json", R"({"layers": [[0, 1.5]]})"),
                    Contains("float.json: layers[0][1]"));
  CHECK_THROWS_WITH(parse_file("huge.json", R"({"layers": [[0, 99999999999999]]})"),
                    Contains("huge.json: layers[0][1]"));
  CHECK_THROWS_WITH(parse_file("unknown.json", R"({"layers": [[0]], "ranks": 2})"),
                    Contains("unknown.json") && Contains("unknown key \"ranks\""));
  const auto missing =
      JsonReader::parse_text(R"({"kind": "file", "file": "/nonexistent/placement.json"})", "s");
  CHECK_THROWS_WITH(parse_placement(JsonReader(missing, "scenario.json", "deployment.placement")),
                    Contains("/nonexistent/placement.json"));
  const auto no_file = JsonReader::parse_text(R"({"kind": "file"})", "s");
  CHECK_THROWS_WITH(parse_placement(JsonReader(no_file, "scenario.json", "deployment.placement")),
                    Contains("deployment.placement.file"));

  // Against the deployment: 4 experts, 2 ranks, the given redundant slots, 2 MoE layers.
  const auto check = [](const std::string& name, const std::string& layers, int redundant = 0) {
    check_placement_file(parse_file(name, R"({"layers": )" + layers + "}"), {4, 2, redundant, 0}, 2);
  };
  CHECK_NOTHROW(check("ok.json", "[[0, 1, 2, 3], [3, 2, 1, 0]]"));
  CHECK_THROWS_WITH(
      check("three.json", "[[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]"),
      Contains("three.json: layers: expected one layout for every MoE layer or one per MoE layer "
               "(2), got 3"));
  CHECK_THROWS_WITH(check("short.json", "[[0, 1, 2, 3], [0, 1, 2]]"),
                    Contains("short.json: layers[1]: expected 4 slots (4 experts + 0 redundant"));
  CHECK_THROWS_WITH(check("uneven.json", "[[0, 1, 2, 3, 0]]", 1),
                    Contains("uneven.json: layers[0]: expected the 5 slots to split evenly over 2 EP ranks"));
  CHECK_THROWS_WITH(check("range.json", "[[0, 1, 2, 4]]"),
                    Contains("range.json: layers[0][3]: expected an expert id below 4, got 4"));
  CHECK_THROWS_WITH(
      check("uncovered.json", "[[0, 1, 2, 2]]"),
      Contains("uncovered.json: layers[0]: expected every expert in at least one slot; expert 3 "
               "has none"));
  RouterSpec uniform;
  const auto router = make_router(uniform, 2, 4, 2, 1);
  CHECK_THROWS_WITH(
      make_placement(parse_file("range2.json", R"({"layers": [[0, 1, 2, 7]]})"), {4, 2, 0, 0}, *router),
      Contains("range2.json: layers[0][3]"));
}

TEST_CASE("rebalancing specs parse and bad ones name the key", "[moe][placement][rebalance]") {
  const auto spec = parse(R"({"kind": "eplb", "rebalance": {"every_s": 600}})");
  REQUIRE(spec.rebalance);
  CHECK(spec.rebalance->every_s == 600);
  CHECK(spec.rebalance->window_s == 600);
  CHECK(spec.rebalance->min_gain == 0);
  const char* text =
      R"({"kind": "eplb", "hierarchical": false, "rebalance": {"every_s": 60, "window_s": 180, "min_gain": 0.1}})";
  CHECK(to_json(parse(text)) == JsonReader::parse_text(text, "x"));
  CHECK(parse(R"({"kind": "eplb", "rebalance": {"every_s": 60, "window_s": 30}})").rebalance->window_s == 30);
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 60, "window_s": 90}})"),
                    Contains("deployment.placement.rebalance.window_s: expected at most every_s (60 s) or a "
                             "whole multiple of it"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 1, "window_s": 65}})"),
                    Contains("rebalance.window_s"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 0}})"),
                    Contains("deployment.placement.rebalance.every_s: expected a positive"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 1e10}})"),
                    Contains("rebalance.every_s: expected seconds in [0.001, 1000000000], got 10000000000"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 1e-10}})"),
                    Contains("rebalance.every_s: expected seconds in [0.001"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 1, "window_s": 1e-9}})"),
                    Contains("rebalance.window_s: expected seconds in [0.001"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {}})"), Contains("rebalance.every_s"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 60, "min_gain": 1.5}})"),
                    Contains("rebalance.min_gain"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 60, "min_gain": -0.1}})"),
                    Contains("rebalance.min_gain"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": "1"}})"),
                    Contains("rebalance.every_s"));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": {"every_s": 60, "period": 1}})"),
                    Contains("unknown key \"period\""));
  CHECK_THROWS_WITH(parse(R"({"kind": "eplb", "rebalance": 60})"),
                    Contains("deployment.placement.rebalance"));
  CHECK_THROWS_WITH(parse(R"({"kind": "contiguous", "rebalance": {"every_s": 60}})"),
                    Contains("deployment.placement: unknown key \"rebalance\""));
}
