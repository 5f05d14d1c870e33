#include "sim/report/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace moesim {

void run_in_parallel(std::size_t count, std::size_t jobs, const std::function<void(std::size_t)>& task,
                     const std::function<void(std::size_t done)>& progress) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;  // guards the failure record, the active count and the wake-up
  std::condition_variable wake;
  const std::size_t thread_count = std::clamp<std::size_t>(jobs, 1, std::max<std::size_t>(count, 1));
  std::size_t active = thread_count;
  std::optional<std::pair<std::size_t, std::exception_ptr>> failure;  // lowest failing index

  const auto worker = [&] {
    while (!stop.load()) {
      const std::size_t index = next.fetch_add(1);
      if (index >= count) break;
      try {
        task(index);
        done.fetch_add(1);
      } catch (...) {
        stop.store(true);
        const std::lock_guard lock(mutex);
        if (!failure || index < failure->first) failure.emplace(index, std::current_exception());
      }
      wake.notify_all();
    }
    const std::lock_guard lock(mutex);
    --active;
    wake.notify_all();
  };

  std::vector<std::thread> threads;
  threads.reserve(thread_count);
  for (std::size_t t = 0; t < thread_count; ++t)
    threads.emplace_back(worker);
  {
    std::unique_lock lock(mutex);
    while (active > 0) {
      wake.wait_for(lock, std::chrono::milliseconds(500));
      if (progress) {
        lock.unlock();
        progress(done.load());
        lock.lock();
      }
    }
  }
  for (auto& thread : threads)
    thread.join();
  if (failure) std::rethrow_exception(failure->second);
}

}  // namespace moesim
