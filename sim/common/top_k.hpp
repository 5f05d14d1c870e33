#pragma once

#include <type_traits>

namespace moesim {

// body(std::integral_constant<int, N>{}) with N = top_k for the top-k values of real models (1, 2, 4, 6,
// 8), so that loops over a token's choices unroll; N = 0 for any other top_k (the caller's general code).
template <typename Body>
void with_top_k(int top_k, Body&& body) {
  switch (top_k) {
    case 1:
      return body(std::integral_constant<int, 1>{});
    case 2:
      return body(std::integral_constant<int, 2>{});
    case 4:
      return body(std::integral_constant<int, 4>{});
    case 6:
      return body(std::integral_constant<int, 6>{});
    case 8:
      return body(std::integral_constant<int, 8>{});
    default:
      return body(std::integral_constant<int, 0>{});
  }
}

}  // namespace moesim
