#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "sim/common/error.hpp"
#include "sim/router/popularity.hpp"
#include "sim/router/router_spec.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

RouterSpec parse(std::string_view text) {
  const auto json = JsonReader::parse_text(text, "scenario.json");
  return parse_router(JsonReader(json, "scenario.json", "router"), "/base");
}

RouterSpec deepseek_spec() {
  return parse(R"({"kind": "preset", "name": "deepseek-v3"})");
}

double hottest(const PopularityTable& table, int layer) {
  const auto values = table.layer(layer);
  return *std::max_element(values.begin(), values.end());
}

}  // namespace

TEST_CASE("the deepseek-v3 preset parses and round-trips", "[router][preset]") {
  const RouterSpec spec = deepseek_spec();
  CHECK(spec.kind == PopularityKind::preset);
  CHECK(spec.preset == PopularityPreset::deepseek_v3);
  CHECK(to_json(spec) == JsonReader::parse_text(R"({"kind": "preset", "name": "deepseek-v3"})", "x"));
  CHECK(to_json(parse(to_json(spec).dump())) == to_json(spec));
}

TEST_CASE("bad preset specs name the key and what was expected", "[router][preset]") {
  CHECK_THROWS_WITH(parse(R"({"kind": "preset"})"), Contains("scenario.json: router.name: missing"));
  CHECK_THROWS_WITH(parse(R"({"kind": "preset", "name": "deepseek-v2"})"),
                    Contains("router.name: expected one of [deepseek-v3]"));
  CHECK_THROWS_WITH(parse(R"({"kind": "preset", "name": 3})"), Contains("router.name: expected a string"));
  CHECK_THROWS_WITH(parse(R"({"kind": "preset", "name": null})"), Contains("router.name"));
  CHECK_THROWS_WITH(parse(R"({"kind": "preset", "name": "deepseek-v3", "exponent": 1})"),
                    Contains("router: unknown key \"exponent\""));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "name": "deepseek-v3"})"), Contains("unknown key \"name\""));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "preset", "name": NaN})", "scenario.json"),
                    Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "preset", "na)", "scenario.json"),
                    Contains("scenario.json: line 1"));
  const std::string huge(100000, 'x');
  CHECK_THROWS_WITH(parse(R"({"kind": "preset", "name": ")" + huge + "\"}"),
                    Contains("router.name: expected one of [deepseek-v3]"));
}

TEST_CASE("the deepseek-v3 preset follows its documented per-layer profile", "[router][preset]") {
  const PopularityTable table = build_popularity(deepseek_spec(), 58, 256, 8, 1);
  for (int layer = 0; layer < 58; ++layer) {
    const auto values = table.layer(layer);
    CHECK(std::accumulate(values.begin(), values.end(), 0.0) == Approx(1.0).epsilon(1e-12));
  }
  CHECK(hottest(table, 0) == 0.02);
  CHECK(hottest(table, 7) == Approx(0.02 + 0.05 * (7.0 / 57.0) / 0.25));
  CHECK(hottest(table, 20) == 0.07);
  CHECK(hottest(table, 57) == 0.07);
  CHECK(hottest(table, 33) == 0.125);  // DeepSeek layer 36
  CHECK(hottest(table, 55) == 0.125);  // DeepSeek layer 58
  // The tail: popularity rank r >= 1 weighs (r + 1)^-0.2, so ranks 1 and 3 stand in ratio 2^0.2.
  std::vector<double> sorted(table.layer(20).begin(), table.layer(20).end());
  std::sort(sorted.rbegin(), sorted.rend());
  CHECK(sorted[1] / sorted[3] == Approx(std::pow(2.0, 0.2)));
  // Hot experts differ per layer and follow the seed.
  const auto hot_expert = [](const PopularityTable& t, int layer) {
    return std::max_element(t.layer(layer).begin(), t.layer(layer).end()) - t.layer(layer).begin();
  };
  int distinct = 0;
  for (int layer = 1; layer < 58; ++layer)
    distinct += hot_expert(table, layer) != hot_expert(table, layer - 1) ? 1 : 0;
  CHECK(distinct > 50);
  const PopularityTable again = build_popularity(deepseek_spec(), 58, 256, 8, 1);
  const PopularityTable other = build_popularity(deepseek_spec(), 58, 256, 8, 2);
  CHECK(std::equal(again.layer(9).begin(), again.layer(9).end(), table.layer(9).begin()));
  CHECK_FALSE(std::equal(other.layer(9).begin(), other.layer(9).end(), table.layer(9).begin()));
  // Other depths map by relative depth: a 27-layer model peaks at round(33/57 * 26) = 15.
  CHECK(hottest(build_popularity(deepseek_spec(), 27, 64, 6, 1), 15) == 0.125);
}
