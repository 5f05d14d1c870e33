#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/report/sweep.hpp"

using namespace moesim;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const auto directory = fs::temp_directory_path() / "moesim_sweep_tests" / name;
  fs::remove_all(directory);
  return directory;
}

// OLMoE on one 8-GPU node with a short closed loop: a point takes milliseconds.
fs::path small_scenario() {
  const auto file = fs::temp_directory_path() / "moesim_sweep_tests" / "scenario.json";
  write_file_atomically(file, R"({
    "name": "sweep-test", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 8, "expert_ep": 8}},
    "workload": {"kind": "closed_loop", "concurrency": 8, "input_tokens": 64, "output_tokens": 32, "requests": 64},
    "router": {"kind": "zipf", "exponent": 1.0},
    "capacity": {"policy": "drop", "capacity_factor": 1.0},
    "outputs": {"expert_load": false}})");
  return file;
}

SweepManifest small_sweep(const std::vector<std::string>& vary, SweepMode mode = SweepMode::cross) {
  std::vector<SweepAxis> axes;
  for (const auto& option : vary)
    axes.push_back(parse_vary(option));
  return make_manifest(small_scenario(), {"workload.concurrency=4"}, mode, axes);
}

SweepOptions options(std::size_t jobs, bool reproducible = false, SweepShard shard = {}) {
  SweepOptions result;
  result.jobs = jobs;
  result.reproducible = reproducible;
  result.shard = shard;
  return result;
}

const std::vector<std::string> kGrid = {"capacity.capacity_factor=1.0:2.0:0.5", "router.exponent=0.5,1.5"};

std::vector<double> doubles(const SweepAxis& axis) {
  std::vector<double> values;
  for (const auto& value : axis.values)
    values.push_back(value.get<double>());
  return values;
}

}  // namespace

TEST_CASE("value lists are read like --set values", "[sweep]") {
  const SweepAxis axis = parse_vary("capacity.policy=1,2.5,drop,true");
  CHECK(axis.key == "capacity.policy");
  REQUIRE(axis.values.size() == 4);
  CHECK(axis.values[0] == 1);
  CHECK(axis.values[1] == 2.5);
  CHECK(axis.values[2] == "drop");
  CHECK(axis.values[3] == true);

  const SweepAxis objects =
      parse_vary(R"(router={"kind": "zipf", "exponent": 1.2},{"kind": "uniform"},"a,b")");
  REQUIRE(objects.values.size() == 3);
  CHECK(objects.values[0]["exponent"] == 1.2);
  CHECK(objects.values[1]["kind"] == "uniform");
  CHECK(objects.values[2] == "a,b");
}

TEST_CASE("ranges include stop on the grid and compute start + i*step", "[sweep]") {
  CHECK(doubles(parse_vary("cf=1.0:3.0:0.25")) ==
        std::vector<double>{1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0});
  // 0.1 accumulates error when summed; start + i*step rounded to 15 digits does not.
  const auto tenths = doubles(parse_vary("x=0:1:0.1"));
  REQUIRE(tenths.size() == 11);
  CHECK(tenths[3] == 0.3);
  CHECK(tenths[7] == 0.7);
  CHECK(tenths.back() == 1.0);
  CHECK(parse_vary("x=0:1:0.1").values[3].dump() == "0.3");
  CHECK(doubles(parse_vary("x=1:9:3")) == std::vector<double>{1, 4, 7});
  CHECK(parse_vary("n=2:5").values == std::vector<nlohmann::json>{2, 3, 4, 5});  // step 1
  const SweepAxis integers = parse_vary("n=1:10:3");
  REQUIRE(integers.values.size() == 4);
  CHECK(integers.values[3] == 10);
  CHECK(integers.values[3].is_number_integer());
  CHECK(parse_vary("x=2:2:1").values.size() == 1);
  CHECK(parse_vary("x=0.5:0.6:1").values == std::vector<nlohmann::json>{0.5});
}

