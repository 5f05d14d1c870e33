#include "sim/report/chrome_trace.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>
#include <unistd.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr int kStepThread = 0;
constexpr int kFirstRankThread = 1;
// Threads of the all-to-alls with overlapped micro-batches: this offset plus the rank's thread.
constexpr int kAllToAllThreadOffset = 1000;
// The layer argument of events that belong to the whole step.
constexpr int kNoLayer = -1;
// instance_ranks_ of an instance with no recorded step.
constexpr int kUnseen = -1;

}  // namespace

ChromeTraceWriter::ChromeTraceWriter(std::filesystem::path file, const ChromeTraceOptions& options)
    : file_(std::move(file)), options_(options) {
  if (options_.start < 0) throw InputError("--chrome-trace-start", "", "expected a time >= 0");
  if (options_.duration <= 0) throw InputError("--chrome-trace-duration", "", "expected a positive time");
  if (options_.max_events == 0)
    throw InputError("--chrome-trace-max-events", "", "expected a positive count");
  const auto directory = file_.has_parent_path() ? file_.parent_path() : std::filesystem::path(".");
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    throw InputError(file_.string(), "",
                     fmt::format("cannot create directory {}: {}", directory.string(), error.message()));
  }
  temporary_ = directory / fmt::format(".{}.tmp.{}", file_.filename().string(), ::getpid());
  stream_.open(temporary_, std::ios::binary | std::ios::trunc);
  if (!stream_) throw InputError(file_.string(), "", fmt::format("cannot write ({})", std::strerror(errno)));
  stream_ << "{\"traceEvents\":[\n";
}

ChromeTraceWriter::~ChromeTraceWriter() {
  if (finished_) return;
  stream_.close();
  std::error_code ignored;
  std::filesystem::remove(temporary_, ignored);
}

bool ChromeTraceWriter::begin_step(std::size_t instance, SimTime start) {
  if (stopped_ || start < options_.start) return false;
  // Steps start in time order, so the first one past the window ends the recording.
  if (start >= options_.start + options_.duration) {
    stopped_ = true;
    return false;
  }
  instance_ = instance;
  step_start_ = start;
  step_layers_.clear();
  step_rank_offsets_.clear();
  step_rank_expert_s_.clear();
  return true;
}

void ChromeTraceWriter::layer(const LayerTimeline& layer) {
  step_layers_.push_back(layer);
  step_layers_.back().rank_expert_s = {};
  step_rank_offsets_.push_back(step_rank_expert_s_.size());
  step_rank_expert_s_.insert(step_rank_expert_s_.end(), layer.rank_expert_s.begin(),
                             layer.rank_expert_s.end());
}

void ChromeTraceWriter::end_step(SimTime duration, double stall_s) {
  // A step that runs past the window's end is left out (another instance's may still fit).
  if (step_start_ + duration > options_.start + options_.duration) return;
  int moe_ranks = 0;
  for (std::size_t l = 0; l < step_layers_.size(); ++l) {
    const std::size_t end =
        l + 1 < step_layers_.size() ? step_rank_offsets_[l + 1] : step_rank_expert_s_.size();
    moe_ranks = std::max(moe_ranks, static_cast<int>(end - step_rank_offsets_[l]));
  }
  const int ranks = std::max(1, moe_ranks);
  // Upper bound of the step's events: six parts per layer and rank, a stall per rank, and the step.
  const std::size_t bound = (step_layers_.size() * 6 + 1) * static_cast<std::size_t>(ranks) + 1;
  if (events_ + bound > options_.max_events) {
    truncated_ = true;
    stopped_ = true;
    return;
  }
  if (instance_ >= instance_ranks_.size()) instance_ranks_.resize(instance_ + 1, kUnseen);
  instance_ranks_[instance_] = std::max(instance_ranks_[instance_], moe_ranks);
  write_step(duration, stall_s, ranks);
}

