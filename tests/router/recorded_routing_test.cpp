#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/router/recorded_routing.hpp"
#include "sim/router/router.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

std::filesystem::path write_trace(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / fmt::format("moesim_recorded_{}.csv", name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

constexpr std::string_view kTokensHeader =
    "# moesim routing trace: form=tokens layers=2 experts=4 top_k=2\n"
    "token,layer,experts\n";
constexpr std::string_view kCountsHeader =
    "# moesim routing trace: form=counts layers=2 experts=4 top_k=2\n"
    "step,layer,counts\n";

// Three tokens, two layers.
std::string tokens_trace() {
  return std::string(kTokensHeader) +
         "0,0,0 1\n0,1,2 3\n"
         "# a comment between rows\n"
         "1,1,0 3\n1,0,0 2\n"
         "2,0,3 0\n2,1,1 0\n";
}

std::vector<std::int32_t> sample(RecordedRouting& routing, int layer, std::int64_t tokens) {
  std::vector<std::int32_t> counts(4);
  routing.sample_counts(layer, tokens, counts);
  return counts;
}

}  // namespace

TEST_CASE("a tokens-form trace replays the recorded tokens exactly, the same tokens at every layer",
          "[router][recorded]") {
  const auto file = write_trace("tokens", tokens_trace());
  const RoutingTraceSummary summary = summarize_routing_trace(file);
  CHECK(summary.tokens == 3);
  CHECK(summary.steps == 3);
  CHECK(summary.layer_counts == std::vector<std::int64_t>{3, 1, 1, 1, 2, 1, 1, 2});

  RecordedRouting routing(file, 2, 4, 2);
  CHECK(routing.popularity(0)[0] == Approx(0.5));
  CHECK(routing.popularity(1)[3] == Approx(1.0 / 3));
  // Step 1: two tokens (0 and 1) at both layers.
  CHECK(sample(routing, 0, 2) == std::vector<std::int32_t>{2, 1, 1, 0});
  CHECK(sample(routing, 1, 2) == std::vector<std::int32_t>{1, 0, 1, 2});
  // Step 2: two tokens: token 2, then the file wraps to token 0.
  CHECK(sample(routing, 0, 2) == std::vector<std::int32_t>{2, 1, 0, 1});
  CHECK(sample(routing, 1, 2) == std::vector<std::int32_t>{1, 1, 1, 1});
  CHECK(routing.wraps() == 1);
  // An empty step consumes nothing.
  CHECK(sample(routing, 0, 0) == std::vector<std::int32_t>{0, 0, 0, 0});
}

TEST_CASE("a counts-form trace replays recorded steps, exactly at their size and scaled otherwise",
          "[router][recorded]") {
  const auto file = write_trace("counts", std::string(kCountsHeader) +
                                              "0,0,4 2 1 1\n0,1,2 2 2 2\n"
                                              "1,1,1 1 1 1\n1,0,2 0 2 0\n");
  const RoutingTraceSummary summary = summarize_routing_trace(file);
  CHECK(summary.tokens == 6);
  CHECK(summary.steps == 2);
  RecordedRouting routing(file, 2, 4, 2);
  CHECK(sample(routing, 0, 4) == std::vector<std::int32_t>{4, 2, 1, 1});
  CHECK(sample(routing, 1, 4) == std::vector<std::int32_t>{2, 2, 2, 2});
  // Step 2 recorded 2 tokens; 3 simulated tokens scale {2, 0, 2, 0} by 1.5 to {3, 0, 3, 0}.
  CHECK(sample(routing, 0, 3) == std::vector<std::int32_t>{3, 0, 3, 0});
  // Step 3 wraps to step 0 (4 tokens) and scales to 2 tokens: {2, 1, 0.5, 0.5} -> the remainder goes to
  // the lower expert.
  CHECK(sample(routing, 0, 2) == std::vector<std::int32_t>{2, 1, 1, 0});
  CHECK(routing.wraps() == 1);
  // Scaled counts keep the top-k rules at any size.
  for (std::int64_t tokens : {1, 5, 7, 1000}) {
    for (int layer = 0; layer < 2; ++layer) {
      const auto counts = sample(routing, layer, tokens);
      CHECK(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}) == tokens * 2);
      for (const auto c : counts)
        CHECK(c <= tokens);
    }
  }
}

