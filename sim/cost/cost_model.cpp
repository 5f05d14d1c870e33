#include "sim/cost/cost_model.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

double smooth_max(double p, double a, double b, double c) {
  const double largest = std::max({a, b, c});
  if (largest <= 0) return 0.0;
  // Scaled by the largest term so the powers neither overflow nor underflow.
  const double x = a / largest, y = b / largest, z = c / largest;
  if (p == 4.0) {
    // The default sharpness, on every op of every step: two multiplications and two square roots
    // instead of four calls of pow.
    const double sum = (x * x) * (x * x) + (y * y) * (y * y) + (z * z) * (z * z);
    return largest * std::sqrt(std::sqrt(sum));
  }
  const double sum = std::pow(x, p) + std::pow(y, p) + std::pow(z, p);
  return largest * std::pow(sum, 1.0 / p);
}

MemoryParameters default_memory_parameters(const GpuSpec& gpu) {
  MemoryParameters memory;
  // Assumption: a large copy achieves 90 % of the datasheet bandwidth (REFERENCE.md §1: H100 ~3.0 of
  // 3.35 TB/s, H200 ~4.3 of 4.8 TB/s).
  memory.bandwidth = 0.9 * gpu.hbm_bandwidth;
  // Assumption: 4 us per kernel back to back (moesim's own guess; an H100 VM measured 3.6 us).
  memory.fixed_seconds = 4e-6;
  // Assumption: sharpness 4 between the fixed cost and the transfer (moesim's own guess).
  memory.sharpness = 4.0;
  return memory;
}

GemmParameters default_gemm_parameters(const GpuSpec& gpu, Precision precision) {
  GemmParameters gemm;
  // Assumption: large BF16 GEMMs reach 80 % of the datasheet rate (REFERENCE.md §1: ~798 of 989
  // TFLOP/s on an H100); FP8 70 % and FP4 60 % of theirs (moesim's own guess: narrower types reach
  // a smaller fraction). A GPU without the type computes at its BF16 rate after up-conversion.
  const double bf16 = 0.8 * gpu.bf16_flops;
  switch (precision) {
    case Precision::bf16:
      gemm.flops = bf16;
      break;
    case Precision::fp8:
      gemm.flops = gpu.fp8_flops > 0 ? 0.7 * gpu.fp8_flops : bf16;
      break;
    case Precision::fp4:
      gemm.flops = gpu.fp4_flops > 0 ? 0.6 * gpu.fp4_flops : (gpu.fp8_flops > 0 ? 0.7 * gpu.fp8_flops : bf16);
      break;
  }
  // Assumption: GEMMs stream weights at 80 % of the datasheet bandwidth (moesim's own guess; small-m
  // cuBLAS GEMMs measured 70-90 % on an H100).
  gemm.bandwidth = 0.8 * gpu.hbm_bandwidth;
  // Assumption: half the peak compute efficiency at 64 tokens, one tensor-core tile (moesim's own guess).
  gemm.m_half = 64.0;
  // Assumption: 9 us per cuBLAS call, as fitted on an H100 (cuda_calibration/profiles/h100-sxm.json:
  // 9.1 us BF16, 8.7 us FP8). It was 6 us, a guess; with 9 us the datasheet defaults predict the H100
  // held-out MoE layers with a median error of 8.7 % instead of 24 %.
  gemm.fixed_seconds = 9e-6;
  // Assumption: sharpness 4 (moesim's own guess).
  gemm.sharpness = 4.0;
  return gemm;
}

AttentionDecodeParameters default_attention_decode_parameters(const GpuSpec& gpu) {
  AttentionDecodeParameters decode;
  // Assumption: FlashDecoding-style kernels read the KV cache at 80 % of the datasheet bandwidth
  // whatever the batch (moesim's own guess).
  decode.bandwidth = 0.8 * gpu.hbm_bandwidth;
  decode.sequences_half = 0.0;
  decode.fixed_seconds = 4e-6;  // Assumption: one kernel launch (moesim's own guess).
  return decode;
}

AttentionPrefillParameters default_attention_prefill_parameters(const GpuSpec& gpu) {
  AttentionPrefillParameters prefill;
  // Assumption: fused prefill attention reaches 60 % of the BF16 datasheet rate (FlashAttention-3,
  // Shah et al. 2024, report up to 75 % on long sequences; shorter ones reach less).
  prefill.flops = 0.6 * gpu.bf16_flops;
  prefill.fixed_seconds = 4e-6;  // Assumption: one kernel launch (moesim's own guess).
  return prefill;
}