TEST_CASE("cross product varies the last axis fastest; zip pairs values", "[sweep]") {
  const std::vector<SweepAxis> axes = {parse_vary("a.x=1,2"), parse_vary("b.y=p,q,r")};
  const auto cross = expand_grid(axes, SweepMode::cross);
  REQUIRE(cross.size() == 6);
  CHECK(cross[1].values == std::vector<nlohmann::json>{1, "q"});
  CHECK(cross[5].values == std::vector<nlohmann::json>{2, "r"});
  CHECK(cross[5].index == 5);
  CHECK(cross[1].file == "points/1-x-1_y-q.json");
  CHECK(describe_point(axes, cross[1]) == "a.x=1, b.y=\"q\"");
  CHECK(point_overrides({"base=1"}, axes, cross[1]) ==
        std::vector<std::string>{"base=1", "a.x=1", "b.y=\"q\""});

  const std::vector<SweepAxis> zipped = {parse_vary("a=1,2,3"), parse_vary("b=4:6:1")};
  const auto zip = expand_grid(zipped, SweepMode::zip);
  REQUIRE(zip.size() == 3);
  CHECK(zip[2].values == std::vector<nlohmann::json>{3, 6});

  const auto many = expand_grid({parse_vary("k=0:10:1")}, SweepMode::cross);
  CHECK(many[3].file == "points/03-k-3.json");
  const auto slugged = expand_grid({parse_vary(R"(r={"kind":"zipf"})")}, SweepMode::cross);
  CHECK(slugged[0].file == "points/0-r-__kind___zipf__.json");
}

TEST_CASE("bad sweep options are errors naming the option", "[sweep]") {
  CHECK_THROWS_WITH(parse_vary("novalue"), Contains("--vary: novalue: expected key=v1,v2,..."));
  CHECK_THROWS_WITH(parse_vary("=1,2"), Contains("--vary: =1,2: expected key="));
  CHECK_THROWS_WITH(parse_vary("a..b=1"), Contains("--vary: a..b=1: empty key in the path"));
  CHECK_THROWS_WITH(parse_vary("k="), Contains("--vary: k=: empty list of values"));
  CHECK_THROWS_WITH(parse_vary("k=1,,2"), Contains("--vary: k=1,,2: value 2 of the list is empty"));
  CHECK_THROWS_WITH(parse_vary("k=1,2,"), Contains("value 3 of the list is empty"));
  CHECK_THROWS_WITH(parse_vary("k=1:2:3:4"),
                    Contains("--vary: k=1:2:3:4: expected start:stop:step or start:stop (step 1)"));
  CHECK_THROWS_WITH(parse_vary("k=1:3:0"), Contains("--vary: k=1:3:0: expected a positive step, got 0"));
  CHECK_THROWS_WITH(parse_vary("k=1:3:-0.5"), Contains("expected a positive step, got -0.5"));
  CHECK_THROWS_WITH(parse_vary("k=3:1:1"), Contains("stop 1 is below start 3"));
  CHECK_THROWS_WITH(parse_vary("k=a:2:1"), Contains("but start is the string \"a\""));
  CHECK_THROWS_WITH(parse_vary("k=nan:2:1"), Contains("but start is"));
  CHECK_THROWS_WITH(parse_vary("k=0:1e999:1"),
                    Contains("k=0:1e999:1: expected start:stop:step with numbers"));
  CHECK_THROWS_WITH(parse_vary("k=0::1"), Contains("but stop is empty"));
  CHECK_THROWS_WITH(parse_vary("k=0:1:true"), Contains("but step is"));
  CHECK_THROWS_WITH(parse_vary("k=0:1e9:1e-3"),
                    Contains("the range has 1000000000001 values; at most 100000"));

  CHECK_THROWS_WITH(expand_grid({}, SweepMode::cross), Contains("a sweep needs at least one --vary"));
  CHECK_THROWS_WITH(expand_grid({parse_vary("a=1,2"), parse_vary("a=3")}, SweepMode::cross),
                    Contains("--vary: a: the key is varied twice"));
  CHECK_THROWS_WITH(expand_grid({parse_vary("a=1,2"), parse_vary("b=1,2,3")}, SweepMode::zip),
                    Contains("--zip") && Contains("a has 2 values but b has 3"));
  CHECK_THROWS_WITH(expand_grid({parse_vary("a=1:100:1"), parse_vary("b=1:100:1"), parse_vary("c=1:100:1")},
                                SweepMode::cross),
                    Contains("the cross product has more than 100000 points"));

  CHECK(parse_shard("0/2").index == 0);
  CHECK(parse_shard("3/4").index == 3);
  CHECK(parse_shard("3/4").count == 4);
  for (const char* bad : {"2/2", "0/0", "1", "-1/2", "a/b", "/2", "1/", "1/2/3", "99999999999/1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_shard(bad),
                      Contains(std::string("--shard: ") + bad + ": expected i/N with 0 <= i < N"));
  }
}

