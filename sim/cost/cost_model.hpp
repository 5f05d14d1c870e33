#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cost/calibration_profile.hpp"
#include "sim/hardware/gpu_spec.hpp"

namespace moesim {

class CostModel;

// Per-expert FFN time by token count for one expert shape, precomputed so the simulator's
// per-step sum over experts touches only an array. Counts past the table are computed directly,
// so the table must not outlive the CostModel that made it.
class ExpertCostTable {
 public:
  double seconds(std::int64_t tokens) const {
    if (static_cast<std::uint64_t>(tokens) < seconds_by_tokens_.size()) {
      return tokens > 0 ? seconds_by_tokens_[static_cast<std::size_t>(tokens)] : 0.0;
    }
    return tokens > 0 ? seconds_past_table(tokens) : 0.0;
  }
  // The table itself, indexed by token count (entry 0 is 0), for loops that index it directly.
  std::span<const double> by_tokens() const { return seconds_by_tokens_; }

 private:
  double seconds_past_table(std::int64_t tokens) const;
  friend class CostModel;
  ExpertCostTable(const CostModel& model, double hidden, double ffn, Precision precision,
                  std::int64_t max_tokens);
  const CostModel* model_;
  double hidden_, ffn_;
  Precision precision_;
  std::vector<double> seconds_by_tokens_;
};

// Time of the ops of a forward pass on one GPU (seconds), from roofline forms whose parameters a
// calibration profile supplies (defaults without one). Every op method returns the op's time on a
// stream busy with back-to-back work, its own kernel launches included; launch_seconds() is for
// extra kernels whose work is negligible.
//
// Functional forms (smax_p(a, b, c) = (a^p + b^p + c^p)^(1/p): a smooth maximum, p >= 1; p = 1 adds
// the terms, large p takes the largest; real kernels sit in between near the ridge point):
//   memory_seconds(bytes)  = smax_p(fixed, bytes / bandwidth)
//   gemm_seconds(m, n, k)  = smax_p(fixed, 2 n k (m + m_half) / flops, (n k w + 2 m k + 2 m n) / bandwidth)
//       w = weight bytes per element; the compute efficiency flops * m / (m + m_half) saturates in
//       the token count m (small m cannot fill the tensor-core tiles); the weights are read once.
//   expert_ffn (per expert with t tokens) = gemm(t, 2 ffn, hidden) + gemm(t, hidden, ffn), plus one
//       SiLU-and-multiply kernel over all assignments: a loop of per-expert GEMMs, as benchmarked.
//   attention_decode_seconds = fixed + max(kv_bytes (1 + sequences_half / sequences) / bandwidth,
//                                          flops / bf16 GEMM flops)
//   attention_prefill_seconds = fixed + max(flops / prefill flops, bytes / memory bandwidth)
class CostModel {
 public:
  CostModel(const GpuSpec& gpu, std::optional<CalibrationProfile> profile);

  // C[m,n] = A[m,k] W[k,n]; W in `weights` precision, activations BF16. Zero when m <= 0.
  double gemm_seconds(double m, double n, double k, Precision weights) const;
  // `assignments` routed token-expert pairs spread evenly over `active_experts` experts.
  double expert_ffn_seconds(double assignments, double active_experts, double hidden, double ffn,
                            Precision weights) const;
  // The same with the actual tokens of each expert (zeros are idle experts): exact under skew.
  double expert_ffn_seconds(std::span<const std::int32_t> tokens_per_expert, double hidden, double ffn,
                            Precision weights) const;
  ExpertCostTable expert_cost_table(double hidden, double ffn, Precision weights,
                                    std::int64_t max_tokens) const;
  double attention_decode_seconds(double sequences, double kv_bytes_read, double flops) const;
  double attention_prefill_seconds(double flops, double bytes) const;
  double memory_seconds(double bytes) const;  // permute / unpermute / elementwise traffic, one kernel
  double launch_seconds(int kernels) const;
  double host_sync_seconds() const;  // a device-to-host copy the host waits on

  // Time of one expert with `tokens` tokens, its share of the SiLU kernel excluded.
  double expert_gemms_seconds(double tokens, double hidden, double ffn, Precision weights) const;
  double silu_seconds(double assignments, double ffn) const;

  nlohmann::json describe() const;  // effective parameters, for the report

  const MemoryParameters& memory() const { return memory_; }
  const GemmParameters& gemm(Precision precision) const { return gemm_[static_cast<int>(precision)]; }

 private:
  GpuSpec gpu_;
  std::optional<CalibrationProfile> profile_;
  MemoryParameters memory_;
  GemmParameters gemm_[kPrecisionCount];
  AttentionDecodeParameters decode_;
  AttentionPrefillParameters prefill_;
  double launch_seconds_ = 0;
  double sync_seconds_ = 0;
};

// The parameters a CostModel uses for `gpu` when no profile overrides them.
MemoryParameters default_memory_parameters(const GpuSpec& gpu);
GemmParameters default_gemm_parameters(const GpuSpec& gpu, Precision precision);
AttentionDecodeParameters default_attention_decode_parameters(const GpuSpec& gpu);
AttentionPrefillParameters default_attention_prefill_parameters(const GpuSpec& gpu);
double default_launch_seconds();
double default_sync_seconds();

// (a^p + b^p + c^p)^(1/p) for non-negative terms.
double smooth_max(double p, double a, double b, double c = 0.0);
// The forms above for explicit parameters (what CostModel evaluates; the fitter varies them).
double roofline_memory_seconds(const MemoryParameters& memory, double bytes);
double roofline_gemm_seconds(const GemmParameters& gemm, double m, double n, double k, Precision weights);
double roofline_attention_decode_seconds(const AttentionDecodeParameters& decode, double compute_flops,
                                         double sequences, double kv_bytes_read, double flops);
double roofline_attention_prefill_seconds(const AttentionPrefillParameters& prefill, double bandwidth,
                                          double flops, double bytes);

}  // namespace moesim
