#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <unordered_map>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/workload/request.hpp"

namespace moesim {

// Assumption: the defaults are vLLM's (max_num_seqs 256, max_num_batched_tokens 8192 with chunked
// prefill, KV blocks of 16 tokens, prefix caching on).
struct SchedulerSpec {
  std::int32_t max_sequences = 256;        // running sequences per attention DP rank
  std::int32_t max_batched_tokens = 8192;  // tokens per step per attention DP rank
  bool chunked_prefill = true;             // split long prompts over steps
  std::int32_t kv_block_tokens = 16;       // KV-cache allocation unit
  bool prefix_caching = true;              // reuse KV blocks named by the trace's block ids
};

// What one attention DP rank computes in one step, in the aggregates the cost
// model needs (so costing a step is O(1) in the batch size).
struct BatchShape {
  std::int64_t decode_sequences = 0;         // one new token each
  std::int64_t decode_context = 0;           // sum over decodes of the tokens attended to
  std::int64_t decode_windowed_context = 0;  // same, each capped at the sliding window
  std::int64_t prefill_tokens = 0;           // prompt tokens computed this step
  double prefill_pairs = 0;                  // causal (query, key) pairs of the prefill chunks
  double prefill_windowed_pairs = 0;         // same, keys limited to the sliding window
  std::int64_t prefill_context_read = 0;     // KV tokens read from earlier chunks and cached prefixes
  std::int64_t logits = 0;                   // tokens that produce logits (decodes + finishing prefills)
  // Tokens per routing component (Request::routing_component); empty when the router has one.
  std::vector<std::int64_t> routing_tokens;

  std::int64_t tokens() const { return decode_sequences + prefill_tokens; }
  bool empty() const { return tokens() == 0; }
  // Zeroes every figure, keeping routing_tokens' size (no allocation).
  void clear();
};

// Timestamps of one finished request, handed to the metrics.
struct FinishedRequest {
  std::uint64_t id = 0;
  SimTime arrival = 0;
  SimTime first_scheduled = 0;
  SimTime first_token = 0;
  SimTime finished = 0;
  std::int32_t input_tokens = 0;
  std::int32_t output_tokens = 0;
  std::int32_t cached_prompt_tokens = 0;
  std::int32_t preemptions = 0;
  std::int32_t traffic_class = 0;
  std::int32_t routing_component = 0;
};

// What an instance does with its requests (prefill/decode disaggregation).
enum class InstanceRole {
  unified,  // prefill and decode on the same GPUs
  prefill,  // prompts only: a request leaves after its first token, its KV cache held until transferred
  decode,   // requests arrive with their prompt's KV cache already transferred in
};

// Receives per-request milestones as steps complete.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void on_first_token(const FinishedRequest& request) = 0;  // finished field unset
  // A prefill instance computed the request's prompt and first token (first_token set); its KV blocks
  // stay held until release_handed_off(). Requests of one output token finish instead.
  virtual void on_prefilled(const FinishedRequest& request) = 0;
  virtual void on_finished(const FinishedRequest& request) = 0;
  virtual void on_rejected(const Request& request, SimTime now) = 0;
  virtual void on_preempted(SimTime now) = 0;
};

// Continuous batching for one attention DP rank (in the manner of vLLM's scheduler):
// each step first serves running sequences (one decode token each, or the next
// prefill chunk), then admits waiting requests FIFO while the sequence budget,
// the token budget and free KV blocks allow. When a running sequence needs a KV
// block and none is free, the most recently admitted sequence is preempted and
// later recomputed (its prompt plus the tokens it had generated).
class BatchScheduler {
 public:
  // `routing_components`: the router's components (BatchShape::routing_tokens), 1 for none.
  BatchScheduler(const SchedulerSpec& spec, std::int64_t kv_token_capacity, std::int32_t prefix_block_tokens,
                 std::int32_t sliding_window, int routing_components = 1,
                 InstanceRole role = InstanceRole::unified);