// Assumption: 4 us per back-to-back kernel launch and 10 us for a device-to-host round trip
// (moesim's own guesses; an H100 VM measured 3.6 us and 8.6 us).
double default_launch_seconds() {
  return 4e-6;
}
double default_sync_seconds() {
  return 10e-6;
}

CostModel::CostModel(const GpuSpec& gpu, std::optional<CalibrationProfile> profile)
    : gpu_(gpu), profile_(std::move(profile)) {
  if (!(gpu.hbm_bandwidth > 0) || !(gpu.bf16_flops > 0)) {
    throw InputError(gpu.name.empty() ? "GPU spec" : gpu.name, "",
                     "the cost model needs a positive HBM bandwidth and BF16 rate");
  }
  memory_ = default_memory_parameters(gpu);
  for (Precision precision : {Precision::bf16, Precision::fp8, Precision::fp4})
    gemm_[static_cast<int>(precision)] = default_gemm_parameters(gpu, precision);
  decode_ = default_attention_decode_parameters(gpu);
  prefill_ = default_attention_prefill_parameters(gpu);
  launch_seconds_ = default_launch_seconds();
  sync_seconds_ = default_sync_seconds();
  if (!profile_) return;
  if (profile_->memory) memory_ = *profile_->memory;
  for (int p = 0; p < kPrecisionCount; ++p)
    if (profile_->gemm[p]) gemm_[p] = *profile_->gemm[p];
  if (profile_->attention_decode) decode_ = *profile_->attention_decode;
  if (profile_->attention_prefill) prefill_ = *profile_->attention_prefill;
  if (profile_->launch_seconds) launch_seconds_ = *profile_->launch_seconds;
  if (profile_->sync_seconds) sync_seconds_ = *profile_->sync_seconds;
}

double roofline_memory_seconds(const MemoryParameters& memory, double bytes) {
  if (bytes <= 0) return 0.0;
  return smooth_max(memory.sharpness, memory.fixed_seconds, bytes / memory.bandwidth);
}

double roofline_gemm_seconds(const GemmParameters& gemm, double m, double n, double k, Precision weights) {
  if (m <= 0 || n <= 0 || k <= 0) return 0.0;
  const double compute = 2.0 * n * k * (m + gemm.m_half) / gemm.flops;
  const double bytes = n * k * precision_bytes(weights) + 2.0 * m * k + 2.0 * m * n;
  return smooth_max(gemm.sharpness, gemm.fixed_seconds, compute, bytes / gemm.bandwidth);
}

double CostModel::memory_seconds(double bytes) const {
  return roofline_memory_seconds(memory_, bytes);
}

double CostModel::gemm_seconds(double m, double n, double k, Precision weights) const {
  return roofline_gemm_seconds(gemm_[static_cast<int>(weights)], m, n, k, weights);
}

double CostModel::expert_gemms_seconds(double tokens, double hidden, double ffn, Precision weights) const {
  return gemm_seconds(tokens, 2.0 * ffn, hidden, weights) + gemm_seconds(tokens, hidden, ffn, weights);
}

double CostModel::silu_seconds(double assignments, double ffn) const {
  // Reads gate and up (2 ffn BF16 values) and writes ffn BF16 values per assignment.
  return memory_seconds(assignments * 6.0 * ffn);
}

double CostModel::expert_ffn_seconds(double assignments, double active_experts, double hidden, double ffn,
                                     Precision weights) const {
  if (assignments <= 0 || active_experts <= 0) return 0.0;
  const double experts = std::min(active_experts, assignments);
  return experts * expert_gemms_seconds(assignments / experts, hidden, ffn, weights) +
         silu_seconds(assignments, ffn);
}

double CostModel::expert_ffn_seconds(std::span<const std::int32_t> tokens_per_expert, double hidden,
                                     double ffn, Precision weights) const {
  double seconds = 0.0, assignments = 0.0;
  for (const std::int32_t tokens : tokens_per_expert) {
    if (tokens <= 0) continue;
    seconds += expert_gemms_seconds(tokens, hidden, ffn, weights);
    assignments += tokens;
  }
  return seconds + silu_seconds(assignments, ffn);
}

double CostModel::gemm_work_seconds(double m, double n, double k, Precision weights) const {
  GemmParameters work = gemm_[static_cast<int>(weights)];
  work.fixed_seconds = 0.0;
  return roofline_gemm_seconds(work, m, n, k, weights);
}

