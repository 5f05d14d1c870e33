#include <catch2/catch.hpp>

#include <string>

#include "sim/common/error.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/topology/cluster_spec.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

const std::string kClusters = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/clusters/";
const std::string kData = std::string(MOESIM_TEST_SOURCE_DIR) + "/tests/data/topology/";

ClusterSpec parse(const nlohmann::json& document) {
  return parse_cluster(document, "cluster.json");
}

nlohmann::json generated() {
  return nlohmann::json::parse(R"({
    "name": "c", "gpu": "h800", "nodes": 2, "gpus_per_node": 8,
    "scale_up": {"kind": "nvswitch", "bandwidth_GBps": 200, "latency_us": 1},
    "nic": {"per_gpu": 1, "bandwidth_Gbps": 400, "latency_us": 1},
    "fabric": {"kind": "leaf_spine", "oversubscription": 1, "switch_latency_us": 0.5}})");
}

}  // namespace

TEST_CASE("shipped clusters load with the REFERENCE.md figures and round-trip", "[topology][spec]") {
  const auto h800 = load_cluster(kClusters + "h800-8x4.json");
  CHECK(h800.name == "h800-8x4");
  CHECK(h800.gpu == "h800");
  CHECK(h800.gpu_count() == 32);
  CHECK(h800.scale_up->bandwidth_GBps == 200);
  CHECK(h800.nic->bandwidth_Gbps == 400);
  CHECK(h800.fabric->kind == FabricKind::leaf_spine);
  CHECK(load_cluster(kClusters + "h800-8x18.json").gpu_count() == 144);
  CHECK(load_cluster(kClusters + "h800-8x22.json").gpu_count() == 176);
  CHECK(load_cluster(kClusters + "h100-8x12.json").gpu_count() == 96);
  CHECK(load_cluster(kClusters + "h100-8x1.json").scale_up->bandwidth_GBps == 450);
  CHECK(load_cluster(kClusters + "a100-8x1.json").scale_up->bandwidth_GBps == 300);
  for (const char* name : {"h100-8x1", "h100-8x12", "h800-8x4", "h800-8x18", "h800-8x22", "a100-8x1"}) {
    const auto spec = load_cluster(kClusters + name + ".json");
    CHECK(to_json(parse_cluster(to_json(spec), "again")) == to_json(spec));
  }
  const auto explicit_spec = load_cluster(kData + "two_gpu.json");
  REQUIRE(explicit_spec.is_explicit());
  CHECK(explicit_spec.links[0].link_class == LinkClass::scale_out);
  CHECK(to_json(parse_cluster(to_json(explicit_spec), "again")) == to_json(explicit_spec));
}

TEST_CASE("cluster files: empty, truncated, missing", "[topology][spec][fuzz]") {
  CHECK_THROWS_WITH(parse_cluster(JsonReader::parse_text("", "c.json"), "c.json"),
                    Contains("c.json: file is empty"));
  CHECK_THROWS_WITH(load_cluster(kData + "truncated.json"), Contains("truncated.json: line 4"));
  CHECK_THROWS_AS(load_cluster(kData + "no_such_cluster.json"), InputError);
  CHECK_THROWS_WITH(parse(nlohmann::json::array()), Contains("cluster.json: top level: expected an object"));
}