TEST_CASE("the manifest reader is strict and names the place", "[sweep]") {
  const SweepManifest manifest = small_sweep(kGrid);
  const nlohmann::json good = manifest_json(manifest);
  const SweepManifest back = parse_manifest(good, "m.json");
  CHECK(back.axes == manifest.axes);
  CHECK(back.overrides == manifest.overrides);
  CHECK(back.scenario_document == manifest.scenario_document);
  CHECK(good["points"].size() == 6);

  const auto rejected = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& expected) {
    nlohmann::json document = good;
    edit(document);
    CHECK_THROWS_WITH(parse_manifest(document, "m.json"), Contains("m.json: " + expected));
  };
  rejected([](auto& d) { d["schema_version"] = 2; },
           "schema_version: this moesim reads sweep schema version 1");
  rejected([](auto& d) { d["schema_version"] = -1; }, "schema_version");
  rejected([](auto& d) { d["schema_version"] = "1"; }, "schema_version");
  rejected([](auto& d) { d["schema_version"] = 1e300; }, "schema_version");
  rejected([](auto& d) { d["surprise"] = 1; }, "top level: unknown key \"surprise\"");
  rejected([](auto& d) { d.erase("axes"); }, "axes");
  rejected([](auto& d) { d["axes"] = nlohmann::json::array(); }, "axes");
  rejected([](auto& d) { d["axes"][0]["values"] = nlohmann::json::array(); },
           "axes[0].values: expected a non-empty");
  rejected([](auto& d) { d["axes"][0]["values"] = 3; }, "axes[0].values");
  rejected([](auto& d) { d["axes"][1]["key"] = 7; }, "axes[1].key");
  rejected([](auto& d) { d["axes"][1]["extra"] = 7; }, "axes[1]: unknown key \"extra\"");
  rejected([](auto& d) { d["mode"] = "diagonal"; }, "mode");
  rejected([](auto& d) { d["overrides"] = "x=1"; }, "overrides");
  rejected([](auto& d) { d["scenario"]["document"] = "text"; }, "scenario.document: expected an object");
  rejected([](auto& d) { d["points"][2]["values"][0] = 9; },
           "points: the point list does not match the axes");
  rejected([](auto& d) { d["points"].erase(5); }, "points");
  rejected([](auto& d) { d["mode"] = "zip"; }, "axes: --zip");

  const std::string text = good.dump();
  CHECK_THROWS_WITH(JsonReader::parse_text(text.substr(0, text.size() / 2), "m.json"), Contains("m.json"));
  CHECK_THROWS_WITH(JsonReader::parse_text("", "m.json"), Contains("m.json"));
  const auto directory = scratch("not_a_sweep");
  fs::create_directories(directory);
  CHECK_THROWS_WITH(read_manifest(directory), Contains("not a sweep directory"));
  write_file_atomically(directory / "sweep.json", text.substr(0, 40));
  CHECK_THROWS_WITH(read_manifest(directory), Contains((directory / "sweep.json").string()));
}