double CostModel::grouped_kernel_seconds(double work_seconds, Precision weights) const {
  if (work_seconds <= 0) return 0.0;
  const GemmParameters& gemm = gemm_[static_cast<int>(weights)];
  return smooth_max(gemm.sharpness, gemm.fixed_seconds, work_seconds);
}

double CostModel::grouped_expert_seconds(std::span<const std::int32_t> tokens_per_expert, double hidden,
                                         double ffn, Precision weights) const {
  double gate_up = 0.0, down = 0.0;
  for (const std::int32_t tokens : tokens_per_expert) {
    if (tokens <= 0) continue;
    gate_up += gemm_work_seconds(tokens, 2.0 * ffn, hidden, weights);
    down += gemm_work_seconds(tokens, hidden, ffn, weights);
  }
  return grouped_kernel_seconds(gate_up, weights) + grouped_kernel_seconds(down, weights);
}

ExpertCostTable CostModel::expert_cost_table(double hidden, double ffn, Precision weights,
                                             ExpertKernel kernel, std::int64_t max_tokens) const {
  return ExpertCostTable(*this, hidden, ffn, weights, kernel, max_tokens);
}

const char* expert_kernel_name(ExpertKernel kernel) {
  return kernel == ExpertKernel::grouped ? "grouped" : "per_expert";
}

ExpertCostTable::ExpertCostTable(const CostModel& model, double hidden, double ffn, Precision precision,
                                 ExpertKernel kernel, std::int64_t max_tokens)
    : model_(&model), hidden_(hidden), ffn_(ffn), precision_(precision), kernel_(kernel) {
  const GemmParameters& gemm = model.gemm(precision);
  kernel_sharpness_ = gemm.sharpness;
  kernel_fixed_fourth_ =
      (gemm.fixed_seconds * gemm.fixed_seconds) * (gemm.fixed_seconds * gemm.fixed_seconds);
  const auto rows = static_cast<std::size_t>(std::max<std::int64_t>(max_tokens, 0)) + 1;
  by_tokens_.assign(rows * kColumns, 0.0);
  for (std::size_t tokens = 1; tokens < rows; ++tokens) {
    for (std::size_t column = 0; column < kColumns; ++column)
      by_tokens_[tokens * kColumns + column] = past_table(static_cast<std::int32_t>(tokens), column);
  }
}

double ExpertCostTable::past_table(std::int32_t tokens, std::size_t column) const {
  if (tokens <= 0) return 0.0;
  const auto t = static_cast<double>(tokens);
  if (kernel_ == ExpertKernel::per_expert)
    return column == 0 ? model_->expert_gemms_seconds(t, hidden_, ffn_, precision_) : 0.0;
  return column == 0 ? model_->gemm_work_seconds(t, 2.0 * ffn_, hidden_, precision_)
                     : model_->gemm_work_seconds(t, hidden_, ffn_, precision_);
}

template <std::size_t SlotsPerRank>
void ExpertCostTable::memo_ranks_seconds(std::span<const std::int32_t> slot_tokens,
                                         std::span<double> seconds) const {
  const std::size_t ranks = seconds.size();
  const std::uint32_t base = memo_base_;
  const double* memo = memo_.data();
  const std::int32_t* tokens = slot_tokens.data();
  // The largest count as unsigned (a negative one is past the memo too), in a pass of its own that
  // vectorises: the common case (every slot within the memo) then reads the memo with no test per rank.
  std::uint32_t largest = 0;
  for (std::size_t s = 0; s < ranks * SlotsPerRank; ++s)
    largest = std::max(largest, static_cast<std::uint32_t>(tokens[s]));
  const bool all_small = largest < base;
  for (std::size_t r = 0; r < ranks; ++r) {
    const std::int32_t* rank_tokens = tokens + r * SlotsPerRank;
    std::uint32_t key = 0;
    bool small = true;
    for (std::size_t s = 0; s < SlotsPerRank; ++s) {
      small = small && static_cast<std::uint32_t>(rank_tokens[s]) < base;
      key = key * base + static_cast<std::uint32_t>(rank_tokens[s]);
    }
    seconds[r] = all_small || small ? memo[key] : rank_seconds({rank_tokens, SlotsPerRank});
  }
}

