#include "sim/router/count_sampler.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// A tabulated level never needs more entries: its mean is below 2 kNormalMinVariance and the table
// stops once the upper tail is below 2^-40.
constexpr int kMaxTable = 256;
// A tabulated level's table over its counts 0..n-1 starts as the cumulative distribution in units of
// 2^-32: the first call at a token count draws by counting the entries at or below its 32 random bits,
// which costs about the table's length, as building it did. The kCallsBeforeAliasTables-th call at the
// same count turns it into a Walker alias table of the same masses: the 32 random bits times n give the
// bucket (high word) and a uniform fraction (low word, resolution n 2^-32) that keeps the bucket's own count
// below its threshold and takes the alias above; one load and no search per draw. Layers whose popularity is
// a permutation of one vector share a sampler and reuse its tables at once; a preset with a different
// popularity per layer meets each table once per step, so it pays for the alias build only when the
// batch size stays the same for a few steps (3 rather than 2 calls: 13 % faster with two classes,
// DeepSeek-V3, 20 min, single class unchanged). 5 bytes per entry keep the 256 levels of a layer in L1/L2.
constexpr double kTwoTo32 = 4294967296.0;
constexpr std::uint32_t kAlwaysKeep = 0xFFFFFFFFu;  // with the bucket as its own alias
constexpr std::uint64_t kFullBucket = std::uint64_t{1} << 32;

}  // namespace

CountSampler::CountSampler(std::span<const double> sorted_inclusion, int top_k) : top_k_(top_k) {
  double variance_total = 0;
  for (const double pi : sorted_inclusion) {
    if (!(pi >= 0.0 && pi <= 1.0)) throw InternalError("CountSampler: inclusion probability outside [0, 1]");
    if (inclusion_.empty() || inclusion_.back() != pi) {
      inclusion_.push_back(pi);
      variance_share_.push_back(pi * (1.0 - pi));
    }
    level_of_position_.push_back(static_cast<int>(inclusion_.size()) - 1);
    variance_total += pi * (1.0 - pi);
  }
  for (double& share : variance_share_)
    share = variance_total > 0 ? share / variance_total : 0.0;
  variance_total_ = variance_total;
  // A tabulated level's binomial: p from the level's share of the variance (tabulate()), independent of T.
  for (std::size_t level = 0; level < inclusion_.size(); ++level) {
    const double small_probability = std::min(inclusion_[level], 1.0 - inclusion_[level]);
    const double share = variance_share_[level];
    double p = small_probability;
    if (share < 1.0)
      p = std::max(1.0 - (1.0 - small_probability) / ((1.0 - share) * (1.0 - share)),
                   0.5 * small_probability);
    shapes_.push_back({p, p / (1.0 - p), std::log1p(-p)});
  }
  const auto levels = inclusion_.size();
  draws_.resize(levels);
  normal_draws_.resize(levels);
  position_draws_.resize(sorted_inclusion.size());
  add_weight_.resize(sorted_inclusion.size());
  remove_weight_.resize(sorted_inclusion.size());
  thresholds_.resize(levels * kMaxTable);
  aliases_.resize(levels * kMaxTable);
  values_.resize(sorted_inclusion.size());
  bits_.resize((sorted_inclusion.size() + 1) / 2);
  cumulative_.resize(kMaxTable);
  scaled_masses_.resize(kMaxTable);
}

void CountSampler::tabulate(int level, std::int64_t tokens, double small_probability) {
  LevelDraw& draw = draws_[level];
  draw.tabulated = true;
  draw.complement = inclusion_[level] > 0.5;
  draw.table = thresholds_used_;
  std::uint32_t* thresholds = thresholds_.data() + draw.table;
  std::uint8_t* aliases = aliases_.data() + draw.table;
  if (small_probability == 0.0) {
    thresholds[0] = kAlwaysKeep;
    aliases[0] = 0;
    draw.size = 1;
    thresholds_used_ += 1;
    return;
  }
  // Binomial(trials, p) with real trials: mean T p_small, variance v / (1 - w).
  const BinomialShape& shape = shapes_[level];
  const double p = shape.probability;
  const double trials = static_cast<double>(tokens) * small_probability / p;
  const double odds = shape.odds;
  const auto largest = static_cast<std::int64_t>(
      std::min({static_cast<double>(tokens), std::floor(trials + 1e-9), double(kMaxTable - 1)}));
  const double mean = static_cast<double>(tokens) * small_probability;
  double mass = std::exp(trials * shape.log_failure);
  double cumulative = mass;
  double* masses = cumulative_.data();
  masses[0] = cumulative;
  std::int64_t x = 0;
  // Reciprocals from a table keep the division off the chain of multiplications through `mass`.
  static const std::array<double, kMaxTable + 1> reciprocal = [] {
    std::array<double, kMaxTable + 1> values{};
    for (int i = 1; i <= kMaxTable; ++i)
      values[i] = 1.0 / i;
    return values;
  }();
  while (x < largest && (cumulative < 1.0 - 0x1.0p-40 || static_cast<double>(x) < mean)) {
    mass *= (trials - static_cast<double>(x)) * reciprocal[x + 1] * odds;
    cumulative += mass;
    masses[++x] = cumulative;
  }
  // The cumulative distribution in units of 2^-32 (the last entry's is 2^32, left implicit): the first
  // call at this T draws by counting the entries at or below its uniform (inversion).
  const auto size = static_cast<int>(x + 1);
  const double scale = kTwoTo32 / cumulative;
  for (int i = 0; i + 1 < size; ++i)
    thresholds[i] = static_cast<std::uint32_t>(std::min(masses[i] * scale, 4294967295.0));
  draw.size = size;
  thresholds_used_ += size;
}