TEST_CASE("replay starts at the recorded token the start position names, modulo the trace",
          "[router][recorded]") {
  const auto file = write_trace("start", tokens_trace());
  RecordedRouting from_second(file, 2, 4, 2, 4);  // 4 mod 3 tokens: token 1
  CHECK(sample(from_second, 0, 1) == std::vector<std::int32_t>{1, 0, 1, 0});
  CHECK(sample(from_second, 1, 1) == std::vector<std::int32_t>{1, 0, 0, 1});
  CHECK(sample(from_second, 0, 1) == std::vector<std::int32_t>{1, 0, 0, 1});  // token 2
  CHECK(from_second.wraps() == 0);
}

TEST_CASE("a trace of another shape than the model is rejected naming both", "[router][recorded]") {
  const auto file = write_trace("shape", tokens_trace());
  CHECK_THROWS_WITH(RecordedRouting(file, 2, 8, 2),
                    Contains("header: expected the simulated model's shape (2 MoE "
                             "layers, 8 experts, top-2), got 2 layers, 4 experts"));
}

TEST_CASE("malformed routing traces name the file, the line and what was expected", "[router][recorded]") {
  const std::string tokens(kTokensHeader);
  const std::string counts(kCountsHeader);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "line 0: expected a header line"},
      {"token,layer,experts\n", "line 1: expected a header line starting with"},
      {"# moesim routing trace: form=tokens layers=2 experts=4\ntoken,layer,experts\n",
       "naming form, layers"},
      {"# moesim routing trace: form=rows layers=2 experts=4 top_k=2\n",
       "field form: expected tokens or counts"},
      {"# moesim routing trace: form=tokens layers=-2 experts=4 top_k=2\n",
       "field layers: expected an integer"},
      {"# moesim routing trace: form=tokens layers=2 experts=4 top_k=5\n", "top_k <= experts"},
      {"# moesim routing trace: form=tokens layers=2 experts=4 top_k=2 colour=red\n", "field colour"},
      {"# moesim routing trace: form=tokens layers=2 experts=4 top_k=2\n",
       "line 1: expected the column line"},
      {"# moesim routing trace: form=tokens layers=2 experts=4 top_k=2\nstep,layer,counts\n",
       "expected the column line \"token,layer,experts\""},
      {tokens, "line 2: expected at least one data row"},
      {tokens + "0,0,0 1\n", "line 3, field layer: expected every layer for token 0, layer 1 is missing"},
      {tokens + "0,0,0 1\n0,0,2 3\n", "line 4, field layer: expected each layer once per token"},
      {tokens + "1,0,0 1\n", "line 3, field token: expected the first token to be 0"},
      {tokens + "0,0,0 1\n0,1,0 1\n2,0,0 1\n", "line 5, field token: expected token 0 or 1"},
      {tokens + "0,0,0 1\n0,2,0 1\n", "line 4, field layer: expected an integer in [0, 2)"},
      {tokens + "0,0,0 4\n", "field experts: expected expert ids in [0, 4), got 4"},
      {tokens + "0,0,0 -1\n", "got -1"},
      {tokens + "0,0,1 1\n", "expected 2 distinct expert ids, got 1 twice"},
      {tokens + "0,0,0\n", "expected 2 values, got 1"},
      {tokens + "0,0,0 1 2\n", "expected 2 values, got more"},
      {tokens + "0,0,0 x\n", "field experts: expected space-separated integers"},
      {tokens + "0,0,0 nan\n", "field experts: expected space-separated integers"},
      {tokens + "0,0\n", "line 3: expected 3 comma-separated fields"},
      {tokens + "0,0,0 1,2\n", "line 3: expected 3 comma-separated fields"},
      {tokens + "-1,0,0 1\n", "field token: expected a non-negative integer"},
      {tokens + "0.5,0,0 1\n", "field token: expected a non-negative integer"},
      {counts + "0,0,1 1 1\n", "field counts: expected 4 values, got 3"},
      {counts + "0,0,1 1 1 0\n", "expected a positive multiple of top_k = 2"},
      {counts + "0,0,0 0 0 0\n", "expected a positive multiple of top_k = 2"},
      {counts + "0,0,4 0 0 0\n", "expected no count above the step's 2 tokens"},
      {counts + "0,0,1 1 1 1\n0,1,2 2 2 2\n", "expected the 2 tokens of the step's other layers, got 4"},
      {counts + "0,0,1 1 1 -1\n", "field counts: expected counts in [0, 1073741824], got -1"},
      {counts + "0,0,1 1 1 99999999999\n", "expected counts in [0, 1073741824]"},
      {counts + "0,0,1 1 1 1\n0,1,1 1 1", "expected 4 values, got 3"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto file = write_trace(fmt::format("bad{}", i), cases[i].first);
    INFO(cases[i].first);
    CHECK_THROWS_AS(summarize_routing_trace(file), InputError);
    CHECK_THROWS_WITH(summarize_routing_trace(file), Contains(file.string()) && Contains(cases[i].second));
  }
  CHECK_THROWS_WITH(summarize_routing_trace("/nonexistent/routing.csv"), Contains("cannot open"));
}

