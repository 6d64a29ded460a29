#include "policy/limits.hpp"

#include <algorithm>
#include <functional>

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
  // Forget entries with nothing to remember: no open session, no lockout.
  std::erase_if(m, [now](const auto& kv) {
    return kv.second.sessions == 0 && kv.second.udp == 0 && kv.second.locked_until <= now;
  });
  if (m.size() >= max_entries_per_stripe) {
    // Still full (a flood from many sources): drop idle entries at random.
    for (auto it = m.begin(); it != m.end() && m.size() >= max_entries_per_stripe;) {
      it = (it->second.sessions == 0 && it->second.udp == 0) ? m.erase(it) : std::next(it);
    }
  }
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

refusal limits::auth_allowed(const core::ip::address& raw, std::string_view user, const limit_settings& s) {
  if (s.auth_failures_before_lockout == 0) {
    return refusal::none;
  }
  const auto ip = core::unmap(raw);
  const auto now = steady::now();
  {
    auto& st = ip_stripe(ip);
    std::lock_guard lock(st.mu);
    if (auto it = st.map.find(ip); it != st.map.end() && it->second.locked_until > now) {
      return refusal::ip_locked;
    }
  }
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  if (auto it = st.map.find(std::string(user)); it != st.map.end() && it->second.locked_until > now) {
    // A brute force against a name must not lock its owner out: addresses
    // that have logged in as this user before are not held back.
    const auto& t = it->second.trusted;
    if (std::find(t.begin(), t.end(), ip) == t.end()) {
      return refusal::user_locked;
    }
  }
  return refusal::none;
}

void limits::auth_failed(const core::ip::address& raw, std::string_view user, const limit_settings& s) {
  const auto ip = core::unmap(raw);
  const auto now = steady::now();
  auto bump = [&](std::uint32_t& failures, steady::time_point& last, steady::time_point& until) {
    if (now - last > s.auth_failure_window) {
      failures = 0;
    }
    ++failures;
    last = now;
    lock_out(failures, s, now, until);
  };
  {
    auto& st = ip_stripe(ip);
    std::lock_guard lock(st.mu);
    auto it = st.map.find(ip);
    if (it == st.map.end()) {
      make_room(st.map, now);
      it = st.map.emplace(ip, ip_state{}).first;
    }
    bump(it->second.auth_failures, it->second.last_failure, it->second.locked_until);
  }
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(std::string(user));
  if (it == st.map.end()) {
    make_room(st.map, now);
    it = st.map.emplace(std::string(user), user_state{}).first;
  }
  bump(it->second.auth_failures, it->second.last_failure, it->second.locked_until);
}

void limits::auth_succeeded(const core::ip::address& raw, std::string_view user) {
  const auto ip = core::unmap(raw);
  {
    auto& st = ip_stripe(ip);
    std::lock_guard lock(st.mu);
    if (auto it = st.map.find(ip); it != st.map.end()) {
      it->second.auth_failures = 0;
    }
  }
  auto& st = user_stripe(user);
  std::lock_guard lock(st.mu);
  auto it = st.map.find(std::string(user));
  if (it == st.map.end()) {
    make_room(st.map, steady::now());
    it = st.map.emplace(std::string(user), user_state{}).first;
  }
  auto& t = it->second.trusted;
  if (std::find(t.begin(), t.end(), ip) == t.end()) {
    if (t.size() >= 16) {
      t.erase(t.begin());
    }
    t.push_back(ip);
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