void CountSampler::build_alias_tables() {
  std::uint64_t* scaled = scaled_masses_.data();
  for (const LevelDraw& draw : draws_) {
    if (!draw.tabulated || draw.size == 1) continue;
    std::uint32_t* thresholds = thresholds_.data() + draw.table;
    std::uint8_t* aliases = aliases_.data() + draw.table;
    const auto size = static_cast<std::uint64_t>(draw.size);
    // Each count's mass in units of 2^-32 times the table size: a full bucket is 2^32. Integer
    // arithmetic, so the alias table holds exactly the masses the cumulative table held.
    std::uint64_t below = 0;
    for (std::int32_t i = 0; i < draw.size; ++i) {
      const std::uint64_t upto = i + 1 < draw.size ? thresholds[i] : kFullBucket;
      scaled[i] = (upto - below) * size;
      below = upto;
    }
    // Vose's construction.
    std::uint8_t small[kMaxTable], large[kMaxTable];
    int smalls = 0, larges = 0;
    for (std::int32_t i = 0; i < draw.size; ++i) {
      (scaled[i] < kFullBucket ? small[smalls++] : large[larges++]) = static_cast<std::uint8_t>(i);
      thresholds[i] = kAlwaysKeep;
      aliases[i] = static_cast<std::uint8_t>(i);
    }
    while (smalls > 0 && larges > 0) {
      const std::uint8_t low = small[--smalls];
      const std::uint8_t high = large[larges - 1];
      thresholds[low] = static_cast<std::uint32_t>(scaled[low]);
      aliases[low] = high;
      scaled[high] -= kFullBucket - scaled[low];
      if (scaled[high] < kFullBucket) {
        --larges;
        small[smalls++] = high;
      }
    }
    // What is left holds exactly a full bucket: it keeps kAlwaysKeep and itself as alias.
  }
  alias_tables_ = true;
}

void CountSampler::prepare(std::int64_t tokens) {
  prepared_tokens_ = tokens;
  alias_tables_ = false;
  thresholds_used_ = 0;
  const auto t = static_cast<double>(tokens);
  for (int level = 0; level < static_cast<int>(inclusion_.size()); ++level) {
    const double pi = inclusion_[level];
    const double variance = t * pi * (1.0 - pi);
    LevelDraw& draw = draws_[level];
    draw.inclusion = pi;
    draw.weight = variance;
    if (variance < kNormalMinVariance) {
      tabulate(level, tokens, std::min(pi, 1.0 - pi));
      continue;
    }
    draw.tabulated = false;
    NormalDraw& normal = normal_draws_[level];
    const double spread = std::sqrt((variance - 1.0 / 6) / std::max(1.0 - variance_share_[level], 1e-12));
    const double skewness = (1.0 - 2.0 * pi) / std::sqrt(variance);
    const double kurtosis = (1.0 - 6.0 * pi * (1.0 - pi)) / variance;
    // mean + s [z + g/6 (z^2 - 1) + k/24 (z^3 - 3z) - g^2/36 (2z^3 - 5z)], as a polynomial in z.
    normal.linear = spread * (1.0 - kurtosis / 8 + 5.0 * skewness * skewness / 36);
    normal.quadratic = spread * skewness / 6;
    normal.cubic = spread * (kurtosis / 24 - skewness * skewness / 18);
    normal.mean = t * pi - normal.quadratic;
  }
  normal_weight_total_ = 0;
  tabulated_inclusion_total_ = 0;
  for (std::size_t position = 0; position < level_of_position_.size(); ++position) {
    const int level = level_of_position_[position];
    LevelDraw& draw = position_draws_[position];
    draw = draws_[level];
    draw.level = level;
    (draw.tabulated ? tabulated_inclusion_total_ : normal_weight_total_) +=
        draw.tabulated ? draw.inclusion : draw.weight;
    // The sum correction's weight as a + b x value (sample() step 2).
    add_weight_[position] =
        draw.tabulated ? Linear{t * draw.inclusion, -draw.inclusion} : Linear{draw.weight, 0};
    remove_weight_[position] = draw.tabulated ? Linear{0, 1.0 - draw.inclusion} : Linear{draw.weight, 0};
  }
}

