#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cost/calibration_profile.hpp"
#include "sim/hardware/gpu_spec.hpp"

namespace moesim {

class CostModel;

// How a GPU runs its routed experts' GEMMs.
//   per_expert: a loop of GEMM calls, two per active expert (gate+up, down), each paying the GEMM's
//     fixed cost: what the calibration suite's grouped_gemm benchmark measures (cuda_calibration/).
//   grouped: one grouped kernel per projection over all the GPU's experts, as production engines run
//     them (vLLM's fused_moe Triton kernel, SGLang's, TensorRT-LLM's grouped GEMM, DeepGEMM's grouped
//     and masked kernels under DeepEP): the fixed cost is paid per kernel and each active expert adds
//     its weight reads and FLOPs (see CostModel's forms).
enum class ExpertKernel { grouped, per_expert };
const char* expert_kernel_name(ExpertKernel kernel);

// The GEMM time of one GPU's routed experts from their token counts, for one expert shape and
// kernel form, with each expert's share precomputed by token count so the simulator's per-step sum
// over a rank's expert slots touches only an array. Counts past the table are computed directly,
// so the table must not outlive the CostModel that made it.
class ExpertCostTable {
 public:
  // `slot_tokens`: the tokens of each expert slot of the GPU (zeros are idle slots); the SiLU
  // kernel excluded. Equals CostModel::expert_gemms_seconds summed over the slots (per_expert) or
  // CostModel::grouped_expert_seconds (grouped).
  double rank_seconds(std::span<const std::int32_t> slot_tokens) const {
    const std::size_t rows = by_tokens_.size() / kColumns;
    const double* table = by_tokens_.data();
    if (kernel_ == ExpertKernel::per_expert) {
      // Column 0: one expert's two GEMM calls with their fixed costs.
      double seconds = 0;
      for (const std::int32_t tokens : slot_tokens) {
        const auto row = static_cast<std::size_t>(tokens);
        seconds += row < rows ? table[row * kColumns] : past_table(tokens, 0);
      }
      return seconds;
    }
    double gate_up = 0, down = 0;
    add_slots_work(slot_tokens, gate_up, down);
    return grouped_kernels_seconds(gate_up, down);
  }
  // rank_seconds of every rank at once: slot_tokens holds slots_per_rank entries per rank, seconds one per
  // rank; each equal to rank_seconds of the rank's slots (the same operations in the same order).
  // With at most kMemoSlotsPerRank slots per rank (large expert parallelism, one GPU per expert), the
  // ranks whose slots all hold few tokens read their time from a table of every such combination.
  // Otherwise ranks are summed four at a time (independent addition chains) and the kernels' smooth
  // maxima run as one pass over the ranks.
  void ranks_seconds(std::span<const std::int32_t> slot_tokens, std::size_t slots_per_rank,
                     std::span<double> seconds) const;
  static constexpr std::size_t kMemoSlotsPerRank = 3;
  ExpertKernel kernel() const { return kernel_; }

