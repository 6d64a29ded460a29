#pragma once
// Upstream pools: members, their health (a circuit breaker each), and the
// selection strategies.
//
// Membership is part of the configuration snapshot (a pool file change is
// a reload); a member's health and counters live in a member_state shared
// by every snapshot that contains the same URL, so reloads keep them.
//
// Circuit breaker: closed (in rotation) → open after `failures_to_eject`
// consecutive failures (passive: a failed dial; active: a failed probe) →
// after the ejection time, half-open: one trial request or probe; success
// closes it, failure opens it again for twice as long (up to eject_max).
//
// Thread-safety: member_state is all atomics; pool is immutable. Both are
// safe from any thread.

#include "core/address.hpp"
#include "obs/metrics.hpp"
#include "routing/settings.hpp"
#include "upstream/url.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cs::routing {

using steady = std::chrono::steady_clock;

enum class breaker_state : std::uint8_t { closed = 0, half_open = 1, open = 2 };
std::string_view to_string(breaker_state s) noexcept;

struct breaker_settings {
  unsigned failures_to_eject = 3;
  std::chrono::milliseconds eject_base{10'000};
  std::chrono::milliseconds eject_max{300'000};
};

/// Thread-safe histogram (atomic adds), for metrics shared across workers.
class shared_histogram {
 public:
  void observe(std::chrono::microseconds d) noexcept;
  std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].value(); }
  std::uint64_t sum_us() const noexcept { return sum_us_.value(); }

 private:
  std::array<obs::shared_counter, obs::histogram::bounds.size() + 1> buckets_{};
  obs::shared_counter sum_us_;
};

class member_state {
 public:
  explicit member_state(upstream::proxy_url url);

  const upstream::proxy_url& url() const noexcept { return url_; }
  /// Stable, URL-safe identifier (for the admin API): "u" + 12 hex digits.
  const std::string& id() const noexcept { return id_; }
  const std::string& name() const noexcept { return name_; }  ///< redacted URL

  breaker_state state() const noexcept { return static_cast<breaker_state>(state_.load()); }
  bool drained() const noexcept { return drained_.load(); }
  void set_drained(bool d) noexcept { drained_.store(d); }

  /// May a new session use this member now? Open members whose ejection
  /// time has passed become half-open and admit exactly one trial.
  bool admits(steady::time_point now) noexcept;
  /// Eligible ignoring the half-open single-trial rule (for ordering).
  bool healthy_or_due(steady::time_point now) const noexcept;

  void on_success(std::chrono::microseconds latency) noexcept;
  void on_failure(steady::time_point now, const breaker_settings& b) noexcept;
  /// A try admitted by admits() ended with no verdict (the session was
  /// cancelled): a half-open member's single trial is free again.
  void abandon_trial() noexcept;

  // Session accounting (least-connections, metrics).
  void session_started() noexcept { active_.fetch_add(1); sessions_.inc(); }
  void session_ended() noexcept { active_.fetch_sub(1); }
  int active() const noexcept { return active_.load(); }
  std::uint64_t sessions() const noexcept { return sessions_.value(); }
  std::uint64_t failures() const noexcept { return failures_.value(); }
  /// EWMA of connect latency in microseconds; -1 until measured.
  std::int64_t latency_us() const noexcept { return latency_us_.load(); }
  const shared_histogram& latency() const noexcept { return latency_hist_; }
  std::chrono::steady_clock::time_point open_until() const noexcept;

 private:
  upstream::proxy_url url_;
  std::string id_;
  std::string name_;
  std::atomic<int> state_{0};
  std::atomic<bool> drained_{false};
  std::atomic<bool> trial_taken_{false};
  std::atomic<int> consecutive_{0};
  std::atomic<int> level_{0};  // ejections in a row: the back-off exponent
  std::atomic<std::int64_t> open_until_ns_{0};
  std::atomic<int> active_{0};
  std::atomic<std::int64_t> latency_us_{-1};
  obs::shared_counter sessions_;
  obs::shared_counter failures_;
  shared_histogram latency_hist_;
};

/// member_state objects by URL, kept for the life of the process so that
/// a reload finds the same health state. Control thread only.
class member_registry {
 public:
  std::shared_ptr<member_state> get(const upstream::proxy_url& url);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<member_state>> members_;
};
member_registry& global_members();

enum class strategy : std::uint8_t { round_robin, random, weighted, least_latency, least_connections, hash };
enum class hash_key : std::uint8_t { client_ip, user, target };

struct pick_context {
  core::ip::address client;
  std::string_view user;
  std::string_view target;  ///< "host:port" as requested
};

class pool {
 public:
  struct member {
    std::shared_ptr<member_state> state;
    unsigned weight = 1;
  };
  pool(std::vector<member> members, strategy s, hash_key k, unsigned max_tries, breaker_settings b);

  /// Members to try for one request, best first, at most max_tries; only
  /// members not drained and not ejected (or due for their half-open
  /// trial). Empty when none is available. Call admits() on each before use.
  std::vector<std::shared_ptr<member_state>> candidates(const pick_context& ctx) const;

  const std::vector<member>& members() const noexcept { return members_; }
  const breaker_settings& breaker() const noexcept { return breaker_; }
  strategy strat() const noexcept { return strategy_; }

 private:
  std::vector<member> members_;
  strategy strategy_;
  hash_key key_;
  unsigned max_tries_;
  breaker_settings breaker_;
  std::shared_ptr<std::atomic<std::uint64_t>> next_;  // round-robin position
};

/// Parses a pool source file: proxybroker2's JSON output (an array of
/// {"host", "port", "types": [{"type": "SOCKS5"|"SOCKS4"|"HTTPS"|"CONNECT:80"|…}]})
/// or one URL per line ('#' comments). Problems are appended to `errors`
/// ("LINE: message" / "[INDEX]: message"); usable members are returned.
std::vector<member_spec> parse_pool_source(std::string_view text, std::vector<std::string>& errors);

bool parse_strategy(std::string_view text, strategy& out);
bool parse_hash_key(std::string_view text, hash_key& out);

}  // namespace cs::routing
