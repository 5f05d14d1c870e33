#pragma once

#include <memory>
#include <optional>

#include "sim/workload/request.hpp"
#include "sim/workload/trace_reader.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

// Replays a trace file as it streams: arrivals relative to the first row, quantised buckets
// spread out, a time window cut and re-based to 0, then sped up by rate_scale.
class TraceSource final : public RequestSource {
 public:
  TraceSource(const TraceSpec& spec, const WorkloadSpec& limits);

  std::optional<Request> next() override;
  bool exhausted() const override { return !pending_; }
  std::int32_t prefix_block_tokens() const override { return spec_.file.prefix_block_tokens; }

 private:
  bool fill_bucket();
  void advance();

  TraceSpec spec_;
  std::int32_t max_input_tokens_, max_output_tokens_, traffic_class_;
  std::unique_ptr<TraceReader> reader_;
  SimTime first_timestamp_ = -1;
  SimTime spread_ns_, start_ns_, end_ns_;
  // Rows of the current timestamp bucket, each with its (spread) time relative to the first row.
  std::vector<TraceRow> bucket_;
  std::vector<SimTime> bucket_times_;
  std::size_t bucket_head_ = 0;
  TraceRow lookahead_;
  bool has_lookahead_ = false;
  bool finished_ = false;
  std::uint64_t emitted_ = 0;
  std::optional<Request> pending_;
};

}  // namespace moesim
