#pragma once
// Helpers shared by the micro-benchmarks (bench/micro, issue 3).

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace cs::bench {

using bytes = std::vector<std::uint8_t>;

// Byte by byte: GCC 12 at -O3 misreads vector::insert/resize on these small
// vectors (-Wstringop-overflow, -Warray-bounds false positives).
inline void append(bytes& b, std::initializer_list<std::uint8_t> v) {
  for (const auto c : v) {
    b.push_back(c);
  }
}
inline void append(bytes& b, std::string_view s) {
  for (const auto c : s) {
    b.push_back(static_cast<std::uint8_t>(c));
  }
}
inline void append_fill(bytes& b, std::size_t n, std::uint8_t value) {
  for (std::size_t i = 0; i < n; ++i) {
    b.push_back(value);
  }
}
inline void append_be16(bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

/// One operation per iteration: items/s is operations per second, and the
/// time column is ns per operation.
inline void count_items(benchmark::State& state) { state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations())); }

}  // namespace cs::bench
