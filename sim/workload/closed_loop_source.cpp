#include "sim/workload/closed_loop_source.hpp"

#include <algorithm>

#include "sim/common/error.hpp"

namespace moesim {

ClosedLoopSource::ClosedLoopSource(const ClosedLoopSpec& spec, const WorkloadSpec& limits)
    : spec_(spec),
      input_tokens_(limits.max_input_tokens > 0 ? std::min(spec.input_tokens, limits.max_input_tokens)
                                                : spec.input_tokens),
      output_tokens_(limits.max_output_tokens > 0 ? std::min(spec.output_tokens, limits.max_output_tokens)
                                                  : spec.output_tokens),
      traffic_class_(limits.traffic_class),
      ready_(static_cast<std::size_t>(spec.concurrency)) {
  const auto initial = std::min<std::uint64_t>(spec.requests, static_cast<std::uint64_t>(spec.concurrency));
  for (std::uint64_t i = 0; i < initial; ++i)
    on_completion(0);
}

void ClosedLoopSource::on_completion(SimTime now) {
  if (released_ == spec_.requests) return;
  if (ready_count_ == ready_.size()) {
    throw InternalError("closed loop: more completions than requests in flight");
  }
  ready_[(ready_head_ + ready_count_) % ready_.size()] = now;
  ++ready_count_;
  ++released_;
}

std::optional<Request> ClosedLoopSource::next() {
  if (ready_count_ == 0) return std::nullopt;
  Request request;
  request.id = emitted_++;
  request.arrival = ready_[ready_head_];
  request.input_tokens = input_tokens_;
  request.output_tokens = output_tokens_;
  request.traffic_class = traffic_class_;
  ready_head_ = (ready_head_ + 1) % ready_.size();
  --ready_count_;
  return request;
}

}  // namespace moesim
