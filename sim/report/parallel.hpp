#pragma once

#include <cstddef>
#include <functional>

namespace moesim {

// Runs task(0) .. task(count - 1) on up to `jobs` threads (the calling thread waits
// and reports progress). After a task throws, no new task starts; the running ones
// finish, then the exception of the lowest failing index is rethrown, so the error a
// caller sees does not depend on the job count or on timing.
// `progress(done)` is called on the calling thread about twice a second and once at the end.
void run_in_parallel(std::size_t count, std::size_t jobs, const std::function<void(std::size_t)>& task,
                     const std::function<void(std::size_t done)>& progress = {});

}  // namespace moesim
