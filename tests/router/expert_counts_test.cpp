#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"
#include "sim/router/expert_counts.hpp"
#include "sim/router/router.hpp"
#include "tests/router/edited_copy.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

const std::filesystem::path kTiny =
    std::filesystem::path(MOESIM_TEST_SOURCE_DIR) / "tests/data/router/tiny_counts.csv";

EmpiricalSource tiny(std::vector<std::string> domains = {"a"}) {
  return {kTiny, "tiny", std::move(domains), CountSelection::topk};
}

// A malformed copy of the tiny file in a scratch folder; `edit` gets its text.
std::filesystem::path variant(const std::string& name, const std::function<std::string(std::string)>& edit) {
  return test::edited_copy(kTiny, "moesim_router_tests", name, edit);
}

using test::replace;

RouterSpec empirical(const std::string& model, std::vector<std::string> domains) {
  RouterSpec spec;
  spec.kind = PopularityKind::empirical;
  spec.empirical = {data_directory() / "routing/olmoe-mixtral/expert_counts.csv", model, std::move(domains),
                    CountSelection::topk};
  return spec;
}

}  // namespace

TEST_CASE("expert counts are read, pooled over domains and mapped to layers", "[router][empirical]") {
  const auto one = read_expert_counts(tiny(), 4);
  CHECK(one.layers == std::vector<int>{0, 3});
  CHECK(one.counts[0] == std::vector<std::int64_t>{40, 30, 20, 10});
  const auto both = read_expert_counts(tiny({"a", "b"}), 4);
  CHECK(both.counts[1] == std::vector<std::int64_t>{80, 30, 40, 50});
  auto top1 = tiny();
  top1.selection = CountSelection::top1;
  CHECK(read_expert_counts(top1, 4).counts[0] == std::vector<std::int64_t>{20, 15, 10, 5});

  const std::vector<int> olmoe = {0, 7, 15};
  std::vector<int> mapped;
  for (int layer = 0; layer < 16; ++layer)
    mapped.push_back(olmoe[recorded_layer_for(layer, 16, olmoe)]);
  CHECK(mapped == std::vector<int>{0, 0, 0, 0, 7, 7, 7, 7, 7, 7, 7, 7, 15, 15, 15, 15});
  CHECK(recorded_layer_for(0, 1, olmoe) == 0);
}

TEST_CASE("the empirical router reproduces the measured shares of the file", "[router][empirical]") {
  RouterSpec spec;
  spec.kind = PopularityKind::empirical;
  spec.empirical = tiny();
  auto router = make_router(spec, 2, 4, 2, 1);
  const double expected[] = {0.4, 0.3, 0.2, 0.1};
  for (int e = 0; e < 4; ++e)
    CHECK(router->popularity(0)[e] == Approx(expected[e]).margin(1e-8));
  CHECK(router->popularity(1)[3] == Approx(0.4).margin(1e-8));
  // top1 counts are the first-choice distribution itself.
  spec.empirical.selection = CountSelection::top1;
  auto first_choice = make_router(spec, 2, 4, 2, 1);
  CHECK(first_choice->selection_probabilities(0)[0] == Approx(0.4).epsilon(1e-12));
}

TEST_CASE("OLMoE per-domain busiest/mean load is 2.5-7.8 as measured", "[router][empirical][data]") {
  for (const std::string domain : {"arxiv", "book", "c4", "github", "wikipedia", "tulu"}) {
    const auto spec = empirical("OLMoE-1B-7B-0924", {domain});
    const auto& router_source = spec.empirical;
    auto router = make_router(spec, 16, 64, 8, 1);
    std::vector<std::int32_t> counts(64);
    for (const int layer : {0, 7, 15}) {
      const auto share = router->popularity(layer);
      const double busiest = *std::max_element(share.begin(), share.end()) * 64;
      CAPTURE(domain, layer, busiest);
      // SOURCE.md rounds to two figures: 2.5-7.8 means [2.45, 7.85).
      CHECK(busiest >= 2.45);
      CHECK(busiest < 7.85);
      const auto& recorded = read_expert_counts(router_source, 64);
      const auto& row = recorded.counts[layer == 0 ? 0 : layer == 7 ? 1 : 2];
      const double recorded_total = std::accumulate(row.begin(), row.end(), 0.0);
      for (int e = 0; e < 64; ++e)
        REQUIRE(share[e] == Approx(row[e] / recorded_total).margin(1e-9));
      // A large batch reproduces the busiest expert's share.
      std::int64_t total = 0;
      for (int call = 0; call < 20; ++call) {
        router->sample_counts(layer, 100000, counts);
        total += *std::max_element(counts.begin(), counts.end());
      }
      CHECK(total / (20 * 100000 * 8 / 64.0) == Approx(busiest).epsilon(0.01));
    }
  }
  auto mixtral = make_router(empirical("Mixtral-8x7B-v0.1", {"arxiv"}), 32, 8, 2, 1);
  const auto share = mixtral->popularity(31);
  CHECK(*std::max_element(share.begin(), share.end()) * 8 <= 1.33 + 1e-3);
}