void CountSampler::sample(Rng& rng, std::int64_t tokens, std::span<const int> by_popularity,
                          std::span<std::int32_t> counts) {
  if (tokens != prepared_tokens_) {
    prepare(tokens);
    calls_at_prepared_tokens_ = 0;
  }
  if (++calls_at_prepared_tokens_ == kCallsBeforeAliasTables) build_alias_tables();
  const auto t = static_cast<double>(tokens);
  const int experts = this->experts();
  const bool alias = alias_tables_;
  // 32 random bits per expert, drawn in one tight loop; a local copy keeps the generator's state in
  // registers across the stores.
  Rng bits_rng = rng;
  for (auto& word : bits_)
    word = bits_rng.next_u64();
  rng = bits_rng;
  double total = 0, tabulated_total = 0, tabulated_weighted = 0;
  // Locals, not members, in the loop: the stores to values could otherwise alias them.
  const LevelDraw* draws = position_draws_.data();
  const NormalDraw* normal_draws = normal_draws_.data();
  const std::uint64_t* bits = bits_.data();
  const std::uint32_t* all_thresholds = thresholds_.data();
  const std::uint8_t* all_aliases = aliases_.data();
  double* values = values_.data();
  for (int position = 0; position < experts; ++position) {
    const auto uniform = static_cast<std::uint32_t>(bits[position >> 1] >> ((position & 1) * 32));
    const LevelDraw& draw = draws[position];
    double value;
    if (draw.tabulated) {
      std::int32_t x = 0;
      if (alias) {
        const std::uint64_t scaled = std::uint64_t{uniform} * static_cast<std::uint32_t>(draw.size);
        const auto bucket = static_cast<std::uint32_t>(scaled >> 32);
        const auto fraction = static_cast<std::uint32_t>(scaled);
        // A mask, not a conditional: keeping the bucket is a coin flip for the branch predictor.
        const auto keep = -static_cast<std::int32_t>(fraction < all_thresholds[draw.table + bucket]);
        x = (static_cast<std::int32_t>(bucket) & keep) | (all_aliases[draw.table + bucket] & ~keep);
      } else {
        const std::uint32_t* cumulative = all_thresholds + draw.table;
        for (std::int32_t i = 0; i + 1 < draw.size; ++i)
          x += static_cast<std::int32_t>(uniform >= cumulative[i]);
      }
      value = draw.complement ? t - x : x;
      tabulated_total += value;
      tabulated_weighted += value * draw.inclusion;
    } else {
      const NormalDraw& normal = normal_draws[draw.level];
      const double z = normal_(uniform, rng);
      value = normal.mean + z * (normal.linear + z * (normal.quadratic + z * normal.cubic));
    }
    values[position] = value;
    total += value;
  }

  const std::int64_t wanted = tokens * top_k_;
  const double difference = static_cast<double>(wanted) - total;
  const bool adding = difference > 0;
  const double weight_total =
      normal_weight_total_ +
      (adding ? t * tabulated_inclusion_total_ - tabulated_weighted : tabulated_total - tabulated_weighted);
  const double scale = weight_total > 0 ? difference / weight_total : 0.0;
  const auto limit = static_cast<std::int32_t>(tokens);
  const Linear* weight = adding ? add_weight_.data() : remove_weight_.data();
  for (int position = 0; position < experts; ++position)
    values[position] += scale * (weight[position].constant + weight[position].slope * values[position]);
  double cumulative = rng.uniform();
  double taken = 0;
  std::int64_t assigned = 0;
  for (int position = 0; position < experts; ++position) {
    cumulative += values[position];
    // One instruction with SSE4.1 (x86-64-v3), a library call on older instruction sets.
    const double reached = std::floor(cumulative);
    const auto count = static_cast<std::int32_t>(std::clamp(reached - taken, 0.0, t));
    taken = reached;
    counts[by_popularity[position]] = count;
    assigned += count;
  }

  std::int64_t missing = wanted - assigned;
  if (missing == 0) return;
  // Clamping or rounding left a few units over: one per expert with room, from a random position.
  const int step = missing > 0 ? 1 : -1;
  for (auto position = static_cast<int>(rng.below(experts)); missing != 0;
       position = (position + 1) % experts) {
    std::int32_t& count = counts[by_popularity[position]];
    if (step > 0 ? count < limit : count > 0) {
      count += step;
      missing -= step;
    }
  }
}

}  // namespace moesim
