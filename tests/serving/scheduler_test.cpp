#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/serving/scheduler.hpp"

using namespace moesim;

namespace {

struct Recorder : RequestObserver {
  std::vector<FinishedRequest> first_tokens, finished, prefilled;
  int rejected = 0, preempted = 0;
  void on_first_token(const FinishedRequest& r) override { first_tokens.push_back(r); }
  void on_prefilled(const FinishedRequest& r) override { prefilled.push_back(r); }
  void on_finished(const FinishedRequest& r) override { finished.push_back(r); }
  void on_rejected(const Request&, SimTime) override { ++rejected; }
  void on_preempted(SimTime) override { ++preempted; }
};

Request make_request(std::uint64_t id, std::int32_t input, std::int32_t output,
                     std::vector<std::uint64_t> blocks = {}) {
  Request request;
  request.id = id;
  request.input_tokens = input;
  request.output_tokens = output;
  request.prefix_blocks = std::move(blocks);
  return request;
}

// Runs steps of unit length until the scheduler has no work; returns the steps taken.
int drain(BatchScheduler& scheduler, Recorder& recorder, std::vector<BatchShape>* shapes = nullptr) {
  int steps = 0;
  SimTime now = 0;
  while (scheduler.has_work()) {
    const BatchShape& shape = scheduler.plan_step(now, recorder);
    if (shapes != nullptr) shapes->push_back(shape);
    REQUIRE(!shape.empty());
    now += 1;
    scheduler.complete_step(now, recorder);
    ++steps;
    REQUIRE(steps < 100000);
  }
  return steps;
}

}  // namespace

TEST_CASE("chunked prefill splits a prompt over steps and decodes one token per step",
          "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 256, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 1 << 20, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 1000, 5), 0, recorder);
  std::vector<BatchShape> shapes;
  const int steps = drain(scheduler, recorder, &shapes);
  // ceil(1000 / 256) = 4 prefill steps (the last yields token 1), then 4 decode steps.
  CHECK(steps == 8);
  CHECK(shapes[0].prefill_tokens == 256);
  CHECK(shapes[3].prefill_tokens == 1000 - 3 * 256);
  CHECK(shapes[3].logits == 1);
  CHECK(shapes[0].prefill_pairs == Approx(256.0 * 257 / 2));
  CHECK(shapes[1].prefill_context_read == 256);
  CHECK(shapes[4].decode_sequences == 1);
  CHECK(shapes[4].decode_context == 1001);
  REQUIRE(recorder.first_tokens.size() == 1);
  CHECK(recorder.first_tokens[0].first_token == 4);
  REQUIRE(recorder.finished.size() == 1);
  CHECK(recorder.finished[0].finished == 8);
}

TEST_CASE("the token budget is shared: decodes first, then prefill chunks", "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 100, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 1 << 20, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 50, 10), 0, recorder);
  CHECK(scheduler.plan_step(0, recorder).prefill_tokens == 50);
  scheduler.complete_step(1, recorder);
  scheduler.enqueue(make_request(1, 500, 2), 1, recorder);
  const BatchShape& shape = scheduler.plan_step(1, recorder);
  CHECK(shape.decode_sequences == 1);
  CHECK(shape.prefill_tokens == 99);
}

TEST_CASE("running out of KV blocks preempts the newest sequence, which is recomputed",
          "[serving][scheduler]") {
  // 10 blocks of 16 tokens: two requests of 48 + 60 tokens cannot both finish at once.
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 1000, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 160, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 48, 60), 0, recorder);
  scheduler.enqueue(make_request(1, 48, 60), 0, recorder);
  drain(scheduler, recorder);
  CHECK(recorder.preempted >= 1);
  REQUIRE(recorder.finished.size() == 2);
  CHECK(recorder.finished[1].preemptions >= 1);
  CHECK(scheduler.kv_utilization() == 0.0);
}

TEST_CASE("requests that can never run are rejected", "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 512, .chunked_prefill = false, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 1024, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 1000, 100), 0, recorder);  // exceeds the KV cache
  scheduler.enqueue(make_request(1, 600, 1), 0, recorder);     // exceeds one unchunked step
  scheduler.enqueue(make_request(2, 100, 1), 0, recorder);
  CHECK(recorder.rejected == 2);
  drain(scheduler, recorder);
  CHECK(recorder.finished.size() == 1);
}

TEST_CASE("shared prefix blocks are not prefilled again", "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 8192, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 1 << 20, /*prefix_block_tokens=*/512, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 1500, 1, {1, 2, 3}), 0, recorder);
  drain(scheduler, recorder);
  scheduler.enqueue(make_request(1, 1400, 1, {1, 2, 9}), 1, recorder);
  const BatchShape& shape = scheduler.plan_step(2, recorder);
  CHECK(shape.prefill_tokens == 1400 - 2 * 512);
  CHECK(shape.prefill_context_read == 2 * 512);
  scheduler.complete_step(3, recorder);
  REQUIRE(recorder.finished.size() == 2);
  CHECK(recorder.finished[1].cached_prompt_tokens == 1024);
}

TEST_CASE("sliding-window attention caps the keys each query sees", "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 8192, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 1 << 20, 0, /*sliding_window=*/128);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 300, 3), 0, recorder);
  const BatchShape& shape = scheduler.plan_step(0, recorder);
  // Queries 1..128 see all earlier keys; queries 129..300 see 128 each.
  CHECK(shape.prefill_windowed_pairs == Approx(128.0 * 129 / 2 + (300 - 128) * 128.0));
  CHECK(shape.prefill_pairs == Approx(300.0 * 301 / 2));
}

