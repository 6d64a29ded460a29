#pragma once
// Metric primitives for the data plane. Each worker thread owns one shard
// and is its only writer, so an increment is a plain relaxed load + store
// (no lock, no atomic read-modify-write); readers (the scrape) sum shards.

#include "core/error.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

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

/// Fixed-bucket histogram with a single writer thread. Bounds are upper
/// limits in seconds; observations are kept in microseconds for the sum.
class histogram {
 public:
  static constexpr std::array<double, 14> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1.0,   2.5,  10.0,  60.0};
  void observe(std::chrono::microseconds d) noexcept {
    const double s = static_cast<double>(d.count()) / 1e6;
    std::size_t i = 0;
    while (i < bounds.size() && s > bounds[i]) {
      ++i;
    }
    buckets_[i].inc();  // the last bucket is +Inf
    sum_us_.inc(static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()));
  }
  std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].value(); }
  std::uint64_t sum_us() const noexcept { return sum_us_.value(); }

 private:
  std::array<counter, bounds.size() + 1> buckets_{};
  counter sum_us_;
};

/// A counter that any thread may increment (atomic add). For events off the
/// per-byte path — ACL blocks by rule, per-user totals at session end.
class shared_counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// One worker's shard of the session metrics.
struct alignas(64) worker_metrics {
  counter connections_accepted;
  counter accept_errors;
  gauge sessions_active;
  /// handshakes by [version: unknown, socks4, socks5][result: ok, error, timeout]
  std::array<std::array<counter, 3>, 3> handshakes;
  counter auth_success;
  counter auth_failure;
  counter auth_throttled;          ///< refused without checking: lockout or hashing queue full
  counter acl_blocked;             ///< requests refused by a rule or built-in block
  std::array<counter, 8> rejected; ///< connections refused by a limit (policy::refusal)
  std::array<counter, 9> replies;  ///< sessions by SOCKS5 REP sent (0x00..0x08)
  counter bytes_up;                ///< client → target
  counter bytes_down;              ///< target → client
  counter session_exceptions;      ///< sessions that ended by an unexpected exception (a bug)
  histogram session_duration;
  histogram connect_duration;
  // UDP ASSOCIATE and BIND
  counter udp_associations;
  counter udp_datagrams_up;      ///< client → target
  counter udp_datagrams_down;    ///< target → client
  counter udp_dropped_source;    ///< not from the associating client's address
  counter udp_dropped_fragment;  ///< FRAG ≠ 0
  counter udp_dropped_malformed;
  counter udp_dropped_acl;
  counter udp_dropped_unsolicited;  ///< from a host the client never sent to
  counter udp_dropped_rate;
  counter udp_dropped_other;     ///< DNS failure, send failure, queue full
  counter binds_accepted;        ///< BIND: incoming connections relayed
  counter binds_rejected_peer;   ///< BIND: connections from an unexpected peer, closed

  void count_reply(core::reply_code rc) noexcept {
    const auto i = static_cast<std::size_t>(rc);
    if (i < replies.size()) {
      replies[i].inc();
    }
  }
};

/// Counters keyed by a name that comes from configuration (ACL rule names,
/// user names). Created on the control thread when a configuration is
/// compiled, then incremented by pointer from any thread; they survive
/// reloads, so a rule keeps its count across them. Bounded: at most
/// `max_names` distinct names per family, then "_other".
class named_counters {
 public:
  explicit named_counters(std::size_t max_names = 1000) : max_(max_names) {}
  /// The counter for `name` (stable address for the life of the process).
  shared_counter* get(std::string_view name);
  /// (name, value) pairs in name order, for the scrape.
  std::vector<std::pair<std::string, std::uint64_t>> values() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<shared_counter>, std::less<>> counters_;
  std::size_t max_;
};

/// Per-user totals (sessions, bytes each way).
struct user_counters {
  shared_counter sessions;
  shared_counter bytes_up;
  shared_counter bytes_down;
};

/// Process-wide metric families whose labels come from configuration.
struct registry {
  named_counters acl_blocks;
  std::mutex users_mu;
  std::map<std::string, std::unique_ptr<user_counters>, std::less<>> users;  ///< bounded like named_counters
  shared_counter config_reloads_success;
  shared_counter config_reloads_failure;

  user_counters* user(std::string_view name);
};

registry& global_registry();

}  // namespace cs::obs