void ChromeTraceWriter::write_step(SimTime duration, double stall_s, int ranks) {
  write_event("step", kStepThread, 0, ns_to_seconds(duration), kNoLayer);
  for (int r = 0; r < ranks; ++r)
    write_event("rebalance_stall", kFirstRankThread + r, 0, stall_s, kNoLayer);
  double layer_start = stall_s;
  for (std::size_t l = 0; l < step_layers_.size(); ++l) {
    const LayerTimeline& layer = step_layers_[l];
    overlapped_ = overlapped_ || layer.overlapped;
    const std::size_t offset = step_rank_offsets_[l];
    const std::size_t rank_count =
        (l + 1 < step_layers_.size() ? step_rank_offsets_[l + 1] : step_rank_expert_s_.size()) - offset;
    const char* attention_name = layer.kind == LayerTimeline::Kind::lm_head ? "lm_head" : "attention";
    // Assumption (moesim's presentation): every EP rank's thread shows the slowest attention DP
    // rank's time, the step's critical path, since the step cost keeps no per-rank attention.
    for (int r = 0; r < ranks; ++r) {
      const int thread = kFirstRankThread + r;
      const double rank_expert_s = static_cast<std::size_t>(r) < rank_count
                                       ? step_rank_expert_s_[offset + static_cast<std::size_t>(r)]
                                       : 0.0;
      double at = layer_start;
      write_event(attention_name, thread, at, layer.attention_s, layer.layer);
      at += layer.attention_s;
      write_event("tp_allreduce", thread, at, layer.tp_allreduce_s, layer.layer);
      at += layer.tp_allreduce_s;
      if (layer.overlapped) {
        const int all_to_all = thread + kAllToAllThreadOffset;
        write_event("dispatch", all_to_all, layer_start, layer.dispatch_s, layer.layer);
        write_event("combine", all_to_all, layer_start + layer.dispatch_s, layer.combine_s, layer.layer);
        write_event("experts", thread, at, rank_expert_s, layer.layer);
        at += layer.expert_s;
      } else {
        write_event("dispatch", thread, at, layer.dispatch_s, layer.layer);
        at += layer.dispatch_s;
        write_event("experts", thread, at, rank_expert_s, layer.layer);
        // The combine waits for the straggler rank.
        at += layer.expert_s;
        write_event("combine", thread, at, layer.combine_s, layer.layer);
        at += layer.combine_s;
      }
      write_event("overhead", thread, at, layer.overhead_s, layer.layer);
    }
    layer_start += layer.layer_s;
  }
  ++steps_;
}

void ChromeTraceWriter::write_event(const char* name, int thread, double start_s, double duration_s,
                                    int layer) {
  // Both ends are rounded to the nanosecond the simulation keeps time in, so that events
  // laid end to end abut exactly and their durations add up to the step's.
  const SimTime begin = step_start_ + seconds_to_ns(start_s);
  const SimTime end = step_start_ + seconds_to_ns(start_s + duration_s);
  if (end <= begin) return;
  const auto microseconds = [](SimTime ns) { return fmt::format("{}.{:03}", ns / 1000, ns % 1000); };
  stream_ << (first_event_ ? "" : ",\n");
  first_event_ = false;
  if (layer == kNoLayer) {
    stream_ << fmt::format(R"({{"name":"{}","cat":"{}","ph":"X","pid":{},"tid":{},"ts":{},"dur":{}}})", name,
                           thread == kStepThread ? "step" : "rebalance", instance_, thread,
                           microseconds(begin), microseconds(end - begin));
  } else {
    stream_ << fmt::format(
        R"({{"name":"{}","cat":"layer","ph":"X","pid":{},"tid":{},"ts":{},"dur":{},"args":{{"layer":{}}}}})",
        name, instance_, thread, microseconds(begin), microseconds(end - begin), layer);
  }
  ++events_;
}

void ChromeTraceWriter::finish() {
  auto metadata = [this](const char* kind, std::size_t process, int thread, const std::string& name) {
    stream_ << (first_event_ ? "" : ",\n");
    first_event_ = false;
    stream_ << fmt::format(R"({{"name":"{}","ph":"M","pid":{},"tid":{},"args":{{"name":"{}"}}}})", kind,
                           process, thread, name);
    stream_ << fmt::format(R"(,
{{"name":"thread_sort_index","ph":"M","pid":{},"tid":{},"args":{{"sort_index":{}}}}})",
                           process, thread, thread);
  };
  for (std::size_t i = 0; i < instance_ranks_.size(); ++i) {
    if (instance_ranks_[i] == kUnseen) continue;
    metadata("process_name", i, kStepThread, fmt::format("instance {}", i));
    metadata("thread_name", i, kStepThread, "steps");
    if (instance_ranks_[i] == 0) metadata("thread_name", i, kFirstRankThread, "all GPUs (dense model)");
    for (int r = 0; r < instance_ranks_[i]; ++r) {
      metadata("thread_name", i, kFirstRankThread + r, fmt::format("EP rank {}", r));
      if (overlapped_) {
        metadata("thread_name", i, kFirstRankThread + r + kAllToAllThreadOffset,
                 fmt::format("EP rank {} all-to-all", r));
      }
    }
  }
  stream_ << fmt::format(
      "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{{\"generator\":\"moesim\",\"window_start_s\":{},"
      "\"window_duration_s\":{},\"steps\":{},\"events\":{},\"truncated\":{}}}}}\n",
      ns_to_seconds(options_.start), ns_to_seconds(options_.duration), steps_, events_, truncated_);
  stream_.flush();
  if (!stream_) throw InputError(file_.string(), "", "write failed (disk full?)");
  stream_.close();
  std::error_code error;
  std::filesystem::rename(temporary_, file_, error);
  if (error)
    throw InputError(file_.string(), "", fmt::format("cannot rename into place: {}", error.message()));
  finished_ = true;
}

}  // namespace moesim
