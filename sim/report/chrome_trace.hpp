#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/serving/step_cost.hpp"

// A bounded window of the simulated timeline in the Trace Event Format (Chrome's
// about:tracing, Perfetto): one process per instance, one thread per EP rank with its
// layers' attention, all-to-alls and experts as complete ("X") events, and a "steps"
// thread with one event per step.
namespace moesim {

struct ChromeTraceOptions {
  SimTime start = 0;                              // window start (simulated time)
  SimTime duration = 10 * kNanosecondsPerSecond;  // window length
  // Assumption (moesim's own): a quarter of a million events (~30 MB) is about what
  // Perfetto and about:tracing load without strain.
  std::size_t max_events = 250'000;
};

// Records the steps that lie wholly inside the window, until the event budget would be
// exceeded, into a temporary file beside `file`; finish() completes the JSON and renames
// it into place. A writer destroyed without finish() removes its temporary file, so a
// failed run leaves no partial trace.
//
// Per layer and EP rank the events are laid end to end in the layer's critical-path
// order: attention (the slowest DP rank's), TP all-reduce, dispatch, the rank's own
// experts (the straggler's are the longest; the others wait), combine, and launches and
// permute; the layers follow each other, and the lm head closes the step, so on the
// straggler's thread the durations of a step sum to the step's time. A step that waited
// for a rebalance's weight movement starts with a "rebalance_stall" event on every rank. With overlapped
// micro-batches dispatch and combine go to a second thread per rank ("all-to-all"),
// starting with the layer, and each layer lasts its overlapped length.
class ChromeTraceWriter final : public StepTimelineSink {
 public:
  ChromeTraceWriter(std::filesystem::path file, const ChromeTraceOptions& options);
  ~ChromeTraceWriter() override;
  ChromeTraceWriter(const ChromeTraceWriter&) = delete;
  ChromeTraceWriter& operator=(const ChromeTraceWriter&) = delete;

  bool begin_step(std::size_t instance, SimTime start) override;
  void layer(const LayerTimeline& layer) override;
  void end_step(SimTime duration, double stall_s) override;

  // Writes the thread names and closes the document; throws InputError if the file
  // cannot be written.
  void finish();

  std::size_t events() const { return events_; }
  std::size_t steps() const { return steps_; }
  // Whether a step inside the window was left out for the event budget.
  bool truncated() const { return truncated_; }

 private:
  void write_event(const char* name, int thread, double start_s, double duration_s, int layer);
  void write_step(SimTime duration, double stall_s, int ranks);

  std::filesystem::path file_;
  std::filesystem::path temporary_;
  ChromeTraceOptions options_;
  std::ofstream stream_;
  bool finished_ = false;

  // The step being recorded.
  std::size_t instance_ = 0;
  SimTime step_start_ = 0;
  // Its layers (their rank_expert_s spans are not kept) and their per-rank expert times,
  // buffered until the step ends inside the window; reused from step to step.
  std::vector<LayerTimeline> step_layers_;
  std::vector<std::size_t> step_rank_offsets_;  // per layer, into step_rank_expert_s_
  std::vector<double> step_rank_expert_s_;
  bool first_event_ = true;

  std::size_t events_ = 0;
  std::size_t steps_ = 0;
  bool truncated_ = false;
  bool stopped_ = false;  // budget spent or window passed: nothing more is recorded
  bool overlapped_ = false;
  // Per instance: its EP ranks (0: a dense model; -1: no step recorded).
  std::vector<int> instance_ranks_;
};

}  // namespace moesim
