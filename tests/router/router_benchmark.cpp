// Prints ns per Router::sample_counts call for DeepSeek-V3's shape (256 experts, top-8) at several
// token counts, for uniform and Zipf popularity. Not a test: timings depend on the machine.
#include <chrono>
#include <cstdio>
#include <vector>

#include "sim/router/router.hpp"

int main() {
  using namespace moesim;
  constexpr int kLayers = 58, kExperts = 256, kTopK = 8;
  std::vector<std::int32_t> counts(kExperts);
  for (const double exponent : {0.0, 1.0}) {
    RouterSpec spec;
    spec.kind = PopularityKind::zipf;
    spec.zipf_exponent = exponent;
    auto router = make_router(spec, kLayers, kExperts, kTopK, 1);
    for (const std::int64_t tokens : {1, 16, 64, 256, 1024, 8192}) {
      const int calls = tokens >= 8192 ? 20000 : 100000;
      std::int64_t checksum = 0;
      const auto start = std::chrono::steady_clock::now();
      for (int call = 0; call < calls; ++call) {
        router->sample_counts(call % kLayers, tokens, counts);
        checksum += counts[call % kExperts];
      }
      const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
      std::printf("256 experts, top-8, zipf %.1f, T = %5lld: %7.0f ns per call (checksum %lld)\n", exponent,
                  static_cast<long long>(tokens), elapsed.count() / calls, static_cast<long long>(checksum));
    }
  }
}