 private:
  static constexpr std::size_t kColumns = 2;
  double past_table(std::int32_t tokens, std::size_t column) const;
  // Adds the slots' gate+up and down roofline work without the fixed cost (columns 0 and 1), in slot order.
  void add_slots_work(std::span<const std::int32_t> slot_tokens, double& gate_up, double& down) const {
    const std::size_t rows = by_tokens_.size() / kColumns;
    const double* table = by_tokens_.data();
    for (const std::int32_t tokens : slot_tokens) {
      const auto row = static_cast<std::size_t>(tokens);
      if (row < rows) {
        gate_up += table[row * kColumns];
        down += table[row * kColumns + 1];
      } else {
        gate_up += past_table(tokens, 0);
        down += past_table(tokens, 1);
      }
    }
  }
  // smax_p(fixed, work) for each of the two kernels; inline for the default sharpness 4, which every
  // rank of every MoE layer pays.
  double grouped_kernels_seconds(double gate_up_work, double down_work) const {
    if (kernel_sharpness_ != 4.0) return grouped_kernels_seconds_any_sharpness(gate_up_work, down_work);
    const auto kernel = [this](double work) {
      return work > 0 ? std::sqrt(std::sqrt(kernel_fixed_fourth_ + (work * work) * (work * work))) : 0.0;
    };
    return kernel(gate_up_work) + kernel(down_work);
  }
  double grouped_kernels_seconds_any_sharpness(double gate_up_work, double down_work) const;
  friend class CostModel;
  ExpertCostTable(const CostModel& model, double hidden, double ffn, Precision precision, ExpertKernel kernel,
                  std::int64_t max_tokens);
  const CostModel* model_;
  double hidden_, ffn_;
  Precision precision_;
  ExpertKernel kernel_;
  double kernel_sharpness_ = 4.0;          // the GEMM form's p
  double kernel_fixed_fourth_ = 0;         // its fixed cost to the fourth power
  mutable std::vector<double> down_work_;  // ranks_seconds' scratch, one per rank (sized on first use)
  // rank_seconds of every combination of slots_per_rank token counts below memo_base_, the first slot
  // most significant (built by the first ranks_seconds call with few slots per rank).
  void build_memo(std::size_t slots_per_rank) const;
  // ranks_seconds from the memo (built for SlotsPerRank), ranks with a count past it rank by rank.
  template <std::size_t SlotsPerRank>
  void memo_ranks_seconds(std::span<const std::int32_t> slot_tokens, std::span<double> seconds) const;
  mutable std::vector<double> memo_;
  mutable std::size_t memo_slots_per_rank_ = 0;
  mutable std::uint32_t memo_base_ = 0;
  // kColumns entries per token count from 0 (all 0) to max_tokens; a per_expert table leaves column 1 0.
  std::vector<double> by_tokens_;
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
//   grouped experts (ExpertKernel::grouped, experts i with t_i > 0 tokens on one GPU)
//       = smax_p(fixed, sum_i gemm_work(t_i, 2 ffn, hidden)) + smax_p(fixed, sum_i gemm_work(t_i, hidden,
//       ffn)) gemm_work = gemm without its fixed term: one kernel per projection whose roofline time is the
//       sum of its experts' (assumption, moesim's own: the experts' tiles overlap only as each expert's
//       own roofline says; a grouped kernel is priced as one GEMM of that summed work). One active
//       expert costs exactly its per-expert GEMMs; more cost less (the fixed cost is paid once), never
//       more. The calibration suite measures only the per-expert loop, so this form reuses the per-GEMM
//       parameters and is not separately calibrated.
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
  ExpertCostTable expert_cost_table(double hidden, double ffn, Precision weights, ExpertKernel kernel,
                                    std::int64_t max_tokens) const;
  double attention_decode_seconds(double sequences, double kv_bytes_read, double flops) const;
  double attention_prefill_seconds(double flops, double bytes) const;
  double memory_seconds(double bytes) const;  // permute / unpermute / elementwise traffic, one kernel
  double launch_seconds(int kernels) const;
  double host_sync_seconds() const;  // a device-to-host copy the host waits on

  // Time of one expert with `tokens` tokens, its share of the SiLU kernel excluded.
  double expert_gemms_seconds(double tokens, double hidden, double ffn, Precision weights) const;
  // The experts of one GPU run as grouped kernels (the form above), the SiLU kernel excluded; zero
  // when no expert has tokens.
  double grouped_expert_seconds(std::span<const std::int32_t> tokens_per_expert, double hidden, double ffn,
                                Precision weights) const;
  // gemm_seconds without the fixed term: what one expert adds to a grouped kernel.
  double gemm_work_seconds(double m, double n, double k, Precision weights) const;
  // One grouped GEMM kernel whose experts' gemm_work_seconds sum to `work_seconds` (0 when none).
  double grouped_kernel_seconds(double work_seconds, Precision weights) const;
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
