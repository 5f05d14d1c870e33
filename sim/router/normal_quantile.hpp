#pragma once

#include <cstdint>

#include "sim/common/rng.hpp"

namespace moesim {

// Phi^-1(probability) for probability in (0, 1): Acklam's rational approximation refined by one
// Halley step on std::erfc, accurate to ~1e-15 relative in the centre and ~1e-13 in the far tails.
double normal_quantile(double probability);

// A standard normal variate from 32 random bits, for hot paths: the top 12 bits pick one of 4096
// equiprobable cells of the standard normal, the low 20 bits interpolate Phi^-1 linearly within it.
// The distribution function is exact at every cell boundary (multiples of 1/4096) and off by far
// less than 1/4096 inside a cell; the two outermost cells (|z| > 3.49) draw their value exactly
// from fresh bits of `rng`, so the tails are not truncated.
double fast_normal(std::uint32_t bits, Rng& rng);

}  // namespace moesim
