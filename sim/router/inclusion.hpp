#pragma once

#include <span>
#include <vector>

namespace moesim {

// Successive sampling, moesim's reference model of a top-k router: a token draws top_k DISTINCT
// experts one after another, each time with probability proportional to its selection probability
// among the experts not yet drawn (so `selection` is the distribution of its first choice).
//
// Inclusion probabilities of that model: pi_e = P(expert e is among the token's top_k);
// sum pi = top_k, pi_e <= 1, and pi_e != top_k * p_e unless p is uniform.
// Computed exactly up to quadrature error (< 1e-9 absolute) from the exponential-clock form of
// successive sampling: expert e draws an arrival time X_e ~ Exp(p_e) and the token takes the top_k
// earliest, so pi_e = integral over t of p_e exp(-p_e t) P(fewer than top_k others arrived by t).
// Cost O(experts * top_k * 400). `selection` must be non-negative with at least top_k positive
// entries; it need not be normalised.
std::vector<double> successive_inclusion_probabilities(std::span<const double> selection, int top_k);

// The inverse: selection probabilities (sum 1) whose successive-sampling inclusion probabilities are
// `inclusion` (each in [0, 1), sum top_k) to within `tolerance`. Returns an empty vector when the
// iteration does not get there (inclusion probabilities too close to 1 to be reached).
std::vector<double> selection_for_inclusion(std::span<const double> inclusion, int top_k,
                                            double tolerance = 1e-9);

}  // namespace moesim
