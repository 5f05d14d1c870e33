#pragma once

#include <optional>
#include <vector>

#include "sim/workload/request.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

// N concurrent sequences, as serving benchmarks measure peak throughput: N requests arrive at 0,
// each completion releases the next one at the completion time, until `requests` were released.
class ClosedLoopSource final : public RequestSource {
 public:
  ClosedLoopSource(const ClosedLoopSpec& spec, const WorkloadSpec& limits);

  std::optional<Request> next() override;
  bool exhausted() const override { return released_ == spec_.requests && ready_count_ == 0; }
  // Completions must come in non-decreasing time, as the engine delivers them.
  void on_completion(SimTime now) override;

 private:
  ClosedLoopSpec spec_;
  std::int32_t input_tokens_, output_tokens_, traffic_class_;
  // Released but not yet taken arrivals: a ring of at most `concurrency` times.
  std::vector<SimTime> ready_;
  std::size_t ready_head_ = 0, ready_count_ = 0;
  std::uint64_t released_ = 0;
  std::uint64_t emitted_ = 0;
};

}  // namespace moesim