void ExpertCostTable::build_memo(std::size_t slots_per_rank) const {
  // 4,096 entries: 4,096 counts for one slot per rank, 64 per slot for two, 16 for three.
  constexpr std::uint32_t kMemoEntries = 4096;
  std::uint32_t base = kMemoEntries;
  if (slots_per_rank == 2) base = 64;
  if (slots_per_rank == 3) base = 16;
  std::size_t entries = 1;
  for (std::size_t s = 0; s < slots_per_rank; ++s)
    entries *= base;
  memo_.resize(entries);
  std::vector<std::int32_t> slots(slots_per_rank);
  for (std::size_t key = 0; key < entries; ++key) {
    std::size_t rest = key;
    for (std::size_t s = slots_per_rank; s-- > 0;) {
      slots[s] = static_cast<std::int32_t>(rest % base);
      rest /= base;
    }
    memo_[key] = rank_seconds(slots);
  }
  memo_base_ = base;
  memo_slots_per_rank_ = slots_per_rank;
}

void ExpertCostTable::ranks_seconds(std::span<const std::int32_t> slot_tokens, std::size_t slots_per_rank,
                                    std::span<double> seconds) const {
  const std::size_t ranks = seconds.size();
  if (slots_per_rank >= 1 && slots_per_rank <= kMemoSlotsPerRank) {
    if (memo_slots_per_rank_ != slots_per_rank) build_memo(slots_per_rank);
    switch (slots_per_rank) {
      case 1:
        memo_ranks_seconds<1>(slot_tokens, seconds);
        break;
      case 2:
        memo_ranks_seconds<2>(slot_tokens, seconds);
        break;
      default:
        memo_ranks_seconds<3>(slot_tokens, seconds);
        break;
    }
    return;
  }
  if (kernel_ == ExpertKernel::per_expert || kernel_sharpness_ != 4.0) {
    for (std::size_t r = 0; r < ranks; ++r)
      seconds[r] = rank_seconds(slot_tokens.subspan(r * slots_per_rank, slots_per_rank));
    return;
  }
  if (down_work_.size() < ranks) down_work_.resize(ranks);
  const std::size_t rows = by_tokens_.size() / kColumns;
  const double* table = by_tokens_.data();
  double* gate_up = seconds.data();
  double* down = down_work_.data();
  // Four ranks at a time, their sums in registers: each rank's additions keep their order, and the four
  // chains overlap. A group with a count past the table goes rank by rank.
  const auto add_ranks = [&](std::size_t first_rank, std::size_t end_rank) {
    for (std::size_t rank = first_rank; rank < end_rank; ++rank) {
      double rank_gate_up = 0, rank_down = 0;
      add_slots_work(slot_tokens.subspan(rank * slots_per_rank, slots_per_rank), rank_gate_up, rank_down);
      gate_up[rank] = rank_gate_up;
      down[rank] = rank_down;
    }
  };
  std::size_t r = 0;
  for (; r + 4 <= ranks; r += 4) {
    const std::int32_t* first = slot_tokens.data() + r * slots_per_rank;
    // The largest count as unsigned (a negative one is past the table too), without a branch per slot.
    std::uint32_t largest = 0;
    for (std::size_t s = 0; s < 4 * slots_per_rank; ++s)
      largest = std::max(largest, static_cast<std::uint32_t>(first[s]));
    if (largest >= rows) {
      add_ranks(r, r + 4);
      continue;
    }
    double gate_up_0 = 0, gate_up_1 = 0, gate_up_2 = 0, gate_up_3 = 0;
    double down_0 = 0, down_1 = 0, down_2 = 0, down_3 = 0;
    for (std::size_t s = 0; s < slots_per_rank; ++s) {
      const double* row_0 = table + static_cast<std::size_t>(first[s]) * kColumns;
      const double* row_1 = table + static_cast<std::size_t>(first[slots_per_rank + s]) * kColumns;
      const double* row_2 = table + static_cast<std::size_t>(first[2 * slots_per_rank + s]) * kColumns;
      const double* row_3 = table + static_cast<std::size_t>(first[3 * slots_per_rank + s]) * kColumns;
      gate_up_0 += row_0[0];
      down_0 += row_0[1];
      gate_up_1 += row_1[0];
      down_1 += row_1[1];
      gate_up_2 += row_2[0];
      down_2 += row_2[1];
      gate_up_3 += row_3[0];
      down_3 += row_3[1];
    }
    gate_up[r] = gate_up_0;
    gate_up[r + 1] = gate_up_1;
    gate_up[r + 2] = gate_up_2;
    gate_up[r + 3] = gate_up_3;
    down[r] = down_0;
    down[r + 1] = down_1;
    down[r + 2] = down_2;
    down[r + 3] = down_3;
  }
  add_ranks(r, ranks);
  // grouped_kernels_seconds at sharpness 4. An idle kernel (no work) costs nothing: a bit mask, not a
  // conditional, drops it, since which ranks idle is a coin flip for the branch predictor.
  const double fixed_fourth = kernel_fixed_fourth_;
  const auto kernel = [fixed_fourth](double work) {
    const double busy = std::sqrt(std::sqrt(fixed_fourth + (work * work) * (work * work)));
    return std::bit_cast<double>(std::bit_cast<std::uint64_t>(busy) & -static_cast<std::uint64_t>(work > 0));
  };
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    const double kernel_a = kernel(gate_up[rank]);
    const double kernel_b = kernel(down[rank]);
    seconds[rank] = kernel_a + kernel_b;
  }
}