  // Queues a request. One that can never run (its prompt and output exceed the KV
  // cache, or its prompt exceeds the step budget without chunked prefill) is rejected.
  // On a prefill instance only the prompt's KV cache counts.
  void enqueue(Request request, SimTime now, RequestObserver& observer);
  // Whether a sequence of `tokens` fits the KV cache when nothing else holds it.
  bool could_ever_hold(std::int64_t tokens) const { return blocks_for(tokens) <= total_blocks_; }

  // Prefill role: frees the KV blocks of a request handed off by on_prefilled().
  void release_handed_off(std::uint64_t request_id);
  // Decode role: reserves the KV blocks of a prompt about to be transferred in, plus its first decode
  // token; false when they are not free now or preempted sequences wait for blocks here (the transfer
  // must wait: back-pressure). Assumption (moesim's own): preempted sequences go before new transfers.
  bool reserve_transfer(std::int32_t prompt_tokens);
  bool can_reserve_transfer(std::int32_t prompt_tokens) const {
    return waiting_.empty() && blocks_for(std::int64_t{prompt_tokens} + 1) <= free_blocks_;
  }
  // Decode role: the transfer reserved above arrived at `now`; the request waits for its first decode
  // step with its KV cache present (no prefill), admitted before preempted sequences since it needs no
  // more blocks. `prefilled` carries the prefill's milestones.
  void enqueue_transferred(const FinishedRequest& prefilled, SimTime now);

  // Chooses the next step's work. Call complete_step() before the next plan_step().
  const BatchShape& plan_step(SimTime now, RequestObserver& observer);
  // Applies the planned step, which ended at `now`.
  void complete_step(SimTime now, RequestObserver& observer);

  bool has_work() const { return !running_.empty() || !waiting_.empty() || !transferred_.empty(); }
  std::size_t running() const { return running_.size(); }
  std::size_t waiting() const { return waiting_.size() + transferred_.size(); }
  // Requests this rank serves or will serve: running, waiting and (decode) transfers reserved.
  std::size_t outstanding() const { return running() + waiting() + incoming_transfers_; }
  double kv_utilization() const;
  std::int64_t kv_blocks_total() const { return total_blocks_; }

 private:
  struct Sequence {
    Request request;
    SimTime first_scheduled = -1;
    SimTime first_token = -1;
    std::int32_t prompt_target =
        0;  // tokens to prefill: the prompt, plus generated tokens after a preemption
    std::int32_t prefilled = 0;
    std::int32_t generated = 0;
    std::int32_t blocks = 0;
    std::int32_t cached_tokens = 0;
    std::int32_t preemptions = 0;
    std::int32_t scheduled_tokens = 0;  // this step
  };

  std::int32_t blocks_for(std::int64_t tokens) const;
  bool reserve_blocks(Sequence& sequence, std::int64_t tokens_needed, std::size_t self_index,
                      RequestObserver& observer, SimTime now);
  void preempt_last(RequestObserver& observer, SimTime now);
  void release(Sequence& sequence);
  std::int32_t cached_prefix_tokens(const Sequence& sequence);
  void remember_prefix(const Sequence& sequence);
  void trim_prefix_cache();
  void add_prefill(Sequence& sequence, std::int32_t chunk);
  void add_decode(Sequence& sequence, std::int64_t context);
  FinishedRequest milestones(const Sequence& sequence) const;

  SchedulerSpec spec_;
  InstanceRole role_;
  std::int64_t total_blocks_;
  std::int64_t free_blocks_;
  std::int32_t prefix_block_tokens_;
  std::int32_t sliding_window_;
  std::vector<Sequence> running_;  // in admission order
  std::deque<Sequence> waiting_;
  std::deque<Sequence> transferred_;  // decode: KV cache present, blocks held, not yet running
  BatchShape shape_;
  bool preempted_this_step_ = false;
  std::unordered_map<std::uint64_t, std::int32_t> handed_off_blocks_;  // prefill: KV held for transfer
  std::size_t incoming_transfers_ = 0;                                 // decode: reserved, not arrived
  // Prefix cache: block ids whose KV sits in free blocks, least recently used first.
  // Its size never exceeds the free blocks: allocation evicts from the front.
  std::list<std::uint64_t> prefix_lru_;
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> prefix_index_;
};

}  // namespace moesim
