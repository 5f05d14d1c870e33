#include "sim/serving/scheduler.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// Sum over the queries s+1 .. s+c of min(position, window): causal keys attended to.
double attended_pairs(std::int64_t start, std::int64_t chunk, std::int64_t window) {
  auto full = [](double from, double count) { return count * from + count * (count + 1) / 2.0; };
  if (window <= 0 || start + chunk <= window)
    return full(static_cast<double>(start), static_cast<double>(chunk));
  if (start >= window) return static_cast<double>(chunk) * static_cast<double>(window);
  const std::int64_t below = window - start;  // queries that still see their whole prefix
  return full(static_cast<double>(start), static_cast<double>(below)) +
         static_cast<double>(chunk - below) * static_cast<double>(window);
}

}  // namespace

void BatchShape::clear() {
  std::vector<std::int64_t> routing = std::move(routing_tokens);
  *this = BatchShape{};
  std::fill(routing.begin(), routing.end(), 0);
  routing_tokens = std::move(routing);
}

BatchScheduler::BatchScheduler(const SchedulerSpec& spec, std::int64_t kv_token_capacity,
                               std::int32_t prefix_block_tokens, std::int32_t sliding_window,
                               int routing_components, InstanceRole role)
    : spec_(spec),
      role_(role),
      total_blocks_(kv_token_capacity / spec.kv_block_tokens),
      free_blocks_(total_blocks_),
      prefix_block_tokens_(prefix_block_tokens),
      sliding_window_(sliding_window) {
  if (spec_.kv_block_tokens <= 0 || spec_.max_sequences <= 0 || spec_.max_batched_tokens <= 0) {
    throw InternalError("scheduler budgets must be positive");
  }
  if (routing_components < 1) throw InternalError("scheduler: at least one routing component");
  if (routing_components > 1) shape_.routing_tokens.assign(static_cast<std::size_t>(routing_components), 0);
}

std::int32_t BatchScheduler::blocks_for(std::int64_t tokens) const {
  return static_cast<std::int32_t>((tokens + spec_.kv_block_tokens - 1) / spec_.kv_block_tokens);
}

double BatchScheduler::kv_utilization() const {
  return total_blocks_ == 0 ? 0.0
                            : 1.0 - static_cast<double>(free_blocks_) / static_cast<double>(total_blocks_);
}

void BatchScheduler::enqueue(Request request, SimTime now, RequestObserver& observer) {
  const std::int64_t lifetime_tokens =
      std::int64_t{request.input_tokens} + (role_ == InstanceRole::prefill ? 0 : request.output_tokens);
  const bool prompt_never_fits_a_step =
      !spec_.chunked_prefill && request.input_tokens > spec_.max_batched_tokens;
  if (blocks_for(lifetime_tokens) > total_blocks_ || prompt_never_fits_a_step) {
    observer.on_rejected(request, now);
    return;
  }
  Sequence sequence;
  sequence.prompt_target = request.input_tokens;
  sequence.request = std::move(request);
  waiting_.push_back(std::move(sequence));
}

void BatchScheduler::release_handed_off(std::uint64_t request_id) {
  const auto found = handed_off_blocks_.find(request_id);
  if (found == handed_off_blocks_.end())
    throw InternalError(fmt::format("request {} holds no handed-off KV blocks here", request_id));
  free_blocks_ += found->second;
  handed_off_blocks_.erase(found);
}

bool BatchScheduler::reserve_transfer(std::int32_t prompt_tokens) {
  if (!can_reserve_transfer(prompt_tokens)) return false;
  free_blocks_ -= blocks_for(std::int64_t{prompt_tokens} + 1);
  ++incoming_transfers_;
  trim_prefix_cache();
  return true;
}

void BatchScheduler::enqueue_transferred(const FinishedRequest& prefilled, SimTime now) {
  if (incoming_transfers_ == 0) throw InternalError("a KV transfer arrived without a reservation");
  --incoming_transfers_;
  Sequence sequence;
  sequence.request.id = prefilled.id;
  sequence.request.arrival = prefilled.arrival;
  sequence.request.input_tokens = prefilled.input_tokens;
  sequence.request.output_tokens = prefilled.output_tokens;
  sequence.request.traffic_class = prefilled.traffic_class;
  sequence.request.routing_component = prefilled.routing_component;
  sequence.prompt_target = prefilled.input_tokens;
  sequence.prefilled = prefilled.input_tokens;
  sequence.generated = 1;
  sequence.blocks = blocks_for(std::int64_t{prefilled.input_tokens} + 1);
  sequence.cached_tokens = prefilled.cached_prompt_tokens;
  sequence.preemptions = prefilled.preemptions;
  sequence.first_scheduled = prefilled.first_scheduled;
  sequence.first_token = now;
  transferred_.push_back(std::move(sequence));
}

void BatchScheduler::release(Sequence& sequence) {
  free_blocks_ += sequence.blocks;
  sequence.blocks = 0;
}

