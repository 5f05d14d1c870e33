#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "sim/engine/event_queue.hpp"

namespace moesim {

class Engine;

// Receives the events addressed to it. One virtual call per event; the engine
// knows nothing about what a handler models.
class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void handle(const Event& event, Engine& engine) = 0;
};

struct StopConditions {
  SimTime until = kTimeInfinity;  // events after this time are left in the queue
  std::uint64_t max_events = std::numeric_limits<std::uint64_t>::max();
};

enum class StopReason { queue_empty, time_limit, event_limit, requested };

struct RunSummary {
  StopReason reason = StopReason::queue_empty;
  std::uint64_t events = 0;  // handled in this call to run()
  SimTime end_time = 0;
};

// The clock, the event queue and the run loop; nothing else.
class Engine {
 public:
  // The handler must outlive the engine's run.
  HandlerId add_handler(EventHandler& handler);

  // Schedules an event at absolute time `at` (>= now()).
  void schedule(SimTime at, HandlerId handler, std::uint32_t kind, std::uint64_t payload = 0,
                std::uint32_t priority = 0);
  void schedule_after(SimTime delay, HandlerId handler, std::uint32_t kind, std::uint64_t payload = 0,
                      std::uint32_t priority = 0) {
    schedule(now_ + delay, handler, kind, payload, priority);
  }

  RunSummary run(const StopConditions& stop = {});
  // Asks the run loop to return after the event being handled.
  void request_stop() { stop_requested_ = true; }

  SimTime now() const { return now_; }
  std::uint64_t events_handled() const { return events_handled_; }
  std::size_t pending() const { return queue_.size(); }
  void reserve(std::size_t events) { queue_.reserve(events); }

 private:
  EventQueue queue_;
  std::vector<EventHandler*> handlers_;
  SimTime now_ = 0;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t events_handled_ = 0;
  bool stop_requested_ = false;
};

}  // namespace moesim