TEST_CASE("a long trace streams through: 100 steps replay its 20,000 tokens once, in order",
          "[router][recorded]") {
  std::string text(kTokensHeader);
  for (int token = 0; token < 20000; ++token) {
    text += fmt::format("{},0,{} {}\n{},1,{} {}\n", token, token % 4, (token + 1) % 4, token, (token + 2) % 4,
                        (token + 3) % 4);
  }
  const auto file = write_trace("long", text);
  RecordedRouting routing(file, 2, 4, 2);
  std::vector<std::int64_t> totals(4, 0);
  for (int step = 0; step < 100; ++step) {
    const auto counts = sample(routing, 0, 200);
    for (std::size_t e = 0; e < 4; ++e)
      totals[e] += counts[e];
    sample(routing, 1, 200);
  }
  CHECK(totals == std::vector<std::int64_t>{10000, 10000, 10000, 10000});
  CHECK(routing.wraps() == 0);
}

TEST_CASE("the replay router spec parses, round-trips and builds a router that replays",
          "[router][recorded]") {
  const auto file = write_trace("router", tokens_trace());
  const auto parse = [](const std::string& text) {
    const auto json = JsonReader::parse_text(text, "scenario.json");
    return parse_router(JsonReader(json, "scenario.json", "router"), "/base");
  };
  const RouterSpec spec = parse(fmt::format(R"({{"kind": "replay", "file": "{}"}})", file.string()));
  CHECK(spec.replay_file == file);
  CHECK(to_json(parse(to_json(spec).dump())) == to_json(spec));
  CHECK(parse(R"({"kind": "replay", "file": "r.csv"})").replay_file == "/base/r.csv");
  CHECK_THROWS_WITH(parse(R"({"kind": "replay"})"), Contains("router.file"));
  CHECK_THROWS_WITH(parse(R"({"kind": "replay", "file": "r.csv", "exponent": 1})"), Contains("unknown key"));
  CHECK_THROWS_WITH(parse(R"({"kind": "replay", "file": "r.csv", "class_from": {"mix": {"default": 1}}})"),
                    Contains("router.class_from: expected nothing"));

  const auto router = make_router(spec, 2, 4, 2, 99);
  CHECK(router->popularity(0)[0] == Approx(0.5));
  std::vector<std::int32_t> counts(4);
  router->sample_counts(0, 2, counts);
  CHECK(counts == std::vector<std::int32_t>{2, 1, 1, 0});
  CHECK(std::vector<std::int32_t>(router->class_counts(0).begin(), router->class_counts(0).end()) == counts);
  router->sample_counts(1, 2, counts);
  CHECK(counts == std::vector<std::int32_t>{1, 0, 1, 2});
}