TEST_CASE("cluster values: negative, huge, NaN-like, wrong types, unknown keys", "[topology][spec][fuzz]") {
  const auto with = [](const char* pointer, nlohmann::json value) {
    auto document = generated();
    document[nlohmann::json::json_pointer(pointer)] = std::move(value);
    return document;
  };
  CHECK_NOTHROW(parse(generated()));
  CHECK_THROWS_WITH(parse(with("/nodes", -2)),
                    Contains("cluster.json: nodes: expected a positive integer, got -2"));
  CHECK_THROWS_WITH(parse(with("/nodes", 100000)), Contains("nodes: expected an integer <= 2048"));
  CHECK_THROWS_WITH(parse(with("/nodes", 1000)), Contains("nodes: nodes x gpus_per_node = 8000 GPUs"));
  CHECK_THROWS_WITH(parse(with("/gpus_per_node", 2.5)), Contains("gpus_per_node: expected an integer"));
  CHECK_THROWS_WITH(parse(with("/name", 3)), Contains("name: expected a string, got the number 3"));
  CHECK_THROWS_WITH(parse(with("/gpu", "")), Contains("gpu: expected a GPU catalogue name"));
  CHECK_THROWS_WITH(parse(with("/scale_up/bandwidth_GBps", -200)),
                    Contains("scale_up.bandwidth_GBps: expected a positive number, got -200"));
  CHECK_THROWS_WITH(parse(with("/scale_up/bandwidth_GBps", 1e12)),
                    Contains("scale_up.bandwidth_GBps: expected a number <= 100000"));
  CHECK_THROWS_WITH(parse(with("/scale_up/bandwidth_GBps", nullptr)),
                    Contains("scale_up.bandwidth_GBps: expected a number, got null"));
  CHECK_THROWS_WITH(parse(with("/scale_up/bandwidth_GBps", "fast")),
                    Contains("scale_up.bandwidth_GBps: expected a number, got the string \"fast\""));
  CHECK_THROWS_WITH(parse(with("/scale_up/kind", "infiniband")),
                    Contains("scale_up.kind: expected one of [nvswitch, nvlink_mesh, pcie]"));
  CHECK_THROWS_WITH(parse(with("/nic/latency_us", -1)), Contains("nic.latency_us: expected a number >= 0"));
  CHECK_THROWS_WITH(parse(with("/nic/per_gpu", 0)), Contains("nic.per_gpu: expected a positive integer"));
  CHECK_THROWS_WITH(parse(with("/fabric/oversubscription", 0.5)),
                    Contains("fabric.oversubscription: expected a number in [1, 64]"));
  CHECK_THROWS_WITH(parse(with("/fabric/kind", "torus")), Contains("fabric.kind: expected one of"));
  CHECK_THROWS_WITH(parse(with("/fabric/spines", 4)), Contains("fabric: unknown key \"spines\""));
  CHECK_THROWS_WITH(parse(with("/colour", "red")), Contains("top level: unknown key \"colour\""));
  CHECK_THROWS_WITH(parse(with("/nic", 400)), Contains("nic: expected an object, got the number 400"));

  auto no_nic = generated();
  no_nic.erase("nic");
  CHECK_THROWS_WITH(parse(no_nic),
                    Contains("cluster.json: nic: missing required key (several nodes need NICs)"));
  auto no_scale_up = generated();
  no_scale_up.erase("scale_up");
  CHECK_THROWS_WITH(parse(no_scale_up), Contains("scale_up: missing required key"));
  auto no_fabric = generated();
  no_fabric.erase("fabric");
  CHECK_THROWS_WITH(parse(no_fabric), Contains("fabric: missing required key"));
}

TEST_CASE("explicit link lists are checked link by link", "[topology][spec][fuzz]") {
  auto document = nlohmann::json::parse(R"({"name": "x", "gpu": "h100", "nodes": 1, "gpus_per_node": 2,
    "links": [{"from": "gpu0", "to": "gpu1", "bandwidth_GBps": 100, "class": "scale_up"}]})");
  CHECK(parse(document).links.size() == 1);
  const auto with = [&](const char* pointer, nlohmann::json value) {
    auto changed = document;
    changed[nlohmann::json::json_pointer(pointer)] = std::move(value);
    return changed;
  };
  CHECK_THROWS_WITH(parse(with("/links/0/bandwidth_GBps", -1)),
                    Contains("links[0].bandwidth_GBps: expected a positive"));
  CHECK_THROWS_WITH(parse(with("/links/0/to", "gpu0")),
                    Contains("links[0].to: a link must join two vertices"));
  CHECK_THROWS_WITH(parse(with("/links/0/class", "nvlink")), Contains("links[0].class: expected one of"));
  CHECK_THROWS_WITH(parse(with("/links/0/speed", 1)), Contains("links[0]: unknown key \"speed\""));
  CHECK_THROWS_WITH(parse(with("/links/0", 7)), Contains("links[0]: expected an object"));
  CHECK_THROWS_WITH(parse(with("/links", nlohmann::json::array())),
                    Contains("links: expected at least one link"));
  auto both = document;
  both["scale_up"] = {{"kind", "nvswitch"}, {"bandwidth_GBps", 1}};
  CHECK_THROWS_WITH(parse(both), Contains("scale_up: not allowed together with an explicit \"links\" list"));
}
