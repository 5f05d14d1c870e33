#include "tools/moesim/console.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim::cli {

namespace {

std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ProgressLine::ProgressLine(bool quiet) : enabled_(!quiet && ::isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() {
  finish();
}

void ProgressLine::update(const std::string& text) {
  if (!enabled_) return;
  const std::int64_t now = monotonic_ns();
  if (shown_ && now - last_update_ns_ < 200'000'000) return;
  last_update_ns_ = now;
  fmt::print(stderr, "\r\033[K{}", text);
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::finish() {
  if (enabled_ && shown_) {
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  shown_ = false;
}

std::string duration_override(double seconds) {
  if (!(std::isfinite(seconds) && seconds > 0)) {
    throw InputError("--duration", fmt::format("{}", seconds), "expected a positive number of seconds");
  }
  return fmt::format("workload.duration_s={}", seconds);
}

std::int64_t peak_rss_bytes() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace moesim::cli