TEST_CASE("bad expert-count files name the file, line and field", "[router][empirical]") {
  const auto read = [](const std::filesystem::path& file, int experts = 4) {
    auto source = tiny();
    source.file = file;
    return read_expert_counts(source, experts);
  };
  CHECK_THROWS_WITH(read(variant("empty.csv", [](auto) { return ""; })),
                    Contains("empty.csv: file is empty"));
  CHECK_THROWS_WITH(read(variant("header.csv", [](auto t) { return replace(t, "count\n", "cnt\n"); })),
                    Contains("header.csv: line 1, field header"));
  CHECK_THROWS_WITH(
      read(variant("truncated.csv", [](auto t) { return t.substr(0, t.find("tiny,a,topk,0,2,") + 15); })),
      Contains("truncated.csv: line 6, field count: expected 6 comma-separated fields, got 5"));
  CHECK_THROWS_WITH(
      read(variant("negative.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,1,-30"); })),
      Contains("negative.csv: line 4, field count: expected an integer in [0, "));
  CHECK_THROWS_WITH(
      read(
          variant("nan.csv", [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,1,nan"); })),
      Contains("nan.csv: line 4, field count"));
  CHECK_THROWS_WITH(
      read(variant("float.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,1,3.5"); })),
      Contains("line 4, field count"));
  CHECK_THROWS_WITH(
      read(variant(
          "huge.csv",
          [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,1,99999999999999999999"); })),
      Contains("line 4, field count"));
  CHECK_THROWS_WITH(
      read(variant("layer.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,x,1,30"); })),
      Contains("line 4, field layer"));
  CHECK_THROWS_WITH(
      read(variant("selection.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,top9,0,1,30"); })),
      Contains("line 4, field selection"));
  CHECK_THROWS_WITH(
      read(variant("duplicate.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,0,30"); })),
      Contains("line 4, field expert: duplicate row"));
  CHECK_THROWS_WITH(
      read(variant("extra.csv",
                   [](auto t) { return replace(t, "tiny,a,topk,0,1,30", "tiny,a,topk,0,1,30,7"); })),
      Contains("line 4, field count: expected 6 comma-separated fields, got 7"));
  CHECK_THROWS_WITH(
      read(variant("blank.csv", [](auto t) { return replace(t, "tiny,a,topk,0,1,30\n", "\n"); })),
      Contains("line 4"));
  CHECK_THROWS_WITH(
      read(variant("missing.csv", [](auto t) { return replace(t, "tiny,a,topk,0,1,30\n", ""); })),
      Contains("lacks counts"));
  CHECK_THROWS_WITH(
      read(kTiny, 8),
      Contains("tiny_counts.csv: model \"tiny\" has 4 experts in the file but the simulated model has 8"));
  CHECK_THROWS_WITH(read(kTiny / "absent.csv"), Contains("absent.csv"));

  auto unknown_model = tiny();
  unknown_model.model = "huge";
  CHECK_THROWS_WITH(read_expert_counts(unknown_model, 4),
                    Contains("tiny_counts.csv: model \"huge\" not found (models in the file: other, tiny)"));
  CHECK_THROWS_WITH(
      read_expert_counts(tiny({"a", "zz"}), 4),
      Contains("no topk counts for model \"tiny\" and domain \"zz\" (domains with topk counts: a, b)"));
  RouterSpec spec;
  spec.kind = PopularityKind::empirical;
  spec.empirical = tiny();
  CHECK_THROWS_WITH(make_router(spec, 2, 4, 4, 1), Contains("too close to 1 / top_k"));
  CHECK_THROWS_AS(make_router(empirical("OLMoE-1B-7B-0924", {"arxiv"}), 16, 128, 8, 1), InputError);
}
