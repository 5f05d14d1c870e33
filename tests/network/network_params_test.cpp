#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/network/network_params.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

NetworkParams parse(std::string_view text) {
  const auto document = JsonReader::parse_text(text, "scenario.json");
  return parse_network_params(JsonReader(document, "scenario.json", "network"));
}

}  // namespace

TEST_CASE("network params: defaults, every key, round trip", "[network][params]") {
  const auto defaults = parse("{}");
  CHECK(defaults.ep_transport == EpTransport::high_throughput);
  CHECK(defaults.scale_up_efficiency == 0.69);
  CHECK(defaults.scale_out_efficiency == 0.92);
  CHECK(defaults.efficiency(LinkClass::scale_up) == 0.69);
  CHECK(defaults.low_latency_over_nvlink);
  const auto params =
      parse(R"({"backend": "analytical", "ep_transport": "low_latency", "scale_up_efficiency": 0.5,
      "scale_out_efficiency": 1, "launch_overhead_us": 0, "per_peer_overhead_us": 2.5,
      "low_latency_over_nvlink": false})");
  CHECK(params.ep_transport == EpTransport::low_latency);
  CHECK(params.scale_up_efficiency == 0.5);
  CHECK(params.scale_out_efficiency == 1);
  CHECK(params.launch_overhead_us == 0);
  CHECK(params.per_peer_overhead_us == 2.5);
  CHECK_FALSE(params.low_latency_over_nvlink);
  const auto json = to_json(params);
  CHECK(to_json(parse_network_params(JsonReader(json, "again"))) == json);
}

TEST_CASE("network params: bad values name the key", "[network][params][fuzz]") {
  CHECK_THROWS_WITH(parse(""), Contains("scenario.json: file is empty"));
  CHECK_THROWS_WITH(parse(R"({"scale_up_efficiency": )"), Contains("scenario.json: line 1"));
  CHECK_THROWS_WITH(
      parse(R"({"scale_up_efficiency": 1.5})"),
      Contains("scenario.json: network.scale_up_efficiency: expected an efficiency in (0, 1], got 1.5"));
  CHECK_THROWS_WITH(parse(R"({"scale_out_efficiency": -0.1})"),
                    Contains("network.scale_out_efficiency: expected a positive number"));
  CHECK_THROWS_WITH(parse(R"({"scale_out_efficiency": 0})"), Contains("network.scale_out_efficiency"));
  CHECK_THROWS_WITH(parse(R"({"launch_overhead_us": -3})"),
                    Contains("network.launch_overhead_us: expected a number >= 0"));
  CHECK_THROWS_WITH(parse(R"({"launch_overhead_us": 1e300})"),
                    Contains("network.launch_overhead_us: expected at most"));
  CHECK_THROWS_WITH(parse(R"({"per_peer_overhead_us": 1e400})"),
                    Contains("scenario.json") && Contains("1e400"));
  CHECK_THROWS_WITH(parse(R"({"per_peer_overhead_us": null})"),
                    Contains("network.per_peer_overhead_us: expected a number, got null"));
  CHECK_THROWS_WITH(parse(R"({"per_peer_overhead_us": "1"})"),
                    Contains("expected a number, got the string \"1\""));
  CHECK_THROWS_WITH(
      parse(R"({"ep_transport": "fast"})"),
      Contains("network.ep_transport: expected one of [high_throughput, low_latency], got \"fast\""));
  CHECK_THROWS_WITH(parse(R"({"backend": "ns3"})"),
                    Contains("network.backend: expected one of [analytical]"));
  CHECK_THROWS_WITH(parse(R"({"low_latency_over_nvlink": 1})"),
                    Contains("network.low_latency_over_nvlink: expected true or false"));
  CHECK_THROWS_WITH(parse(R"({"efficiency": 0.9})"), Contains("network: unknown key \"efficiency\""));
}