TEST_CASE("a recomputed prompt longer than an unchunked step still runs", "[serving][scheduler]") {
  // Without chunking, a victim's recompute (prompt + generated) can exceed the step budget;
  // it must run alone instead of blocking the queue forever.
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 64, .chunked_prefill = false, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 192, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 60, 100), 0, recorder);
  scheduler.enqueue(make_request(1, 60, 100), 0, recorder);
  scheduler.enqueue(make_request(2, 10, 5), 0, recorder);
  drain(scheduler, recorder);
  CHECK(recorder.preempted >= 1);
  CHECK(recorder.finished.size() == 3);
}

TEST_CASE("a step that preempts admits nothing, so victims do not thrash", "[serving][scheduler]") {
  SchedulerSpec spec{
      .max_sequences = 8, .max_batched_tokens = 16, .chunked_prefill = true, .kv_block_tokens = 16};
  BatchScheduler scheduler(spec, 128, 0, 0);
  Recorder recorder;
  scheduler.enqueue(make_request(0, 32, 40), 0, recorder);
  scheduler.enqueue(make_request(1, 32, 40), 0, recorder);
  std::vector<BatchShape> shapes;
  drain(scheduler, recorder, &shapes);
  REQUIRE(recorder.finished.size() == 2);
  std::int64_t prefilled = 0;
  for (const auto& shape : shapes)
    prefilled += shape.prefill_tokens;
  // Without the rule the victim was readmitted in the very step that preempted it and
  // restarted over and over; with it, each collision of the two sequences costs one
  // recompute of at most prompt + output tokens, and they collide at most twice.
  CHECK(recorder.preempted <= 2);
  CHECK(prefilled <= 2 * 32 + recorder.preempted * (32 + 40));
}

TEST_CASE("prefill role: hand-off after the first token, KV held until released",
          "[serving][scheduler][disagg]") {
  SchedulerSpec spec;
  spec.kv_block_tokens = 16;
  // 10 blocks of 16 tokens.
  BatchScheduler prefill(spec, 160, 0, 0, 1, InstanceRole::prefill);
  Recorder recorder;
  prefill.enqueue(make_request(1, 100, 50), 0, recorder);  // 7 blocks; its output does not count here
  prefill.enqueue(make_request(2, 40, 1), 0, recorder);    // one output token: finishes here
  CHECK(recorder.rejected == 0);
  CHECK(drain(prefill, recorder) == 1);
  REQUIRE(recorder.prefilled.size() == 1);
  CHECK(recorder.prefilled[0].id == 1);
  CHECK(recorder.prefilled[0].first_token == 1);
  CHECK(recorder.prefilled[0].first_scheduled == 0);
  REQUIRE(recorder.finished.size() == 1);
  CHECK(recorder.finished[0].id == 2);
  CHECK(recorder.first_tokens.size() == 1);        // only the one that finished here
  CHECK(prefill.kv_utilization() == Approx(0.7));  // request 1's 7 blocks stay for the transfer
  // A prompt that does not fit next to the held blocks waits; releasing them lets it run.
  prefill.enqueue(make_request(3, 64, 9), 1, recorder);
  CHECK(prefill.plan_step(1, recorder).empty());
  prefill.release_handed_off(1);
  CHECK(prefill.kv_utilization() == 0);
  CHECK(prefill.plan_step(1, recorder).prefill_tokens == 64);
  CHECK_THROWS_AS(prefill.release_handed_off(1), InternalError);
}

TEST_CASE("decode role: reserved KV, then decode steps only", "[serving][scheduler][disagg]") {
  SchedulerSpec spec;
  spec.kv_block_tokens = 16;
  BatchScheduler decode(spec, 160, 0, 0, 1, InstanceRole::decode);
  Recorder recorder;
  CHECK(decode.could_ever_hold(160));
  CHECK_FALSE(decode.could_ever_hold(161));
  REQUIRE(decode.reserve_transfer(100));  // 7 blocks
  CHECK(decode.outstanding() == 1);
  CHECK_FALSE(decode.can_reserve_transfer(64));  // 4 blocks > the 3 left
  CHECK_FALSE(decode.reserve_transfer(64));
  CHECK(decode.kv_utilization() == Approx(0.7));
  CHECK_FALSE(decode.has_work());
  FinishedRequest prefilled;
  prefilled.id = 5;
  prefilled.arrival = 2;
  prefilled.first_scheduled = 3;
  prefilled.first_token = 10;
  prefilled.input_tokens = 100;
  prefilled.output_tokens = 4;
  decode.enqueue_transferred(prefilled, 20);
  CHECK(decode.outstanding() == 1);
  std::vector<BatchShape> shapes;
  int steps = 0;
  SimTime now = 20;
  while (decode.has_work()) {
    shapes.push_back(decode.plan_step(now, recorder));
    decode.complete_step(++now, recorder);
    ++steps;
  }
  // Three more tokens after the prefill's first: three decode steps, no prompt computed here.
  CHECK(steps == 3);
  for (const auto& shape : shapes) {
    CHECK(shape.prefill_tokens == 0);
    CHECK(shape.decode_sequences == 1);
  }
  CHECK(shapes[0].decode_context == 101);
  REQUIRE(recorder.finished.size() == 1);
  CHECK(recorder.finished[0].first_token == 20);  // the KV cache's arrival
  CHECK(recorder.finished[0].first_scheduled == 3);
  CHECK(recorder.finished[0].finished == 23);
  CHECK(recorder.first_tokens.empty());
  CHECK(decode.kv_utilization() == 0);
  CHECK_THROWS_AS(decode.enqueue_transferred(prefilled, 30), InternalError);
}
