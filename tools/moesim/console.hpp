#pragma once

#include <cstdint>
#include <string>

namespace moesim::cli {

// A single self-overwriting status line on stderr, shown only when stderr is a
// terminal and the user did not ask for quiet; throttled to a few updates a second.
class ProgressLine {
 public:
  explicit ProgressLine(bool quiet);
  ~ProgressLine();
  bool enabled() const { return enabled_; }
  void update(const std::string& text);
  void finish();

 private:
  bool enabled_;
  bool shown_ = false;
  std::int64_t last_update_ns_ = 0;
};

// The --set override of a --duration option ("workload.duration_s=S"); a duration that
// is not a positive finite number is an InputError naming the option.
std::string duration_override(double seconds);

// Peak resident memory of this process so far.
std::int64_t peak_rss_bytes();

}  // namespace moesim::cli
