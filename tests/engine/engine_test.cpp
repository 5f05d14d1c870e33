#include <algorithm>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/rng.hpp"
#include "sim/engine/engine.hpp"

using namespace moesim;

namespace {

// Records (time, payload) of every event it receives.
struct Recorder : EventHandler {
  std::vector<std::pair<SimTime, std::uint64_t>> seen;
  void handle(const Event& event, Engine&) override { seen.emplace_back(event.time, event.payload); }
};

}  // namespace

TEST_CASE("events run in (time, priority, insertion) order", "[engine]") {
  Engine engine;
  Recorder recorder;
  const HandlerId id = engine.add_handler(recorder);
  engine.schedule(20, id, 0, /*payload=*/1);
  engine.schedule(10, id, 0, 2, /*priority=*/5);
  engine.schedule(10, id, 0, 3, /*priority=*/1);
  engine.schedule(10, id, 0, 4, /*priority=*/5);
  engine.schedule(0, id, 0, 5);
  const auto summary = engine.run();
  CHECK(summary.reason == StopReason::queue_empty);
  CHECK(summary.events == 5);
  const std::vector<std::pair<SimTime, std::uint64_t>> expected{{0, 5}, {10, 3}, {10, 2}, {10, 4}, {20, 1}};
  CHECK(recorder.seen == expected);
  CHECK(engine.now() == 20);
}

TEST_CASE("the heap agrees with a stable sort on random keys", "[engine]") {
  Rng rng(7);
  EventQueue queue;
  std::vector<Event> events;
  for (std::uint64_t i = 0; i < 20000; ++i) {
    Event event;
    event.time = static_cast<SimTime>(rng.below(500));  // many ties on purpose
    event.priority = static_cast<std::uint32_t>(rng.below(3));
    event.sequence = i;
    event.payload = i;
    events.push_back(event);
    queue.push(event);
  }
  std::sort(events.begin(), events.end(), runs_before);
  for (const auto& expected : events) {
    REQUIRE(!queue.empty());
    CHECK(queue.pop().payload == expected.payload);
  }
  CHECK(queue.empty());
}

namespace {

// Each event schedules a follow-up, so the run is a chain driven by the handler.
struct Chain : EventHandler {
  HandlerId self = 0;
  int remaining = 0;
  void handle(const Event&, Engine& engine) override {
    if (--remaining > 0) engine.schedule_after(100, self, 0);
  }
};

struct Stopper : EventHandler {
  void handle(const Event&, Engine& engine) override { engine.request_stop(); }
};

}  // namespace

TEST_CASE("stop conditions: time limit, event limit and a requested stop", "[engine]") {
  Engine engine;
  Chain chain;
  chain.self = engine.add_handler(chain);
  chain.remaining = 50;
  engine.schedule(0, chain.self, 0);

  auto summary = engine.run(StopConditions{.until = 1000});
  CHECK(summary.reason == StopReason::time_limit);
  CHECK(summary.events == 11);  // times 0, 100, ..., 1000
  CHECK(engine.now() == 1000);

  summary = engine.run(StopConditions{.max_events = 5});
  CHECK(summary.reason == StopReason::event_limit);
  CHECK(summary.events == 5);
  CHECK(engine.now() == 1500);

  Stopper stopper;
  const HandlerId stop_id = engine.add_handler(stopper);
  engine.schedule(1550, stop_id, 0);
  summary = engine.run();
  CHECK(summary.reason == StopReason::requested);
  CHECK(engine.now() == 1550);

  summary = engine.run();
  CHECK(summary.reason == StopReason::queue_empty);
  CHECK(engine.events_handled() == 51);
}

TEST_CASE("scheduling in the past is a bug, not a silent reorder", "[engine]") {
  Engine engine;
  Chain chain;
  chain.self = engine.add_handler(chain);
  chain.remaining = 1;
  engine.schedule(100, chain.self, 0);
  engine.run();
  CHECK_THROWS_AS(engine.schedule(50, chain.self, 0), InternalError);
  CHECK_THROWS_AS(engine.schedule(200, /*handler=*/99, 0), InternalError);
}

TEST_CASE("two identical runs handle identical event sequences", "[engine][determinism]") {
  auto run_once = [] {
    Engine engine;
    Recorder recorder;
    const HandlerId id = engine.add_handler(recorder);
    Rng rng(42);
    for (std::uint64_t i = 0; i < 1000; ++i)
      engine.schedule(static_cast<SimTime>(rng.below(50)), id, 0, i);
    engine.run();
    return recorder.seen;
  };
  CHECK(run_once() == run_once());
}
