#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace moesim {

// Simulated time: an integer count of nanoseconds since the start of the run.
using SimTime = std::int64_t;

inline constexpr SimTime kNanosecondsPerSecond = 1'000'000'000;
inline constexpr SimTime kTimeInfinity = std::numeric_limits<SimTime>::max();

// Durations computed in floating point are rounded up, so a non-zero cost never
// becomes a zero-length stage.
inline SimTime seconds_to_ns_ceil(double seconds) {
  return static_cast<SimTime>(std::ceil(seconds * 1e9));
}
inline SimTime seconds_to_ns(double seconds) {
  return static_cast<SimTime>(std::llround(seconds * 1e9));
}
inline double ns_to_seconds(SimTime ns) {
  return static_cast<double>(ns) * 1e-9;
}

}  // namespace moesim