double ExpertCostTable::grouped_kernels_seconds_any_sharpness(double gate_up_work, double down_work) const {
  return model_->grouped_kernel_seconds(gate_up_work, precision_) +
         model_->grouped_kernel_seconds(down_work, precision_);
}

double roofline_attention_decode_seconds(const AttentionDecodeParameters& decode, double compute_flops,
                                         double sequences, double kv_bytes_read, double flops) {
  if (sequences <= 0) return 0.0;
  const double memory = kv_bytes_read * (1.0 + decode.sequences_half / sequences) / decode.bandwidth;
  return decode.fixed_seconds + std::max(memory, flops / compute_flops);
}

double roofline_attention_prefill_seconds(const AttentionPrefillParameters& prefill, double bandwidth,
                                          double flops, double bytes) {
  if (flops <= 0 && bytes <= 0) return 0.0;
  return prefill.fixed_seconds + std::max(flops / prefill.flops, bytes / bandwidth);
}

double CostModel::attention_decode_seconds(double sequences, double kv_bytes_read, double flops) const {
  return roofline_attention_decode_seconds(decode_, gemm_[static_cast<int>(Precision::bf16)].flops, sequences,
                                           kv_bytes_read, flops);
}

double CostModel::attention_prefill_seconds(double flops, double bytes) const {
  return roofline_attention_prefill_seconds(prefill_, memory_.bandwidth, flops, bytes);
}

double CostModel::launch_seconds(int kernels) const {
  return kernels > 0 ? kernels * launch_seconds_ : 0.0;
}

double CostModel::host_sync_seconds() const {
  return sync_seconds_;
}

nlohmann::json CostModel::describe() const {
  nlohmann::json gemm = nlohmann::json::object();
  for (Precision precision : {Precision::bf16, Precision::fp8, Precision::fp4}) {
    const GemmParameters& p = gemm_[static_cast<int>(precision)];
    const double peak = precision == Precision::bf16  ? gpu_.bf16_flops
                        : precision == Precision::fp8 ? gpu_.fp8_flops
                                                      : gpu_.fp4_flops;
    gemm[precision_name(precision)] = {
        {"fixed_seconds", p.fixed_seconds},
        {"flops", p.flops},
        {"compute_efficiency", peak > 0 ? nlohmann::json(p.flops / peak) : nlohmann::json(nullptr)},
        {"m_half", p.m_half},
        {"bandwidth", p.bandwidth},
        {"memory_efficiency", p.bandwidth / gpu_.hbm_bandwidth},
        {"sharpness", p.sharpness}};
  }
  nlohmann::json source = "defaults (no calibration profile)";
  if (profile_) {
    source = {{"gpu", profile_->gpu},
              {"measurements", profile_->measurements},
              {"measured_at", profile_->measured_at},
              {"fitted_at", profile_->fitted_at}};
  }
  return {{"gpu", gpu_.name},
          {"source", source},
          {"memory",
           {{"fixed_seconds", memory_.fixed_seconds},
            {"bandwidth", memory_.bandwidth},
            {"memory_efficiency", memory_.bandwidth / gpu_.hbm_bandwidth},
            {"sharpness", memory_.sharpness}}},
          {"gemm", gemm},
          {"attention_decode",
           {{"fixed_seconds", decode_.fixed_seconds},
            {"bandwidth", decode_.bandwidth},
            {"memory_efficiency", decode_.bandwidth / gpu_.hbm_bandwidth},
            {"sequences_half", decode_.sequences_half}}},
          {"attention_prefill",
           {{"fixed_seconds", prefill_.fixed_seconds},
            {"flops", prefill_.flops},
            {"compute_efficiency", prefill_.flops / gpu_.bf16_flops}}},
          {"launch_seconds", launch_seconds_},
          {"sync_seconds", sync_seconds_}};
}

}  // namespace moesim
