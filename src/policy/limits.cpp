#include "policy/limits.hpp"

#include <algorithm>
#include <functional>
#include <utility>

namespace cs::policy {

std::string_view to_string(refusal r) noexcept {
  switch (r) {
    case refusal::none: return "none";
    case refusal::global_sessions: return "max_sessions";
    case refusal::ip_sessions: return "max_sessions_per_ip";
    case refusal::user_sessions: return "max_sessions_per_user";
    case refusal::ip_rate: return "connection_rate";
    case refusal::ip_locked: return "auth_lockout_ip";
    case refusal::user_locked: return "auth_lockout_user";
    case refusal::udp_associations: return "udp_associations";
  }
  return "unknown";
}

session_lease::~session_lease() {
  if (owner_ != nullptr) {
    owner_->release(*this);
  }
}

std::size_t limits::ip_hash::operator()(const core::ip::address& a) const noexcept {
  if (a.is_v4()) {
    return std::hash<std::uint32_t>{}(a.to_v4().to_uint());
  }
  const auto b = a.to_v6().to_bytes();
  std::size_t h = 1469598103934665603ULL;
  for (auto byte : b) {
    h = (h ^ byte) * 1099511628211ULL;
  }
  return h;
}

limits::stripe<limits::ip_map>& limits::ip_stripe(const core::ip::address& a) {
  return ips_[(ip_hash{}(a) * 0x9E3779B97F4A7C15ULL >> 32) % stripes];
}

limits::stripe<limits::user_map>& limits::user_stripe(std::string_view u) {
  return users_[std::hash<std::string_view>{}(u) % stripes];
}

template <typename Map>
void limits::make_room(Map& m, steady::time_point now) {
  if (m.size() < max_entries_per_stripe) {
    return;
  }
  // Forget entries with nothing to remember: no open session, no running
  // credential check, no lockout. A lockout is never forgotten to make room,
  // or filling a stripe from other addresses (or names) would lift it; while
  // every entry holds something, the stripe grows past its soft cap instead.
  std::erase_if(m, [now](const auto& kv) {
    const auto& e = kv.second;
    return e.sessions == 0 && e.udp == 0 && e.auth_pending == 0 && e.locked_until <= now;
  });
}

session_lease limits::admit(const core::ip::address& raw, const limit_settings& s, refusal& why) {
  why = refusal::none;
  const auto ip = core::unmap(raw);
  const bool per_ip = s.connection_rate_per_ip > 0 || s.max_sessions_per_ip > 0;
  // Global count first (one atomic, no lock), undone if a per-IP check fails.
  auto g = global_.load(std::memory_order_relaxed);
  do {
    if (s.max_sessions > 0 && g >= static_cast<std::int64_t>(s.max_sessions)) {
      why = refusal::global_sessions;
      return {};
    }
  } while (!global_.compare_exchange_weak(g, g + 1, std::memory_order_relaxed));
  session_lease l;
  l.owner_ = this;
  l.ip_ = ip;
  l.counts_global_ = true;
  if (!per_ip) {
    return l;  // no per-IP limit configured: no shared map on this path at all
  }
  const auto now = steady::now();
  const double burst =
      s.connection_burst_per_ip > 0 ? s.connection_burst_per_ip : std::max(s.connection_rate_per_ip, 1.0) * 2;
  auto& st = ip_stripe(ip);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(ip);
  if (it == st.map.end()) {
    make_room(st.map, now);
    it = st.map.emplace(ip, ip_state{}).first;
    it->second.tokens = burst;
    it->second.refilled = now;
  }
  auto& e = it->second;
  if (s.connection_rate_per_ip > 0) {
    const double elapsed = std::chrono::duration<double>(now - e.refilled).count();
    e.tokens = std::min(burst, e.tokens + elapsed * s.connection_rate_per_ip);
    e.refilled = now;
    if (e.tokens < 1.0) {
      why = refusal::ip_rate;
      return {};  // `l` releases the global count
    }
    e.tokens -= 1.0;
  }
  if (s.max_sessions_per_ip > 0 && e.sessions >= s.max_sessions_per_ip) {
    why = refusal::ip_sessions;
    return {};
  }
  ++e.sessions;
  l.counts_ip_ = true;
  return l;
}

session_lease limits::admit_user(const std::string& user, const limit_settings& s, refusal& why) {
  why = refusal::none;
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(user);
  if (it == st.map.end()) {
    make_room(st.map, steady::now());
    it = st.map.emplace(user, user_state{}).first;
  }
  if (s.max_sessions_per_user > 0 && it->second.sessions >= s.max_sessions_per_user) {
    why = refusal::user_sessions;
    return {};
  }
  ++it->second.sessions;
  session_lease l;
  l.owner_ = this;
  l.user_ = user;
  return l;
}

session_lease limits::admit_udp(const core::ip::address& raw, const std::string& user, unsigned max_per_ip,
                                unsigned max_per_user, refusal& why) {
  why = refusal::none;
  const auto ip = core::unmap(raw);
  const auto now = steady::now();
  {
    auto& st = ip_stripe(ip);
    std::lock_guard lock(st.mu);
    auto it = st.map.find(ip);
    if (it == st.map.end()) {
      make_room(st.map, now);
      it = st.map.emplace(ip, ip_state{}).first;
    }
    if (max_per_ip > 0 && it->second.udp >= max_per_ip) {
      why = refusal::udp_associations;
      return {};
    }
    ++it->second.udp;
  }
  if (!user.empty()) {
    auto& st = user_stripe(user);
    std::lock_guard lock(st.mu);
    auto it = st.map.find(user);
    if (it == st.map.end()) {
      make_room(st.map, now);
      it = st.map.emplace(user, user_state{}).first;
    }
    if (max_per_user > 0 && it->second.udp >= max_per_user) {
      why = refusal::udp_associations;
      auto& ist = ip_stripe(ip);  // undo the IP count
      std::lock_guard ilock(ist.mu);
      if (auto ii = ist.map.find(ip); ii != ist.map.end() && ii->second.udp > 0) {
        --ii->second.udp;
      }
      return {};
    }
    ++it->second.udp;
  }
  session_lease l;
  l.owner_ = this;
  l.ip_ = ip;
  l.user_ = user;
  l.udp_ = true;
  return l;
}

void limits::release(const session_lease& l) noexcept {
  if (l.udp_) {
    {
      auto& st = ip_stripe(l.ip_);
      std::lock_guard lock(st.mu);
      if (auto it = st.map.find(l.ip_); it != st.map.end() && it->second.udp > 0) {
        --it->second.udp;
      }
    }
    if (!l.user_.empty()) {
      auto& st = user_stripe(l.user_);
      std::lock_guard lock(st.mu);
      if (auto it = st.map.find(l.user_); it != st.map.end() && it->second.udp > 0) {
        --it->second.udp;
      }
    }
    return;
  }
  if (!l.user_.empty()) {
    auto& st = user_stripe(l.user_);
    std::lock_guard lock(st.mu);
    if (auto it = st.map.find(l.user_); it != st.map.end() && it->second.sessions > 0) {
      --it->second.sessions;
    }
    return;
  }
  if (l.counts_global_) {
    global_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!l.counts_ip_) {
    return;
  }
  auto& st = ip_stripe(l.ip_);
  std::lock_guard lock(st.mu);
  if (auto it = st.map.find(l.ip_); it != st.map.end() && it->second.sessions > 0) {
    --it->second.sessions;
  }
}

void limits::lock_out(std::uint32_t failures, const limit_settings& s, steady::time_point now,
                      steady::time_point& until) {
  if (s.auth_failures_before_lockout == 0 || failures < s.auth_failures_before_lockout) {
    return;
  }
  const auto doublings = std::min<std::uint32_t>(failures - s.auth_failures_before_lockout, 20);
  const auto d = std::min<std::chrono::milliseconds>(s.auth_lockout_base * (1LL << doublings), s.auth_lockout_max);
  until = std::max(until, now + d);
}

template <typename State>
bool limits::may_check(const State& e, const limit_settings& s, steady::time_point now) noexcept {
  if (e.locked_until > now) {
    return false;
  }
  const std::uint32_t recent = now - e.last_failure > s.auth_failure_window ? 0 : e.auth_failures;
  if (recent >= s.auth_failures_before_lockout) {
    return e.auth_pending == 0;  // a lockout just ended: one more try, whose failure locks again for longer
  }
  return recent + e.auth_pending < s.auth_failures_before_lockout;
}

refusal limits::auth_allowed(const core::ip::address& ip, std::string_view user, const limit_settings& s) {
  refusal why = refusal::none;
  const auth_attempt probe = begin_auth(ip, user, s, why);  // a question only: withdrawn at once
  return why;
}

auth_attempt limits::begin_auth(const core::ip::address& raw, std::string_view user, const limit_settings& s,
                                refusal& why) {
  why = refusal::none;
  auth_attempt a;
  a.ip_ = core::unmap(raw);
  a.user_ = std::string(user);
  if (s.auth_failures_before_lockout == 0) {
    a.owner_ = this;  // no lockout: nothing to count
    return a;
  }
  const auto now = steady::now();
  {
    auto& st = ip_stripe(a.ip_);
    std::lock_guard lock(st.mu);
    auto it = st.map.find(a.ip_);
    if (it == st.map.end()) {
      make_room(st.map, now);
      it = st.map.emplace(a.ip_, ip_state{}).first;
    }
    if (!may_check(it->second, s, now)) {
      why = refusal::ip_locked;
      return {};
    }
    ++it->second.auth_pending;
    a.counts_ip_ = true;
  }
  a.owner_ = this;  // from here on, a refusal withdraws the IP's count
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(a.user_);
  if (it == st.map.end()) {
    make_room(st.map, now);
    it = st.map.emplace(a.user_, user_state{}).first;
  }
  // A brute force against a name must not lock its owner out: addresses
  // that have logged in as this user before are not held back by it.
  const auto& t = it->second.trusted;
  if (std::find(t.begin(), t.end(), a.ip_) != t.end()) {
    return a;
  }
  if (!may_check(it->second, s, now)) {
    why = refusal::user_locked;
    return {};  // `a` withdraws the IP's count
  }
  ++it->second.auth_pending;
  a.counts_user_ = true;
  return a;
}

void limits::end_auth(const core::ip::address& ip, const std::string& user, auth_outcome outcome, bool counted_ip,
                      bool counted_user, const limit_settings* s) {
  const auto now = steady::now();
  auto bump = [&](auto& e) {
    if (now - e.last_failure > s->auth_failure_window) {
      e.auth_failures = 0;
    }
    ++e.auth_failures;
    e.last_failure = now;
    lock_out(e.auth_failures, *s, now, e.locked_until);
  };
  {
    auto& st = ip_stripe(ip);
    std::lock_guard lock(st.mu);
    auto it = st.map.find(ip);
    if (it == st.map.end() && outcome == auth_outcome::failed) {
      make_room(st.map, now);
      it = st.map.emplace(ip, ip_state{}).first;
    }
    if (it != st.map.end()) {
      auto& e = it->second;
      if (counted_ip && e.auth_pending > 0) {
        --e.auth_pending;
      }
      if (outcome == auth_outcome::failed) {
        bump(e);
      } else if (outcome == auth_outcome::succeeded) {
        e.auth_failures = 0;
      }
    }
  }
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(user);
  if (it == st.map.end() && outcome != auth_outcome::withdrawn) {
    make_room(st.map, now);
    it = st.map.emplace(user, user_state{}).first;
  }
  if (it == st.map.end()) {
    return;
  }
  auto& e = it->second;
  if (counted_user && e.auth_pending > 0) {
    --e.auth_pending;
  }
  if (outcome == auth_outcome::failed) {
    bump(e);
  } else if (outcome == auth_outcome::succeeded) {
    auto& t = e.trusted;
    if (std::find(t.begin(), t.end(), ip) == t.end()) {
      if (t.size() >= 16) {
        t.erase(t.begin());
      }
      t.push_back(ip);
    }
  }
}

void limits::auth_failed(const core::ip::address& raw, std::string_view user, const limit_settings& s) {
  end_auth(core::unmap(raw), std::string(user), auth_outcome::failed, false, false, &s);
}

void limits::auth_succeeded(const core::ip::address& raw, std::string_view user) {
  end_auth(core::unmap(raw), std::string(user), auth_outcome::succeeded, false, false, nullptr);
}

auth_attempt::~auth_attempt() {
  if (owner_ != nullptr && (counts_ip_ || counts_user_)) {
    owner_->end_auth(ip_, user_, limits::auth_outcome::withdrawn, counts_ip_, counts_user_, nullptr);
  }
}

void auth_attempt::succeeded() {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->end_auth(ip_, user_, limits::auth_outcome::succeeded, counts_ip_, counts_user_,
                                             nullptr);
  }
}

void auth_attempt::failed(const limit_settings& s) {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->end_auth(ip_, user_, limits::auth_outcome::failed, counts_ip_, counts_user_, &s);
  }
}

std::size_t limits::tracked_ips() const {
  std::size_t n = 0;
  for (const auto& st : ips_) {
    std::lock_guard lock(st.mu);
    n += st.map.size();
  }
  return n;
}

}  // namespace cs::policy
