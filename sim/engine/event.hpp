#pragma once

#include <cstdint>

#include "sim/common/time.hpp"

namespace moesim {

// Index of a handler registered with the engine.
using HandlerId = std::uint32_t;

// A small plain event: no owned memory, so the queue moves it by copying 32 bytes.
// Meaning of `kind` and `payload` belongs to the handler that receives it.
struct Event {
  SimTime time = 0;
  std::uint64_t sequence = 0;  // insertion order; breaks ties deterministically
  std::uint64_t payload = 0;
  std::uint32_t priority = 0;  // lower runs first among events at the same time
  HandlerId handler = 0;
  std::uint32_t kind = 0;
};

// Total order (time, priority, sequence): equal-time events run in a fixed order.
inline bool runs_before(const Event& a, const Event& b) {
  if (a.time != b.time) return a.time < b.time;
  if (a.priority != b.priority) return a.priority < b.priority;
  return a.sequence < b.sequence;
}

}  // namespace moesim