TEST_CASE("a sweep's reports do not depend on the job count", "[sweep]") {
  const SweepManifest manifest = small_sweep(kGrid);
  const auto one = scratch("jobs1");
  const auto two = scratch("jobs2");
  const SweepOutcome first = run_sweep(manifest, one, options(1, true));
  const SweepOutcome second = run_sweep(manifest, two, options(2, true));
  CHECK(first.ran == 6);
  CHECK(second.ran == 6);
  CHECK(second.summarised == 6);
  for (const auto& point : expand_grid(manifest.axes, manifest.mode)) {
    INFO(point.file);
    CHECK(read_text_file(one / point.file) == read_text_file(two / point.file));
  }
  CHECK(read_text_file(one / "summary.csv") == read_text_file(two / "summary.csv"));

  // The points differ from each other: capacity factor and skew change the drop rate.
  const nlohmann::json summary = JsonReader::parse_file(one / "summary.json");
  REQUIRE(summary["points"].size() == 6);
  const auto& low = summary["points"][1]["metrics"];   // factor 1.0, exponent 1.5
  const auto& high = summary["points"][5]["metrics"];  // factor 2.0, exponent 1.5
  CHECK(low["drop_rate"].get<double>() > high["drop_rate"].get<double>());
  CHECK(low["arrived"] == 64);
  CHECK(low["completed"] == 64);
  CHECK(low["gpus"] == 8);
  CHECK(summary["points"][1]["values"]["capacity.capacity_factor"] == 1.0);
  CHECK(summary["points"][1]["values"]["router.exponent"] == 1.5);

  const std::string csv = read_text_file(one / "summary.csv");
  CHECK(
      csv.substr(0, csv.find('\n')) ==
      "index,report,capacity.capacity_factor,router.exponent,requests_per_s,output_tokens_per_s,"
      "output_tokens_per_s_per_gpu,ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,e2e_p50_s,e2e_p99_s,drop_rate,"
      "expert_max_over_mean,rank_max_over_mean,gpus,completed,arrived");
  CHECK_THAT(csv, Contains("\n1,points/1-capacity_factor-1.0_exponent-1.5.json,1.0,1.5,"));
}

TEST_CASE("a rerun resumes: complete reports are skipped, broken ones rerun", "[sweep]") {
  const SweepManifest manifest = small_sweep(kGrid);
  const auto directory = scratch("resume");
  CHECK(run_sweep(manifest, directory, options(2)).ran == 6);
  const SweepOutcome again = run_sweep(manifest, directory, options(2));
  CHECK(again.ran == 0);
  CHECK(again.skipped == 6);
  CHECK(again.summarised == 6);

  const auto points = expand_grid(manifest.axes, manifest.mode);
  fs::remove(directory / points[2].file);
  const std::string report = read_text_file(directory / points[4].file);
  write_file_atomically(directory / points[4].file, report.substr(0, report.size() / 2));
  CHECK_FALSE(point_report_complete(directory / points[4].file));
  const SweepOutcome repaired = run_sweep(manifest, directory, options(1));
  CHECK(repaired.ran == 2);
  CHECK(repaired.skipped == 4);
  CHECK(point_report_complete(directory / points[2].file));
  CHECK(point_report_complete(directory / points[4].file));

  // Another grid, other base overrides or another scenario content into the same directory are errors.
  const std::string manifest_file = (directory / "sweep.json").string();
  CHECK_THROWS_WITH(
      run_sweep(small_sweep({"capacity.capacity_factor=1.0:3.0:0.5", kGrid[1]}), directory, options(1)),
      Contains(manifest_file + ": axes[0].values (capacity.capacity_factor): the directory holds "
                               "another sweep: it has [1.0,1.5,2.0] where this one has "
                               "[1.0,1.5,2.0,2.5,3.0]"));
  CHECK_THROWS_WITH(run_sweep(small_sweep({kGrid[1], kGrid[0]}), directory, options(1)),
                    Contains(manifest_file + ": axes[0].key"));
  CHECK_THROWS_WITH(run_sweep(small_sweep({kGrid[0]}), directory, options(1)),
                    Contains(manifest_file + ": axes: "));
  CHECK_THROWS_WITH(
      run_sweep(small_sweep({kGrid[0], "router.exponent=0.5,1.5"}, SweepMode::zip), directory, options(1)),
      Contains("--zip"));
  SweepManifest other_base = manifest;
  other_base.overrides = {"workload.concurrency=2"};
  CHECK_THROWS_WITH(run_sweep(other_base, directory, options(1)), Contains(manifest_file + ": overrides"));
  SweepManifest other_scenario = manifest;
  other_scenario.scenario_document["seed"] = 7;
  CHECK_THROWS_WITH(run_sweep(other_scenario, directory, options(1)),
                    Contains(manifest_file + ": scenario.document"));
}

