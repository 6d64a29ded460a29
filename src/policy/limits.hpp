#pragma once
// Limits that must hold under floods: concurrent sessions (global, per
// client IP, per user), new-connection rate per client IP (token bucket),
// and failed-authentication throttling per client IP and per username.
//
// The state is shared by all workers and outlives configuration reloads;
// the limit values come from the current snapshot with each call. Shared
// maps are striped (64 independent locks chosen by key hash), so there is
// no global lock on the connection path, and every map is bounded.
//
// Thread-safety: all member functions are safe from any thread.

#include "core/address.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cs::policy {

using steady = std::chrono::steady_clock;

struct limit_settings {
  std::uint32_t max_sessions = 0;         ///< global concurrent sessions; 0 = unlimited
  std::uint32_t max_sessions_per_ip = 0;  ///< 0 = unlimited
  std::uint32_t max_sessions_per_user = 0;
  double connection_rate_per_ip = 0;      ///< new connections per second per IP; 0 = unlimited
  double connection_burst_per_ip = 0;     ///< bucket size; 0 → max(rate, 1) * 2
  std::uint32_t auth_failures_before_lockout = 5;   ///< per IP and per username
  std::chrono::milliseconds auth_lockout_base{1000}; ///< first lockout; doubles per further failure
  std::chrono::milliseconds auth_lockout_max{300'000};
  std::chrono::milliseconds auth_failure_window{600'000}; ///< failures older than this are forgotten
};

enum class refusal : std::uint8_t {
  none,
  global_sessions,
  ip_sessions,
  user_sessions,
  ip_rate,
  ip_locked,
  user_locked,
  udp_associations,
};
std::string_view to_string(refusal r) noexcept;

class limits;

/// Holds one counted session (global + per IP, or per user); releases on
/// destruction. Movable, not copyable.
class session_lease {
 public:
  session_lease() = default;
  session_lease(session_lease&& o) noexcept { swap(o); }
  session_lease& operator=(session_lease&& o) noexcept {
    session_lease(std::move(o)).swap(*this);
    return *this;
  }
  ~session_lease();
  explicit operator bool() const noexcept { return owner_ != nullptr; }

 private:
  friend class limits;
  void swap(session_lease& o) noexcept {
    std::swap(owner_, o.owner_);
    std::swap(ip_, o.ip_);
    std::swap(user_, o.user_);
    std::swap(counts_global_, o.counts_global_);
    std::swap(counts_ip_, o.counts_ip_);
    std::swap(udp_, o.udp_);
  }
  limits* owner_ = nullptr;
  core::ip::address ip_;
  std::string user_;  // empty: an IP lease
  bool counts_global_ = false;
  bool counts_ip_ = false;
  bool udp_ = false;  // a UDP association lease (IP count, and user count if user_ is set)
};

/// One credential check let through by limits::begin_auth(). Until it ends
/// it counts as a failure against the client's IP and the name, so guesses
/// sent in parallel (which would all pass a lockout check made before the
/// first of them fails) cannot outrun the lockout. Destroyed without
/// succeeded() or failed() (an exception, a shutdown), it is withdrawn.
/// Movable, not copyable.
class auth_attempt {
 public:
  auth_attempt() = default;
  auth_attempt(auth_attempt&& o) noexcept { swap(o); }
  auth_attempt& operator=(auth_attempt&& o) noexcept {
    auth_attempt(std::move(o)).swap(*this);
    return *this;
  }
  ~auth_attempt();
  /// False when begin_auth() refused the check.
  explicit operator bool() const noexcept { return owner_ != nullptr; }
  void succeeded();
  void failed(const limit_settings& s);

 private:
  friend class limits;
  void swap(auth_attempt& o) noexcept {
    std::swap(owner_, o.owner_);
    std::swap(ip_, o.ip_);
    std::swap(user_, o.user_);
    std::swap(counts_ip_, o.counts_ip_);
    std::swap(counts_user_, o.counts_user_);
  }
  limits* owner_ = nullptr;
  core::ip::address ip_;
  std::string user_;
  bool counts_ip_ = false;    // holds a pending check in the IP's entry
  bool counts_user_ = false;  // and in the name's (not for a trusted IP)
};

class limits {
 public:
  limits() = default;
  limits(const limits&) = delete;
  limits& operator=(const limits&) = delete;

  /// A new connection from `ip`: rate and concurrency checks. On success the
  /// lease counts it until destroyed; otherwise `why` says which limit.
  session_lease admit(const core::ip::address& ip, const limit_settings& s, refusal& why);

  /// An authenticated session for `user` (per-user concurrency).
  session_lease admit_user(const std::string& user, const limit_settings& s, refusal& why);

  /// A UDP association for `ip` (and `user`, if authenticated).
  session_lease admit_udp(const core::ip::address& ip, const std::string& user, unsigned max_per_ip,
                          unsigned max_per_user, refusal& why);

  /// Before verifying credentials: refusal::none, or ip_locked / user_locked
  /// (locked out, or as many checks still running as failures it would take).
  refusal auth_allowed(const core::ip::address& ip, std::string_view user, const limit_settings& s);
  /// auth_allowed() and, when it says none, the check counted as running until
  /// the attempt ends (see auth_attempt). `why` says which lock refused it.
  auth_attempt begin_auth(const core::ip::address& ip, std::string_view user, const limit_settings& s,
                          refusal& why);
  void auth_failed(const core::ip::address& ip, std::string_view user, const limit_settings& s);
  void auth_succeeded(const core::ip::address& ip, std::string_view user);

  std::int64_t active_sessions() const noexcept { return global_.load(std::memory_order_relaxed); }

  /// Entry counts, for tests and metrics (sum over stripes; approximate under load).
  std::size_t tracked_ips() const;

  static constexpr std::size_t max_entries_per_stripe = 4096;

 private:
  friend class session_lease;
  friend class auth_attempt;
  struct ip_hash {
    std::size_t operator()(const core::ip::address& a) const noexcept;
  };
  struct ip_state {
    std::uint32_t sessions = 0;
    std::uint32_t udp = 0;
    double tokens = 0;
    steady::time_point refilled{};
    std::uint32_t auth_failures = 0;
    std::uint32_t auth_pending = 0;  ///< credential checks let through and still running
    steady::time_point last_failure{};
    steady::time_point locked_until{};
  };
  struct user_state {
    std::uint32_t sessions = 0;
    std::uint32_t udp = 0;
    std::uint32_t auth_failures = 0;
    std::uint32_t auth_pending = 0;
    steady::time_point last_failure{};
    steady::time_point locked_until{};
    std::vector<core::ip::address> trusted;  ///< IPs that logged in as this user (bounded)
  };
  template <typename Map>
  struct stripe {
    mutable std::mutex mu;
    Map map;
  };
  static constexpr std::size_t stripes = 64;
  using ip_map = std::unordered_map<core::ip::address, ip_state, ip_hash>;
  using user_map = std::unordered_map<std::string, user_state>;

  stripe<ip_map>& ip_stripe(const core::ip::address& a);
  stripe<user_map>& user_stripe(std::string_view u);
  void release(const session_lease& l) noexcept;
  enum class auth_outcome : std::uint8_t { withdrawn, failed, succeeded };
  void end_auth(const core::ip::address& ip, const std::string& user, auth_outcome outcome, bool counted_ip,
                bool counted_user, const limit_settings* s);
  template <typename State>
  static bool may_check(const State& e, const limit_settings& s, steady::time_point now) noexcept;
  static void lock_out(std::uint32_t failures, const limit_settings& s, steady::time_point now,
                       steady::time_point& until);
  template <typename Map>
  static void make_room(Map& m, steady::time_point now);

  std::atomic<std::int64_t> global_{0};
  std::array<stripe<ip_map>, stripes> ips_;
  std::array<stripe<user_map>, stripes> users_;
};

}  // namespace cs::policy
