#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/json_reader.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

nlohmann::json parse(std::string_view text) {
  return JsonReader::parse_text(text, "test.json");
}

}  // namespace

TEST_CASE("typed reads with defaults and range checks", "[common][json]") {
  const auto json = parse(R"({"a": 3, "b": 2.5, "c": "x", "d": true, "e": {"f": [1, 2]}, "g": 4.0})");
  JsonReader reader(json, "test.json");
  CHECK(reader.integer("a") == 3);
  CHECK(reader.integer("g") == 4);
  CHECK(reader.number("b") == 2.5);
  CHECK(reader.string("c") == "x");
  CHECK(reader.boolean("d"));
  CHECK(reader.number("missing", 7.0) == 7.0);
  const auto inner = reader.object("e");
  CHECK(inner.integer_array("f") == std::vector<std::int64_t>{1, 2});
  inner.finish();
  reader.finish();
}

TEST_CASE("errors name the source, the key path and the expectation", "[common][json]") {
  const auto json = parse(R"({"n": -4, "s": 3, "o": {"deep": "x", "typo": 1}, "f": 1.5, "nan": null})");
  JsonReader reader(json, "scenario.json");
  CHECK_THROWS_WITH(reader.positive_integer("n"),
                    Contains("scenario.json: n: expected a positive integer, got -4"));
  CHECK_THROWS_WITH(reader.string("s"), Contains("scenario.json: s: expected a string, got the number 3"));
  CHECK_THROWS_WITH(reader.integer("f"), Contains("f: expected an integer"));
  CHECK_THROWS_WITH(reader.number("nan"), Contains("nan: expected a number, got null"));
  CHECK_THROWS_WITH(reader.number("absent"), Contains("absent: missing required key"));
  const auto inner = reader.object("o");
  CHECK_THROWS_WITH(inner.integer("deep"), Contains("scenario.json: o.deep: expected an integer"));
  CHECK_THROWS_WITH(inner.finish(),
                    Contains("o: unknown keys \"deep\", \"typo\"") || Contains("unknown key \"typo\""));
  CHECK_THROWS_WITH(reader.choice("s", {"a", "b"}), Contains("expected a string"));
}

TEST_CASE("unknown keys are rejected", "[common][json]") {
  const auto json = parse(R"({"known": 1, "unknwon": 2})");
  JsonReader reader(json, "x.json");
  reader.integer("known");
  CHECK_THROWS_WITH(reader.finish(), Contains("x.json: top level: unknown key \"unknwon\""));
}

TEST_CASE("malformed documents: empty, truncated, NaN, huge numbers, wrong top level", "[common][json]") {
  CHECK_THROWS_WITH(parse(""), Contains("test.json: file is empty"));
  CHECK_THROWS_WITH(parse("  \n "), Contains("file is empty"));
  CHECK_THROWS_WITH(parse("{\"a\": 1,\n \"b\": "), Contains("test.json: line 2"));
  CHECK_THROWS_AS(parse(R"({"a": NaN})"), InputError);
  CHECK_THROWS_AS(parse(R"({"a": 1,})"), InputError);
  CHECK_THROWS_WITH(parse(R"({"a": 1e400})"), Contains("test.json: invalid JSON: ") && Contains("1e400"));
  const auto huge = parse(R"({"b": 99999999999999999999999, "c": 18446744073709551615})");
  JsonReader reader(huge, "test.json");
  CHECK_THROWS_WITH(reader.integer("b"), Contains("b: expected an integer"));
  CHECK_THROWS_WITH(reader.integer("c"), Contains("c: integer is too large"));
  const auto array = parse("[1, 2]");
  CHECK_THROWS_WITH(JsonReader(array, "test.json"),
                    Contains("test.json: top level: expected an object, got an array"));
}

TEST_CASE("arrays check each element and name its index", "[common][json]") {
  const auto json = parse(R"({"xs": [1, "two", 3], "objs": [{}, 5]})");
  JsonReader reader(json, "a.json");
  CHECK_THROWS_WITH(reader.number_array("xs"), Contains("a.json: xs[1]: expected a finite number"));
  CHECK_THROWS_WITH(reader.object_array("objs"), Contains("a.json: objs[1]: expected an object"));
}