void BatchScheduler::preempt_last(RequestObserver& observer, SimTime now) {
  Sequence victim = std::move(running_.back());
  running_.pop_back();
  release(victim);
  // Recompute: the generated tokens join the prompt that must be prefilled again.
  victim.prompt_target = victim.request.input_tokens + victim.generated;
  victim.prefilled = 0;
  victim.scheduled_tokens = 0;
  victim.cached_tokens = 0;  // the recompute prefills the whole prompt again
  ++victim.preemptions;
  preempted_this_step_ = true;
  observer.on_preempted(now);
  waiting_.push_front(std::move(victim));
}

bool BatchScheduler::reserve_blocks(Sequence& sequence, std::int64_t tokens_needed, std::size_t self_index,
                                    RequestObserver& observer, SimTime now) {
  const std::int32_t extra = blocks_for(tokens_needed) - sequence.blocks;
  while (extra > free_blocks_) {
    if (running_.size() - 1 == self_index)
      return false;  // the sequence itself is the newest: the caller preempts it
    preempt_last(observer, now);
  }
  if (extra > 0) {
    free_blocks_ -= extra;
    sequence.blocks += extra;
  }
  return true;
}

std::int32_t BatchScheduler::cached_prefix_tokens(const Sequence& sequence) {
  if (!spec_.prefix_caching || prefix_block_tokens_ <= 0) return 0;
  std::int64_t hits = 0;
  for (const std::uint64_t block : sequence.request.prefix_blocks) {
    const auto found = prefix_index_.find(block);
    if (found == prefix_index_.end()) break;
    prefix_lru_.splice(prefix_lru_.end(), prefix_lru_, found->second);
    ++hits;
  }
  // At least one prompt token is always computed, to produce the first output token.
  return static_cast<std::int32_t>(
      std::min<std::int64_t>(hits * prefix_block_tokens_, sequence.request.input_tokens - 1));
}

void BatchScheduler::remember_prefix(const Sequence& sequence) {
  if (!spec_.prefix_caching || prefix_block_tokens_ <= 0) return;
  for (const std::uint64_t block : sequence.request.prefix_blocks) {
    const auto found = prefix_index_.find(block);
    if (found != prefix_index_.end()) {
      prefix_lru_.splice(prefix_lru_.end(), prefix_lru_, found->second);
    } else {
      prefix_lru_.push_back(block);
      prefix_index_.emplace(block, std::prev(prefix_lru_.end()));
    }
  }
}

void BatchScheduler::trim_prefix_cache() {
  if (prefix_block_tokens_ <= 0) return;
  // Assumption (moesim's own simplification): cached prefix blocks live in the free
  // KV blocks and are evicted least-recently-used first when sequences need them;
  // a hit copies nothing and the admitted sequence allocates its own blocks.
  const std::int64_t capacity = free_blocks_ * spec_.kv_block_tokens / prefix_block_tokens_;
  while (static_cast<std::int64_t>(prefix_lru_.size()) > capacity) {
    prefix_index_.erase(prefix_lru_.front());
    prefix_lru_.pop_front();
  }
}

void BatchScheduler::add_prefill(Sequence& sequence, std::int32_t chunk) {
  sequence.scheduled_tokens = chunk;
  shape_.prefill_tokens += chunk;
  if (!shape_.routing_tokens.empty()) shape_.routing_tokens[sequence.request.routing_component] += chunk;
  shape_.prefill_pairs += attended_pairs(sequence.prefilled, chunk, 0);
  shape_.prefill_windowed_pairs += attended_pairs(sequence.prefilled, chunk, sliding_window_);
  shape_.prefill_context_read += sequence.prefilled;
  if (sequence.prefilled + chunk == sequence.prompt_target) ++shape_.logits;
}

void BatchScheduler::add_decode(Sequence& sequence, std::int64_t context) {
  sequence.scheduled_tokens = 1;
  ++shape_.decode_sequences;
  if (!shape_.routing_tokens.empty()) ++shape_.routing_tokens[sequence.request.routing_component];
  ++shape_.logits;
  shape_.decode_context += context;
  shape_.decode_windowed_context +=
      sliding_window_ > 0 ? std::min<std::int64_t>(context, sliding_window_) : context;
}

