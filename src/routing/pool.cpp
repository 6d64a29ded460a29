#include "routing/pool.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace cs::routing {

std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::half_open: return "half_open";
    case breaker_state::open: return "open";
  }
  return "?";
}

void shared_histogram::observe(std::chrono::microseconds d) noexcept {
  const double s = static_cast<double>(d.count()) / 1e6;
  std::size_t i = 0;
  while (i < obs::histogram::bounds.size() && s > obs::histogram::bounds[i]) {
    ++i;
  }
  buckets_[i].inc();
  sum_us_.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())));
}

namespace {
std::int64_t to_ns(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::uint64_t keyed_hash(std::string_view a, std::string_view b) {
  // A stable 64-bit hash (BLAKE2b) for rendezvous hashing and ids.
  unsigned char out[8];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, sizeof out);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  const unsigned char sep = 0;
  crypto_generichash_update(&st, &sep, 1);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  crypto_generichash_final(&st, out, sizeof out);
  std::uint64_t v = 0;
  std::memcpy(&v, out, sizeof v);
  return v;
}
}  // namespace

member_state::member_state(upstream::proxy_url url) : url_(std::move(url)), name_(url_.redacted()) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(keyed_hash("member", url_.redacted() + url_.username)));
  id_ = "u" + std::string(hex, 12);
}

std::chrono::steady_clock::time_point member_state::open_until() const noexcept {
  return steady::time_point(std::chrono::nanoseconds(open_until_ns_.load()));
}

bool member_state::healthy_or_due(steady::time_point now) const noexcept {
  if (drained()) {
    return false;
  }
  const auto s = state();
  return s == breaker_state::closed || (s == breaker_state::open && to_ns(now) >= open_until_ns_.load()) ||
         (s == breaker_state::half_open && !trial_taken_.load());
}

bool member_state::admits(steady::time_point now) noexcept {
  if (drained()) {
    return false;
  }
  int s = state_.load();
  if (s == static_cast<int>(breaker_state::closed)) {
    return true;
  }
  if (s == static_cast<int>(breaker_state::open)) {
    if (to_ns(now) < open_until_ns_.load()) {
      return false;
    }
    // Ejection time over: exactly one caller moves it to half-open.
    if (state_.compare_exchange_strong(s, static_cast<int>(breaker_state::half_open))) {
      trial_taken_.store(false);
    }
  }
  bool expected = false;
  return trial_taken_.compare_exchange_strong(expected, true);  // the single half-open trial
}

void member_state::on_success(std::chrono::microseconds latency) noexcept {
  consecutive_.store(0);
  level_.store(0);
  state_.store(static_cast<int>(breaker_state::closed));
  trial_taken_.store(false);
  latency_hist_.observe(latency);
  // EWMA with alpha = 1/4, in microseconds.
  const std::int64_t sample = latency.count();
  std::int64_t old = latency_us_.load();
  std::int64_t next = 0;
  do {
    next = old < 0 ? sample : old + (sample - old) / 4;
  } while (!latency_us_.compare_exchange_weak(old, next));
}

void member_state::abandon_trial() noexcept {
  if (state() == breaker_state::half_open) {
    trial_taken_.store(false);
  }
}

void member_state::on_failure(steady::time_point now, const breaker_settings& b) noexcept {
  failures_.inc();
  const int n = consecutive_.fetch_add(1) + 1;
  const bool half_open = state() == breaker_state::half_open;
  if (!half_open && n < static_cast<int>(std::max(1u, b.failures_to_eject))) {
    return;
  }
  // (Re)eject: the back-off doubles with each ejection in a row.
  const int level = std::min(level_.fetch_add(1), 20);
  auto d = b.eject_base * (1LL << level);
  if (d > b.eject_max) {
    d = b.eject_max;
  }
  open_until_ns_.store(to_ns(now + d));
  trial_taken_.store(false);
  state_.store(static_cast<int>(breaker_state::open));
}

std::shared_ptr<member_state> member_registry::get(const upstream::proxy_url& url) {
  const std::string key = std::string(upstream::to_string(url.scheme)) + "://" + url.username + ":" + url.password + "@" +
                          core::to_string(url.server);
  std::lock_guard lock(mu_);
  auto& slot = members_[key];
  if (!slot) {
    slot = std::make_shared<member_state>(url);
  }
  return slot;
}

member_registry& global_members() {
  static member_registry r;
  return r;
}

pool::pool(std::vector<member> members, strategy s, hash_key k, unsigned max_tries, breaker_settings b)
    : members_(std::move(members)), strategy_(s), key_(k), max_tries_(std::max(1u, max_tries)), breaker_(b),
      next_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

