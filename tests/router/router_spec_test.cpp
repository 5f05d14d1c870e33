#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/router/router_spec.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

RouterSpec parse(std::string_view text) {
  const auto json = JsonReader::parse_text(text, "scenario.json");
  return parse_router(JsonReader(json, "scenario.json", "router"), "/base");
}

}  // namespace

TEST_CASE("router specs parse with defaults and round-trip through JSON", "[router][spec]") {
  CHECK(parse("{}").kind == PopularityKind::uniform);
  const auto zipf = parse(R"({"kind": "zipf"})");
  CHECK(zipf.kind == PopularityKind::zipf);
  CHECK(zipf.zipf_exponent == 1.0);
  CHECK(parse(R"({"kind": "zipf", "exponent": 0})").zipf_exponent == 0.0);
  const auto empirical =
      parse(R"({"kind": "empirical", "file": "counts.csv", "model": "m", "domains": ["x", "y"],
                                   "selection": "top1"})");
  CHECK(empirical.empirical.file == "/base/counts.csv");
  CHECK(empirical.empirical.model == "m");
  CHECK(empirical.empirical.domains == std::vector<std::string>{"x", "y"});
  CHECK(empirical.empirical.selection == CountSelection::top1);
  CHECK(parse(R"({"kind": "empirical", "model": "m", "domains": ["x"]})").empirical.file.filename() ==
        "expert_counts.csv");
  for (const auto& spec : {zipf, empirical, parse("{}")}) {
    const auto again = parse(to_json(spec).dump());
    CHECK(to_json(again) == to_json(spec));
  }
}

TEST_CASE("bad router specs name the key and what was expected", "[router][spec]") {
  CHECK_THROWS_WITH(parse(R"({"kind": "zipfian"})"), Contains("scenario.json: router.kind: expected one of"));
  CHECK_THROWS_WITH(parse(R"({"kind": 3})"), Contains("router.kind: expected a string"));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "exponent": -1})"), Contains("router.exponent"));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "exponent": 1e300})"),
                    Contains("router.exponent: expected a number in"));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "exponent": "big"})"), Contains("router.exponent"));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "exponent": null})"), Contains("router.exponent"));
  CHECK_THROWS_WITH(parse(R"({"kind": "uniform", "exponent": 2})"), Contains("exponent"));
  CHECK_THROWS_WITH(parse(R"({"kind": "zipf", "typo": 2})"), Contains("typo"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "domains": ["x"]})"), Contains("router.model: missing"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "m"})"), Contains("router.domains: missing"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "m", "domains": []})"),
                    Contains("router.domains: expected at least one domain"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "m", "domains": ["x", "x"]})"),
                    Contains("router.domains: expected distinct domains"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "m", "domains": [1]})"),
                    Contains("router.domains[0]"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "", "domains": ["x"]})"),
                    Contains("router.model"));
  CHECK_THROWS_WITH(parse(R"({"kind": "empirical", "model": "m", "domains": ["x"], "selection": "top2"})"),
                    Contains("router.selection: expected one of [topk, top1]"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "zipf", "exponent": NaN})", "scenario.json"),
                    Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text(R"({"kind": "zi)", "scenario.json"),
                    Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(JsonReader::parse_text("", "scenario.json"), Contains("empty"));
}
