#pragma once
// Metric primitives for the data plane. Each worker thread owns one shard
// and is its only writer, so an increment is a plain relaxed load + store
// (no lock, no atomic read-modify-write); readers (the scrape) sum shards.

#include "core/error.hpp"

#include <array>
#include <atomic>
#include <cstdint>

namespace cs::obs {

/// Monotonic counter with a single writer thread.
class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// Up/down gauge with a single writer thread.
class gauge {
 public:
  void add(std::int64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(std::int64_t n = 1) noexcept { add(-n); }
  std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

/// One worker's shard of the session metrics.
struct alignas(64) worker_metrics {
  counter connections_accepted;
  counter accept_errors;
  gauge sessions_active;
  counter handshakes_socks5;
  counter handshakes_socks4;
  counter handshake_failures;   ///< malformed, timed out or closed before a request
  counter auth_success;
  counter auth_failure;
  counter auth_throttled;          ///< refused without checking: lockout or hashing queue full
  counter acl_blocked;             ///< requests refused by a rule or built-in block
  std::array<counter, 8> rejected; ///< connections refused by a limit (policy::refusal)
  std::array<counter, 9> replies;  ///< sessions by SOCKS5 REP sent (0x00..0x08)
  counter bytes_up;                ///< client → target
  counter bytes_down;              ///< target → client
  counter session_exceptions;      ///< sessions that ended by an unexpected exception (a bug)

  void count_reply(core::reply_code rc) noexcept {
    const auto i = static_cast<std::size_t>(rc);
    if (i < replies.size()) {
      replies[i].inc();
    }
  }
};

}  // namespace cs::obs
