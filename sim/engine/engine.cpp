#include "sim/engine/engine.hpp"

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

HandlerId Engine::add_handler(EventHandler& handler) {
  handlers_.push_back(&handler);
  return static_cast<HandlerId>(handlers_.size() - 1);
}

void Engine::schedule(SimTime at, HandlerId handler, std::uint32_t kind, std::uint64_t payload,
                      std::uint32_t priority) {
  if (at < now_) {
    throw InternalError(fmt::format("event scheduled in the past: {} ns < now {} ns", at, now_));
  }
  if (handler >= handlers_.size()) throw InternalError(fmt::format("event for unknown handler {}", handler));
  queue_.push(Event{at, next_sequence_++, payload, priority, handler, kind});
}

RunSummary Engine::run(const StopConditions& stop) {
  RunSummary summary;
  stop_requested_ = false;
  for (;;) {
    if (queue_.empty()) {
      summary.reason = StopReason::queue_empty;
      break;
    }
    if (queue_.top().time > stop.until) {
      summary.reason = StopReason::time_limit;
      break;
    }
    if (summary.events >= stop.max_events) {
      summary.reason = StopReason::event_limit;
      break;
    }
    const Event event = queue_.pop();
    now_ = event.time;
    ++summary.events;
    ++events_handled_;
    handlers_[event.handler]->handle(event, *this);
    if (stop_requested_) {
      summary.reason = StopReason::requested;
      break;
    }
  }
  summary.end_time = now_;
  return summary;
}

}  // namespace moesim
