#include "sim/workload/trace_writer.hpp"

#include <fmt/format.h>

namespace moesim {

std::string write_generic_csv(RequestSource& source) {
  fmt::memory_buffer text;
  fmt::format_to(std::back_inserter(text), "timestamp,input_tokens,output_tokens,traffic_class\n");
  while (auto request = source.next()) {
    fmt::format_to(std::back_inserter(text), "{}.{:09},{},{},{}\n", request->arrival / kNanosecondsPerSecond,
                   request->arrival % kNanosecondsPerSecond, request->input_tokens, request->output_tokens,
                   request->traffic_class);
  }
  return fmt::to_string(text);
}

}  // namespace moesim