TEST_CASE("shards 0/2 and 1/2 merged equal one full run", "[sweep]") {
  const SweepManifest manifest = small_sweep(kGrid);
  const auto full = scratch("full");
  const auto shard0 = scratch("shard0");
  const auto shard1 = scratch("shard1");
  const auto merged = scratch("merged");
  run_sweep(manifest, full, options(2, true));
  const SweepOutcome first = run_sweep(manifest, shard0, options(2, true, {0, 2}));
  CHECK(first.in_shard == 3);
  CHECK(first.ran == 3);
  CHECK(first.summarised == 3);
  CHECK(run_sweep(manifest, shard1, options(2, true, {1, 2})).ran == 3);

  const MergeOutcome incomplete = merge_sweeps({shard0}, scratch("partial"));
  CHECK(incomplete.present == 3);
  CHECK(incomplete.missing == std::vector<std::size_t>{1, 3, 5});

  const MergeOutcome outcome = merge_sweeps({shard0, shard1}, merged);
  CHECK(outcome.points == 6);
  CHECK(outcome.present == 6);
  CHECK(outcome.missing.empty());
  CHECK(read_text_file(merged / "summary.csv") == read_text_file(full / "summary.csv"));
  CHECK(read_text_file(merged / "summary.json") == read_text_file(full / "summary.json"));

  // Merging a complete directory into itself rebuilds its summary.
  fs::remove(full / "summary.csv");
  CHECK(merge_sweeps({full}, full).present == 6);
  CHECK(read_text_file(full / "summary.csv") == read_text_file(merged / "summary.csv"));

  const auto stranger = scratch("stranger");
  run_sweep(small_sweep({"capacity.capacity_factor=1.0,4.0"}), stranger, options(2));
  CHECK_THROWS_WITH(merge_sweeps({shard0, stranger}, scratch("mixed")),
                    Contains((stranger / "sweep.json").string() + ": axes"));
  CHECK_THROWS_WITH(merge_sweeps({stranger}, merged), Contains((merged / "sweep.json").string()));
  CHECK_THROWS_WITH(merge_sweeps({scratch("absent")}, merged), Contains("not a sweep directory"));
}

TEST_CASE("a failing point stops the sweep naming the point and its values", "[sweep]") {
  const auto unknown = scratch("unknown_key");
  CHECK_THROWS_WITH(run_sweep(small_sweep({"capacity.bogus=1,2"}), unknown, options(2)),
                    Contains("sweep point 0 (capacity.bogus=1): ") && Contains("capacity.bogus"));

  const auto directory = scratch("bad_value");
  const SweepManifest manifest = small_sweep({"capacity.capacity_factor=1.5,-1"});
  CHECK_THROWS_WITH(
      run_sweep(manifest, directory, options(1)),
      Contains("sweep point 1 (capacity.capacity_factor=-1): ") && Contains("capacity.capacity_factor"));
  const auto points = expand_grid(manifest.axes, manifest.mode);
  CHECK(point_report_complete(directory / points[0].file));
  CHECK_FALSE(fs::exists(directory / points[1].file));
}