std::vector<std::shared_ptr<member_state>> pool::candidates(const pick_context& ctx) const {
  const auto now = steady::now();
  std::vector<const member*> eligible;
  eligible.reserve(members_.size());
  for (const auto& m : members_) {
    if (m.state->healthy_or_due(now)) {
      eligible.push_back(&m);
    }
  }
  if (eligible.empty()) {
    return {};
  }
  const std::size_t n = eligible.size();
  thread_local std::minstd_rand rng{std::random_device{}()};
  switch (strategy_) {
    case strategy::round_robin: {
      const auto start = static_cast<std::size_t>(next_->fetch_add(1, std::memory_order_relaxed) % n);
      std::rotate(eligible.begin(), eligible.begin() + static_cast<std::ptrdiff_t>(start), eligible.end());
      break;
    }
    case strategy::random:
      std::shuffle(eligible.begin(), eligible.end(), rng);
      break;
    case strategy::weighted: {
      // Weighted random order: repeatedly draw by remaining weight.
      std::vector<const member*> ordered;
      ordered.reserve(n);
      while (!eligible.empty()) {
        unsigned total = 0;
        for (const auto* m : eligible) {
          total += m->weight;
        }
        std::uniform_int_distribution<unsigned> pick(0, total - 1);
        unsigned r = pick(rng);
        auto it = eligible.begin();
        while (r >= (*it)->weight) {
          r -= (*it)->weight;
          ++it;
        }
        ordered.push_back(*it);
        eligible.erase(it);
      }
      eligible.swap(ordered);
      break;
    }
    case strategy::least_latency:
      // Unmeasured members first (so they get measured), then fastest.
      std::stable_sort(eligible.begin(), eligible.end(), [](const member* a, const member* b) {
        return a->state->latency_us() < b->state->latency_us();
      });
      break;
    case strategy::least_connections: {
      // Ties broken round-robin so equal members share the load.
      const auto start = static_cast<std::size_t>(next_->fetch_add(1, std::memory_order_relaxed) % n);
      std::rotate(eligible.begin(), eligible.begin() + static_cast<std::ptrdiff_t>(start), eligible.end());
      std::stable_sort(eligible.begin(), eligible.end(), [](const member* a, const member* b) {
        return a->state->active() < b->state->active();
      });
      break;
    }
    case strategy::hash: {
      // Rendezvous hashing: the same key picks the same member while it is
      // available, and losing a member moves only its own keys.
      std::string key_text;
      switch (key_) {
        case hash_key::client_ip: key_text = ctx.client.to_string(); break;
        case hash_key::user: key_text = std::string(ctx.user); break;
        case hash_key::target: key_text = std::string(ctx.target); break;
      }
      std::vector<std::pair<std::uint64_t, const member*>> scored;
      scored.reserve(n);
      for (const auto* m : eligible) {
        scored.emplace_back(keyed_hash(key_text, m->state->id()), m);
      }
      std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      for (std::size_t i = 0; i < n; ++i) {
        eligible[i] = scored[i].second;
      }
      break;
    }
  }
  // Only the order is decided here; the caller claims each member with
  // admits() when it actually tries it (a half-open member's single trial
  // must not be spent on a member that is never dialled).
  std::vector<std::shared_ptr<member_state>> out;
  for (const auto* m : eligible) {
    if (out.size() >= max_tries_) {
      break;
    }
    out.push_back(m->state);
  }
  return out;
}

std::vector<member_spec> parse_pool_source(std::string_view text, std::vector<std::string>& errors) {
  std::vector<member_spec> out;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '[') {
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_array()) {
      errors.emplace_back("not valid JSON (expected proxybroker2's array of proxies)");
      return out;
    }
    for (std::size_t i = 0; i < doc.size(); ++i) {
      const auto& p = doc[i];
      const std::string where = "[" + std::to_string(i) + "]";
      if (!p.is_object() || !p.contains("host") || !p["host"].is_string() || !p.contains("port") ||
          !(p["port"].is_number_unsigned() || p["port"].is_string())) {
        errors.push_back(where + ": expected an object with host and port");
        continue;
      }
      // Prefer what tunnels any TCP best: SOCKS5, SOCKS4, then HTTP CONNECT.
      std::string scheme;
      int best = 0;
      if (p.contains("types") && p["types"].is_array()) {
        for (const auto& t : p["types"]) {
          const std::string type = t.is_object() && t.contains("type") && t["type"].is_string()
                                       ? t["type"].get<std::string>()
                                       : std::string();
          int rank = 0;
          std::string s;
          if (type == "SOCKS5") {
            rank = 3;
            s = "socks5";
          } else if (type == "SOCKS4") {
            rank = 2;
            s = "socks4";
          } else if (type == "HTTPS" || type.starts_with("CONNECT:")) {
            rank = 1;
            s = "http";
          }
          if (rank > best) {
            best = rank;
            scheme = s;
          }
        }
      }
      if (scheme.empty()) {
        continue;  // plain HTTP forward proxies cannot tunnel arbitrary TCP
      }
      const std::string host = p["host"].get<std::string>();
      const std::string port = p["port"].is_string() ? p["port"].get<std::string>()
                                                     : std::to_string(p["port"].get<unsigned>());
      const bool v6 = host.find(':') != std::string::npos;
      member_spec m{scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + port, 1};
      upstream::proxy_url url;
      std::string err;
      if (!upstream::parse_proxy_url(m.url, url, &err)) {
        errors.push_back(where + ": " + err);
        continue;
      }
      out.push_back(std::move(m));
    }
    return out;
  }
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    upstream::proxy_url url;
    std::string err;
    if (!upstream::parse_proxy_url(line, url, &err) || url.scheme == upstream::proxy_scheme::direct) {
      errors.push_back(std::to_string(line_no) + ": " + (err.empty() ? "a pool member must be a proxy URL" : err));
      continue;
    }
    out.push_back({std::string(line), 1});
  }
  return out;
}

bool parse_strategy(std::string_view t, strategy& out) {
  static const std::pair<std::string_view, strategy> names[] = {
      {"round_robin", strategy::round_robin},       {"random", strategy::random},
      {"weighted", strategy::weighted},             {"least_latency", strategy::least_latency},
      {"least_connections", strategy::least_connections}, {"hash", strategy::hash}};
  for (const auto& [n, v] : names) {
    if (n == t) {
      out = v;
      return true;
    }
  }
  return false;
}

bool parse_hash_key(std::string_view t, hash_key& out) {
  if (t == "client_ip") {
    out = hash_key::client_ip;
  } else if (t == "user") {
    out = hash_key::user;
  } else if (t == "target") {
    out = hash_key::target;
  } else {
    return false;
  }
  return true;
}

}  // namespace cs::routing
