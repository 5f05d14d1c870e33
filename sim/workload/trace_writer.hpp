#pragma once

#include <cstdint>
#include <string>

#include "sim/workload/request.hpp"

namespace moesim {

// Drains an open-loop `source` into the generic CSV format (README "csv"): a header
// "timestamp,input_tokens,output_tokens,traffic_class" and one row per request, the timestamp in
// seconds with all 9 decimals, so reading the text back gives the same nanoseconds.
std::string write_generic_csv(RequestSource& source);

}  // namespace moesim