const BatchShape& BatchScheduler::plan_step(SimTime now, RequestObserver& observer) {
  shape_.clear();
  preempted_this_step_ = false;
  std::int64_t budget = spec_.max_batched_tokens;

  for (std::size_t i = 0; i < running_.size();) {
    Sequence& sequence = running_[i];
    sequence.scheduled_tokens = 0;
    const bool in_prefill = sequence.prefilled < sequence.prompt_target;
    std::int64_t tokens = 0;
    std::int64_t kv_needed = 0;
    if (in_prefill) {
      const std::int64_t remaining = sequence.prompt_target - sequence.prefilled;
      tokens = std::min(remaining, budget);
      if (!spec_.chunked_prefill && tokens < remaining) tokens = 0;
      kv_needed = sequence.prefilled + tokens;
    } else {
      tokens = budget > 0 ? 1 : 0;
      kv_needed = std::int64_t{sequence.request.input_tokens} + sequence.generated;
    }
    if (tokens == 0) {
      ++i;
      continue;
    }
    if (!reserve_blocks(sequence, kv_needed, i, observer, now)) {
      preempt_last(observer, now);  // the sequence is the newest: it yields its own blocks
      break;
    }
    if (in_prefill) {
      add_prefill(sequence, static_cast<std::int32_t>(tokens));
    } else {
      add_decode(sequence, kv_needed);
    }
    budget -= tokens;
    ++i;
  }

  // Transferred sequences hold the blocks of their first decode token already.
  while (!transferred_.empty() && budget > 0 &&
         static_cast<std::int64_t>(running_.size()) < spec_.max_sequences) {
    running_.push_back(std::move(transferred_.front()));
    transferred_.pop_front();
    Sequence& sequence = running_.back();
    add_decode(sequence, std::int64_t{sequence.request.input_tokens} + sequence.generated);
    --budget;
  }

  // As vLLM does, a step that had to preempt admits nothing, so the victim is not
  // readmitted at once only to be preempted again; unless nothing else would run.
  const bool admit = !preempted_this_step_ || running_.empty();
  while (admit && !waiting_.empty() && budget > 0 &&
         static_cast<std::int64_t>(running_.size()) < spec_.max_sequences) {
    Sequence& candidate = waiting_.front();
    if (candidate.first_scheduled < 0 && candidate.preemptions == 0) {
      candidate.cached_tokens = cached_prefix_tokens(candidate);
      candidate.prefilled = candidate.cached_tokens;
    }
    const std::int64_t remaining = candidate.prompt_target - candidate.prefilled;
    std::int64_t chunk = std::min(remaining, budget);
    if (!spec_.chunked_prefill && chunk < remaining) {
      // A recomputed prompt (prompt plus generated tokens) can exceed the step budget
      // without chunking; it then runs alone in an oversized step rather than block the queue.
      const bool runs_alone = running_.empty() && budget == spec_.max_batched_tokens;
      if (!runs_alone) break;
      chunk = remaining;
    }
    const std::int32_t blocks_needed = blocks_for(candidate.prefilled + chunk);
    if (blocks_needed > free_blocks_) break;
    free_blocks_ -= blocks_needed;
    candidate.blocks = blocks_needed;
    if (candidate.first_scheduled < 0) candidate.first_scheduled = now;
    running_.push_back(std::move(candidate));
    waiting_.pop_front();
    add_prefill(running_.back(), static_cast<std::int32_t>(chunk));
    budget = std::max<std::int64_t>(0, budget - chunk);
  }
  trim_prefix_cache();
  return shape_;
}

FinishedRequest BatchScheduler::milestones(const Sequence& sequence) const {
  FinishedRequest result;
  result.id = sequence.request.id;
  result.arrival = sequence.request.arrival;
  result.first_scheduled = sequence.first_scheduled;
  result.first_token = sequence.first_token;
  result.input_tokens = sequence.request.input_tokens;
  result.output_tokens = sequence.request.output_tokens;
  result.cached_prompt_tokens = sequence.cached_tokens;
  result.preemptions = sequence.preemptions;
  result.traffic_class = sequence.request.traffic_class;
  result.routing_component = sequence.request.routing_component;
  return result;
}

void BatchScheduler::complete_step(SimTime now, RequestObserver& observer) {
  std::size_t kept = 0;
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Sequence& sequence = running_[i];
    if (sequence.scheduled_tokens > 0) {
      if (sequence.prefilled < sequence.prompt_target) {
        sequence.prefilled += sequence.scheduled_tokens;
        if (sequence.prefilled == sequence.prompt_target) {
          ++sequence.generated;
          if (sequence.first_token < 0) {
            sequence.first_token = now;
            if (role_ == InstanceRole::prefill && sequence.generated < sequence.request.output_tokens) {
              // Decoding happens elsewhere: the KV blocks stay until the transfer has read them.
              handed_off_blocks_.emplace(sequence.request.id, sequence.blocks);
              remember_prefix(sequence);
              observer.on_prefilled(milestones(sequence));
              continue;
            }
            observer.on_first_token(milestones(sequence));
          }
        }
      } else {
        ++sequence.generated;
      }
      sequence.scheduled_tokens = 0;
    }
    if (sequence.generated >= sequence.request.output_tokens) {
      FinishedRequest finished = milestones(sequence);
      finished.finished = now;
      release(sequence);
      remember_prefix(sequence);
      observer.on_finished(finished);
      continue;
    }
    if (kept != i) running_[kept] = std::move(sequence);
    ++kept;
  }
  running_.resize(kept);
  trim_prefix_cache();
}

}  // namespace moesim
