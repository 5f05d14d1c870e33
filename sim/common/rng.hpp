#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace moesim {

// splitmix64: seeds generators and derives independent stream seeds.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A deterministic pseudo-random generator (xoshiro256**) with its own
// distributions. The standard library's distributions are implementation-defined,
// so they would break byte-identical reports across platforms; these are not.
// Each consumer of randomness owns a stream derived from (seed, stream id), so
// adding draws in one component never shifts another component's numbers.
class Rng {
 public:
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) {
    std::uint64_t mix = seed ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL);
    for (auto& word : state_)
      word = splitmix64(mix);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe to take the logarithm of.
  double uniform_positive() { return (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53; }
  // Uniform integer in [0, bound) without modulo bias (Lemire's method).
  std::uint64_t below(std::uint64_t bound) {
    __uint128_t product = static_cast<__uint128_t>(next_u64()) * bound;
    auto low = static_cast<std::uint64_t>(product);
    if (low < bound) {
      const std::uint64_t threshold = -bound % bound;
      while (low < threshold) {
        product = static_cast<__uint128_t>(next_u64()) * bound;
        low = static_cast<std::uint64_t>(product);
      }
    }
    return static_cast<std::uint64_t>(product >> 64);
  }

  double exponential(double rate) { return -std::log(uniform_positive()) / rate; }

  // Standard normal by the Box-Muller transform; the second value is kept for the next call.
  double normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    const double radius = std::sqrt(-2.0 * std::log(uniform_positive()));
    const double angle = 2.0 * std::numbers::pi * uniform();
    spare_normal_ = radius * std::sin(angle);
    has_spare_normal_ = true;
    return radius * std::cos(angle);
  }

  // Gamma(shape, scale=1) by Marsaglia and Tsang; shape < 1 uses the boost u^(1/shape).
  double gamma(double shape) {
    if (shape < 1.0) return gamma(shape + 1.0) * std::pow(uniform_positive(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform_positive();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::uint64_t state_[4];
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

// Stream ids of the components that draw random numbers; one per consumer.
enum class RngStream : std::uint64_t {
  arrivals = 1,
  lengths = 2,
  routing = 3,
  classes = 4,
  placement = 5,
};

inline Rng make_rng(std::uint64_t seed, RngStream stream, std::uint64_t sub_stream = 0) {
  return Rng(seed, static_cast<std::uint64_t>(stream) * 0x100000000ULL + sub_stream);
}

}  // namespace moesim
