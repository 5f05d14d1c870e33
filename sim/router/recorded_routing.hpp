#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moesim {

// How a routing trace records routing.
enum class RoutingTraceForm {
  tokens,  // each token's top-k expert ids at each MoE layer
  counts,  // per forward step, each expert's assignment count at each MoE layer
};

// A routing trace file ("moesim routing trace", traces/README.md "Routing traces"): text, one header line,
// one column line, then rows; lines starting with '#' after the header are comments.
//
//   # moesim routing trace: form=tokens layers=16 experts=64 top_k=8
//   token,layer,experts
//   0,0,3 17 22 40 41 50 60 63          token 0's top_k distinct expert ids at MoE layer 0
//   0,1,...                             every layer of a token before the next token
//
//   # moesim routing trace: form=counts layers=58 experts=256 top_k=8
//   step,layer,counts
//   0,0,12 0 3 ...                      `experts` counts, summing to tokens x top_k, each <= tokens
//
// Tokens and steps are numbered 0, 1, 2, ... in order; each lists every layer exactly once (in any
// order); in the counts form all layers of a step hold the same number of tokens. Layers are MoE
// layers (0-based among the model's MoE layers). tools/convert_routing.py writes this format from
// vLLM's returned routed experts and SGLang's expert distribution dumps.
struct RoutingTraceHeader {
  RoutingTraceForm form = RoutingTraceForm::tokens;
  int layers = 0;
  int experts = 0;
  int top_k = 0;
};

// What a whole routing trace holds, read in one pass (memory layers x experts).
struct RoutingTraceSummary {
  RoutingTraceHeader header;
  std::int64_t tokens = 0;                 // recorded tokens (summed over steps in the counts form)
  std::int64_t steps = 0;                  // recorded steps; in the tokens form, tokens
  std::vector<std::int64_t> layer_counts;  // [layer][expert] assignments over the whole trace
};

// True when `file` starts with the routing trace header line (cheap: reads one line; false for files that
// cannot be read).
bool is_routing_trace(const std::filesystem::path& file);

// Reads and validates a whole routing trace. InputError naming the file and line (and the field) for a
// missing or malformed header, a wrong column line, non-integer, negative, out-of-range or duplicate
// expert ids, a wrong number of ids or counts, a layer listed twice or missing, numbering out of order,
// counts that break the top-k rules, and an empty trace.
RoutingTraceSummary summarize_routing_trace(const std::filesystem::path& file);

// Replays a routing trace as the router of a simulation: every simulated forward step takes the
// trace's next recorded routing, wrapping to the start at the end of the file.
//  - tokens form: a step of T tokens takes the next T recorded tokens, at every layer the same tokens,
//    so the counts (and the cross-layer correlation of real routing) are exactly the recorded ones.
//  - counts form: a step takes the next recorded step; each layer's counts are scaled to T x top_k
//    assignments (largest remainders, ties to the lower expert), exact when the recorded step holds T
//    tokens. Assumption: the routing of a step of another size is the recorded step's in proportion
//    (moesim's own choice; it keeps the recorded skew but not the sampling noise of the other size).
// Replay starts at recorded token (or step) `start % recorded tokens (steps)`: the router of each
// instance passes its own seed, so instances replay different stretches of the trace.
// Assumption (moesim's own): a simulated step's tokens are consecutive recorded tokens. A conversion of
// vLLM's per-request arrays lists each request's tokens together, so a step then routes like one
// request's tokens, more correlated (hotter experts) than a real mixed batch; interleave requests when
// converting to avoid it.
// The file is streamed: memory is layers x experts, whatever its length; the cost is that of parsing
// the rows a step takes (tokens x layers rows in the tokens form, layers rows in the counts form). A
// step starts when the layer asked for is not after the previous one (the step cost model walks layers
// 0, 1, ... per step).
class RecordedRouting {
 public:
  // `layers`, `experts`, `top_k` are the simulated model's; InputError (naming the file) when the trace
  // records another shape, and for anything summarize_routing_trace rejects.
  RecordedRouting(const std::filesystem::path& file, int layers, int experts, int top_k,
                  std::uint64_t start = 0);
  ~RecordedRouting();

  const RoutingTraceSummary& summary() const { return summary_; }
  // The share of each expert in a layer's assignments over the whole trace (sum 1).
  std::span<const double> popularity(int layer) const {
    return {shares_.data() + std::size_t(layer) * experts_, std::size_t(experts_)};
  }
  // Per-expert assignment counts of `tokens` tokens at MoE layer `layer`: sum == tokens * top_k,
  // each count <= tokens.
  void sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // How many times replay went back to the start of the file.
  std::int64_t wraps() const { return wraps_; }

 private:
  struct Rows;
  void read_tokens(std::int64_t tokens);
  void read_step();
  bool next_row();

  std::filesystem::path file_;
  RoutingTraceSummary summary_;
  int layers_;
  int experts_;
  int top_k_;
  std::vector<double> shares_;  // [layer][expert]
  std::unique_ptr<Rows> rows_;
  std::vector<std::int64_t> step_counts_;  // [layer][expert] of the current step, as recorded
  std::int64_t step_tokens_ = 0;           // tokens the current step's counts hold
  std::int64_t simulated_tokens_ = -1;
  int last_layer_ = -1;
  std::int64_t wraps_ = 0;
  std::vector<double> remainders_;
  std::vector<int> order_;
};

}  // namespace moesim
