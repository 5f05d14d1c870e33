#pragma once

#include <cstddef>
#include <vector>

#include "sim/engine/event.hpp"

namespace moesim {

// Binary min-heap of events ordered by runs_before. Storage is one contiguous
// vector that only grows, so steady-state pushes and pops allocate nothing.
class EventQueue {
 public:
  void reserve(std::size_t capacity) { heap_.reserve(capacity); }
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  const Event& top() const { return heap_.front(); }

  void push(const Event& event) {
    std::size_t hole = heap_.size();
    heap_.push_back(event);
    while (hole > 0) {
      const std::size_t parent = (hole - 1) / 2;
      if (!runs_before(event, heap_[parent])) break;
      heap_[hole] = heap_[parent];
      hole = parent;
    }
    heap_[hole] = event;
  }

  // Removes and returns the first event. Precondition: !empty().
  Event pop() {
    const Event first = heap_.front();
    const Event last = heap_.back();
    heap_.pop_back();
    const std::size_t count = heap_.size();
    if (count == 0) return first;
    std::size_t hole = 0;
    for (;;) {
      std::size_t child = 2 * hole + 1;
      if (child >= count) break;
      if (child + 1 < count && runs_before(heap_[child + 1], heap_[child])) ++child;
      if (!runs_before(heap_[child], last)) break;
      heap_[hole] = heap_[child];
      hole = child;
    }
    heap_[hole] = last;
    return first;
  }

  void clear() { heap_.clear(); }

 private:
  std::vector<Event> heap_;
};

}  // namespace moesim
