#pragma once

#include <cstdint>

#include "sim/common/rng.hpp"

namespace moesim {

// Phi^-1(probability) for probability in (0, 1): Acklam's rational approximation refined by one
// Halley step on std::erfc, accurate to ~1e-15 relative in the centre and ~1e-13 in the far tails.
double normal_quantile(double probability);

// Standard normal variates from 32 random bits, for hot paths: the top 12 bits pick one of 4096
// equiprobable cells of the standard normal, the low 20 bits interpolate Phi^-1 linearly within it.
// The distribution function is exact at every cell boundary (multiples of 1/4096) and off by far
// less than 1/4096 inside a cell; the two outermost cells (|z| > 3.49) draw their value exactly
// from fresh bits of the Rng, so the tails are not truncated.
class FastNormal {
 public:
  FastNormal();

  double operator()(std::uint32_t bits, Rng& rng) const {
    const auto cell = static_cast<int>(bits >> kFractionBits);
    if (cell == 0 || cell == kCells - 1) [[unlikely]]
      return tail(cell == 0, rng);
    const double fraction = static_cast<double>(bits & ((1u << kFractionBits) - 1)) * 0x1.0p-20;
    return bounds_[cell] + (bounds_[cell + 1] - bounds_[cell]) * fraction;
  }

 private:
  static constexpr int kCellBits = 12;
  static constexpr int kCells = 1 << kCellBits;
  static constexpr int kFractionBits = 32 - kCellBits;

  static double tail(bool lower, Rng& rng);

  const double* bounds_;  // Phi^-1(i / kCells), shared by every FastNormal
};

}  // namespace moesim
