#include "sim/workload/trace_source.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace moesim {

TraceSource::TraceSource(const TraceSpec& spec, const WorkloadSpec& limits)
    : spec_(spec),
      max_input_tokens_(limits.max_input_tokens),
      max_output_tokens_(limits.max_output_tokens),
      traffic_class_(limits.traffic_class),
      reader_(make_trace_reader(spec.file)),
      spread_ns_(seconds_to_ns(spec.spread_buckets_s)),
      start_ns_(seconds_to_ns(spec.start_s)),
      end_ns_(spec.duration_s ? start_ns_ + seconds_to_ns(*spec.duration_s) : kTimeInfinity) {
  advance();
}

bool TraceSource::fill_bucket() {
  bucket_head_ = 0;
  std::size_t count = 0;
  const auto take = [&](TraceRow& row) {
    if (bucket_.size() == count) bucket_.emplace_back();
    std::swap(bucket_[count], row);
    ++count;
  };
  if (has_lookahead_) {
    take(lookahead_);
    has_lookahead_ = false;
  } else {
    if (bucket_.empty()) bucket_.emplace_back();
    if (!reader_->read(bucket_[0])) {
      bucket_.clear();
      return false;
    }
    count = 1;
  }
  if (first_timestamp_ < 0) first_timestamp_ = bucket_[0].timestamp;
  const SimTime bucket_start = bucket_[0].timestamp - first_timestamp_;
  SimTime width = 0;
  if (spread_ns_ > 0) {
    width = spread_ns_;
    while (reader_->read(lookahead_)) {
      if (lookahead_.timestamp != bucket_[0].timestamp) {
        has_lookahead_ = true;
        // Spreading never pushes a request past the next bucket's first one.
        width = std::min(width, lookahead_.timestamp - bucket_[0].timestamp);
        break;
      }
      take(lookahead_);
    }
  }
  bucket_.resize(count);
  bucket_times_.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    bucket_times_[i] = bucket_start + width * static_cast<SimTime>(i) / static_cast<SimTime>(count);
  }
  return true;
}

void TraceSource::advance() {
  pending_.reset();
  while (!finished_) {
    if (spec_.max_requests && emitted_ >= *spec_.max_requests) break;
    if (bucket_head_ == bucket_.size() && !fill_bucket()) break;
    const SimTime time = bucket_times_[bucket_head_];
    TraceRow& row = bucket_[bucket_head_++];
    if (time < start_ns_) continue;
    if (time >= end_ns_) break;
    Request request;
    request.id = emitted_++;
    const SimTime offset = time - start_ns_;
    request.arrival =
        spec_.rate_scale == 1.0
            ? offset
            : static_cast<SimTime>(std::llround(static_cast<double>(offset) / spec_.rate_scale));
    request.input_tokens =
        max_input_tokens_ > 0 ? std::min(row.input_tokens, max_input_tokens_) : row.input_tokens;
    request.output_tokens =
        max_output_tokens_ > 0 ? std::min(row.output_tokens, max_output_tokens_) : row.output_tokens;
    request.traffic_class = row.traffic_class >= 0 ? row.traffic_class : traffic_class_;
    request.prefix_blocks = std::move(row.prefix_blocks);
    const std::int32_t block_tokens = spec_.file.prefix_block_tokens;
    if (block_tokens > 0 && request.input_tokens < row.input_tokens) {
      // A cut prompt keeps only the blocks that still cover it.
      const auto kept = static_cast<std::size_t>((request.input_tokens + block_tokens - 1) / block_tokens);
      if (request.prefix_blocks.size() > kept) request.prefix_blocks.resize(kept);
    }
    pending_ = std::move(request);
    return;
  }
  finished_ = true;
}

std::optional<Request> TraceSource::next() {
  if (!pending_) return std::nullopt;
  std::optional<Request> result = std::move(pending_);
  advance();
  return result;
}

}  // namespace moesim
