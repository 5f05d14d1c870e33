#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sim/common/time.hpp"

namespace moesim {

// One inference request as a workload source emits it.
struct Request {
  std::uint64_t id = 0;            // 0-based order of arrival in the source
  SimTime arrival = 0;             // ns since the start of the run
  std::int32_t input_tokens = 1;   // >= 1
  std::int32_t output_tokens = 1;  // >= 1
  std::int32_t traffic_class = 0;
  std::int32_t routing_component = 0;        // the router's (class, affinity group), set at arrival
  std::vector<std::uint64_t> prefix_blocks;  // Mooncake hash_ids; empty if none
};

// A stream of requests. Sources are pulled one request at a time, so a trace of any
// length is replayed in constant memory.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // Next request in non-decreasing arrival order, or nullopt if none is available *now*.
  // Trace rows are validated as they are reached, so this may throw InputError.
  virtual std::optional<Request> next() = 0;
  // True once no request will ever come again.
  virtual bool exhausted() const = 0;
  // Closed-loop sources release a new request arriving at `now` for each completion; others ignore it.
  virtual void on_completion(SimTime /*now*/) {}
  // Tokens per prefix block id (Mooncake: 512), 0 if the source has no block ids.
  virtual std::int32_t prefix_block_tokens() const { return 0; }
};

}  // namespace moesim
