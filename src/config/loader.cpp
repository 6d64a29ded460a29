#include "config/loader.hpp"

#include "policy/rule_spec.hpp"
#include "upstream/url.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace cs::config {

std::string diagnostic::to_string() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line) + ':' + std::to_string(column);
    }
    out += ": ";
  }
  if (!path.empty()) {
    out += path + ": ";
  }
  out += message;
  return out;
}

bool parse_size(std::string_view text, std::uint64_t& out) {
  std::uint64_t scale = 1;
  struct suffix {
    std::string_view s;
    std::uint64_t scale;
  };
  for (const auto& sf : {suffix{"KiB", 1024}, suffix{"MiB", 1024 * 1024}, suffix{"GiB", 1024ULL * 1024 * 1024},
                         suffix{"k", 1000}, suffix{"K", 1024}, suffix{"M", 1024 * 1024}}) {
    if (text.ends_with(sf.s)) {
      scale = sf.scale;
      text.remove_suffix(sf.s.size());
      break;
    }
  }
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || v > (1ULL << 40) / scale) {
    return false;
  }
  out = v * scale;
  return true;
}

std::string env_name(std::string_view path) {
  std::string out = "CLEVERSOCKS_";
  for (const char c : path) {
    out += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string did_you_mean(std::string_view key, const std::vector<std::string_view>& candidates) {
  std::string best;
  std::size_t best_d = 3;  // at most two edits, and less than the key's length
  for (const auto c : candidates) {
    std::vector<std::size_t> prev(c.size() + 1);
    std::vector<std::size_t> cur(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) {
      prev[j] = j;
    }
    for (std::size_t i = 1; i <= key.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        const std::size_t sub = prev[j - 1] + (std::tolower(key[i - 1]) == std::tolower(c[j - 1]) ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    const std::size_t d = prev[c.size()];
    if (d < best_d && d < key.size()) {
      best_d = d;
      best = std::string(c);
    }
  }
  return best;
}

namespace {

// ------------------------------------------------------------ scalar fields

using setter = std::function<std::string(settings&, std::string_view)>;
using getter = std::function<std::string(const settings&)>;

// Beyond this a worker would poll through any realistic gap between events,
// i.e. spin for good; a bare "200" (seconds) is a typo for "200us".
constexpr std::chrono::microseconds max_busy_poll{10'000};

struct scalar_field {
  std::string_view path;
  bool restart = false;
  setter set;
  getter get;
};

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) {
    return std::to_string(ms / 3'600'000) + "h";
  }
  if (ms % 60'000 == 0 && ms != 0) {
    return std::to_string(ms / 60'000) + "m";
  }
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

std::string format_double(double v) {
  return fmt::format("{}", v);  // shortest text that reads back as the same double
}

bool parse_bool(std::string_view t, bool& out) {
  if (t == "true" || t == "yes" || t == "on") {
    out = true;
  } else if (t == "false" || t == "no" || t == "off") {
    out = false;
  } else {
    return false;
  }
  return true;
}

template <typename Int>
bool parse_int(std::string_view t, Int& out) {
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  return !t.empty() && ec == std::errc{} && ptr == t.data() + t.size();
}

template <typename Access>
scalar_field bool_field(std::string_view path, Access a, bool restart = false) {
  return {path, restart,
          [a](settings& s, std::string_view t) -> std::string {
            return parse_bool(t, a(s)) ? "" : "expected true or false";
          },
          [a](const settings& s) -> std::string { return a(const_cast<settings&>(s)) ? "true" : "false"; }};
}

template <typename Access>
scalar_field uint_field(std::string_view path, Access a, bool restart = false) {
  return {path, restart,
          [a](settings& s, std::string_view t) -> std::string {
            auto& ref = a(s);
            std::remove_reference_t<decltype(ref)> v{};
            if (!parse_int(t, v) || v < 0) {
              return "expected a non-negative whole number";
            }
            ref = v;
            return "";
          },
          [a](const settings& s) -> std::string { return std::to_string(a(const_cast<settings&>(s))); }};
}

template <typename Access>
scalar_field double_field(std::string_view path, Access a) {
  return {path, false,
          [a](settings& s, std::string_view t) -> std::string {
            double v = 0;
            const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
            if (t.empty() || ec != std::errc{} || ptr != t.data() + t.size() || v < 0 || v > 1e9) {
              return "expected a non-negative number";
            }
            a(s) = v;
            return "";
          },
          [a](const settings& s) -> std::string { return format_double(a(const_cast<settings&>(s))); }};
}

template <typename Access>
scalar_field string_field(std::string_view path, Access a, bool restart = false) {
  return {path, restart,
          [a](settings& s, std::string_view t) -> std::string {
            a(s) = std::string(t);
            return "";
          },
          [a](const settings& s) -> std::string { return a(const_cast<settings&>(s)); }};
}

// Durations kept in milliseconds; `whole_seconds` for fields stored as seconds.
template <typename Access>
scalar_field duration_field(std::string_view path, Access a, bool restart = false) {
  return {path, restart,
          [a](settings& s, std::string_view t) -> std::string {
            std::chrono::milliseconds d{};
            if (!parse_duration(t, d)) {
              return "expected a duration (10, 1.5, 500ms, 2s, 1m, 1h)";
            }
            a(s) = std::chrono::duration_cast<std::remove_reference_t<decltype(a(s))>>(d);
            return "";
          },
          [a](const settings& s) -> std::string {
            return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(a(const_cast<settings&>(s))));
          }};
}

std::string format_micros(std::chrono::microseconds d) {
  const auto us = d.count();
  return us % 1000 == 0 ? format_duration(std::chrono::milliseconds(us / 1000)) : std::to_string(us) + "us";
}

// Durations kept in microseconds, at most `max`: "50us", "0.2ms".
template <typename Access>
scalar_field micros_field(std::string_view path, Access a, std::chrono::microseconds max, bool restart = false) {
  return {path, restart,
          [a, max](settings& s, std::string_view t) -> std::string {
            std::chrono::microseconds d{};
            if (!parse_duration(t, d) || d > max) {
              return fmt::format("expected a duration from 0 to {} (50us, 0.2ms; a bare number is seconds)",
                                 format_micros(max));
            }
            a(s) = d;
            return "";
          },
          [a](const settings& s) -> std::string { return format_micros(a(const_cast<settings&>(s))); }};
}

// Byte sizes ("64KiB", "1MiB", "65536") between `min` and 16 MiB.
template <typename Access>
scalar_field size_field(std::string_view path, Access a, std::size_t min, bool restart = false) {
  return {path, restart,
          [a, min](settings& s, std::string_view t) -> std::string {
            constexpr std::uint64_t max = 16 * 1024 * 1024;
            std::uint64_t v = 0;
            if (!parse_size(t, v) || v < min || v > max) {
              return fmt::format("expected a size between {}KiB and 16MiB (e.g. 64KiB)", min / 1024);
            }
            a(s) = static_cast<std::size_t>(v);
            return "";
          },
          [a](const settings& s) -> std::string {
            const std::size_t v = a(const_cast<settings&>(s));
            return v % 1024 == 0 ? std::to_string(v / 1024) + "KiB" : std::to_string(v);
          }};
}

template <typename Enum, typename Access>
scalar_field enum_field(std::string_view path, Access a, std::vector<std::pair<std::string_view, Enum>> names,
                        bool restart = false) {
  return {path, restart,
          [a, names](settings& s, std::string_view t) -> std::string {
            std::string choices;
            for (const auto& [n, v] : names) {
              if (n == t) {
                a(s) = v;
                return "";
              }
              choices += (choices.empty() ? "" : ", ") + std::string(n);
            }
            return "expected one of: " + choices;
          },
          [a, names](const settings& s) -> std::string {
            for (const auto& [n, v] : names) {
              if (v == a(const_cast<settings&>(s))) {
                return std::string(n);
              }
            }
            return "";
          }};
}

// An IP address kept as text ("" = unset).
template <typename Access>
scalar_field ip_field(std::string_view path, Access a) {
  return {path, false,
          [a](settings& s, std::string_view t) -> std::string {
            boost::system::error_code ec;
            if (!t.empty()) {
              (void)core::ip::make_address(std::string(t), ec);
            }
            if (ec) {
              return "expected an IP address";
            }
            a(s) = std::string(t);
            return "";
          },
          [a](const settings& s) -> std::string { return a(const_cast<settings&>(s)); }};
}

// A list that can also be given as one comma-separated string (env, CLI).
struct list_field {
  std::string_view path;
  bool restart = false;
  std::function<std::string(settings&, std::string_view)> add;  // one item
  std::function<void(settings&)> clear;
  std::function<std::vector<std::string>(const settings&)> get;
};

std::string set_listen_item(settings& s, std::string_view t) {
  core::ip::tcp::endpoint ep;
  if (!core::parse_endpoint(t, ep)) {
    return "expected IPv4:PORT or [IPv6]:PORT, got '" + std::string(t) + "'";
  }
  s.listen.push_back({ep, proxy_protocol_mode::off});
  return "";
}

std::string set_dns_server_item(settings& s, std::string_view t) {
  boost::system::error_code ec;
  const auto addr = core::ip::make_address(std::string(t), ec);
  if (!ec) {
    s.dns.servers.emplace_back(addr, 53);
    return "";
  }
  core::ip::tcp::endpoint ep;
  if (!core::parse_endpoint(t, ep, false)) {
    return "expected IP or IP:PORT, got '" + std::string(t) + "'";
  }
  s.dns.servers.emplace_back(ep.address(), ep.port());
  return "";
}

const std::vector<list_field>& list_fields() {
  static const std::vector<list_field> fields = {
      {"listen", true, set_listen_item, [](settings& s) { s.listen.clear(); },
       [](const settings& s) {
         std::vector<std::string> v;
         for (const auto& l : s.listen) {
           v.push_back(core::to_string(l.endpoint));
         }
         return v;
       }},
      {"dns.servers", true, set_dns_server_item, [](settings& s) { s.dns.servers.clear(); },
       [](const settings& s) {
         std::vector<std::string> v;
         for (const auto& e : s.dns.servers) {
           v.push_back(core::to_string(e));
         }
         return v;
       }},
  };
  return fields;
}

const std::vector<scalar_field>& scalar_fields() {
  static const std::vector<scalar_field> fields = {
      uint_field("workers", [](settings& s) -> auto& { return s.workers; }, true),
      micros_field("busy_poll", [](settings& s) -> auto& { return s.busy_poll; }, max_busy_poll, true),
      bool_field("allow_open", [](settings& s) -> auto& { return s.allow_open; }),
      string_field("run_as.user", [](settings& s) -> auto& { return s.run_as.user; }, true),
      string_field("run_as.group", [](settings& s) -> auto& { return s.run_as.group; }, true),
      string_field("users_file", [](settings& s) -> auto& { return s.users_file; }),
      uint_field("auth.lockout_after", [](settings& s) -> auto& { return s.limits.auth_failures_before_lockout; }),
      duration_field("auth.lockout_base", [](settings& s) -> auto& { return s.limits.auth_lockout_base; }),
      duration_field("auth.lockout_max", [](settings& s) -> auto& { return s.limits.auth_lockout_max; }),
      duration_field("auth.failure_window", [](settings& s) -> auto& { return s.limits.auth_failure_window; }),
      enum_field<policy::action>("acl.default", [](settings& s) -> auto& { return s.acl.default_action; },
                                 {{"allow", policy::action::allow}, {"deny", policy::action::block}}),
      bool_field("acl.builtin_blocks.loopback", [](settings& s) -> auto& { return s.acl.builtin.loopback; }),
      bool_field("acl.builtin_blocks.private", [](settings& s) -> auto& { return s.acl.builtin.private_ranges; }),
      bool_field("acl.builtin_blocks.link_local", [](settings& s) -> auto& { return s.acl.builtin.link_local; }),
      bool_field("acl.builtin_blocks.cgnat", [](settings& s) -> auto& { return s.acl.builtin.cgnat; }),
      bool_field("acl.builtin_blocks.unique_local", [](settings& s) -> auto& { return s.acl.builtin.unique_local; }),
      bool_field("acl.builtin_blocks.unspecified", [](settings& s) -> auto& { return s.acl.builtin.unspecified; }),
      bool_field("acl.builtin_blocks.multicast", [](settings& s) -> auto& { return s.acl.builtin.multicast; }),
      bool_field("acl.builtin_blocks.reserved", [](settings& s) -> auto& { return s.acl.builtin.reserved; }),
      bool_field("acl.builtin_blocks.metadata", [](settings& s) -> auto& { return s.acl.builtin.metadata; }),
      bool_field("acl.builtin_blocks.smtp", [](settings& s) -> auto& { return s.acl.builtin.smtp; }),
      bool_field("acl.builtin_blocks.local", [](settings& s) -> auto& { return s.acl.builtin.local; }),
      string_field("geoip.database", [](settings& s) -> auto& { return s.geoip_database; }),
      uint_field("limits.max_sessions", [](settings& s) -> auto& { return s.limits.max_sessions; }),
      uint_field("limits.max_sessions_per_ip", [](settings& s) -> auto& { return s.limits.max_sessions_per_ip; }),
      uint_field("limits.max_sessions_per_user", [](settings& s) -> auto& { return s.limits.max_sessions_per_user; }),
      double_field("limits.rate_per_ip", [](settings& s) -> auto& { return s.limits.connection_rate_per_ip; }),
      double_field("limits.burst_per_ip", [](settings& s) -> auto& { return s.limits.connection_burst_per_ip; }),
      duration_field("timeouts.handshake", [](settings& s) -> auto& { return s.timeouts.handshake; }),
      duration_field("timeouts.connect", [](settings& s) -> auto& { return s.timeouts.connect; }),
      duration_field("timeouts.idle", [](settings& s) -> auto& { return s.timeouts.idle; }),
      duration_field("timeouts.drain", [](settings& s) -> auto& { return s.timeouts.drain; }),
      duration_field("dns.timeout", [](settings& s) -> auto& { return s.dns.query_timeout; }, true),
      uint_field("dns.tries", [](settings& s) -> auto& { return s.dns.tries; }, true),
      uint_field("dns.cache_size", [](settings& s) -> auto& { return s.dns.cache_capacity; }, true),
      duration_field("dns.min_ttl", [](settings& s) -> auto& { return s.dns.min_ttl; }, true),
      duration_field("dns.max_ttl", [](settings& s) -> auto& { return s.dns.max_ttl; }, true),
      duration_field("dns.negative_ttl", [](settings& s) -> auto& { return s.dns.negative_ttl; }, true),
      duration_field("connect.attempt_delay", [](settings& s) -> auto& { return s.connect.attempt_delay; }),
      enum_field<upstream::family_preference>(
          "connect.prefer", [](settings& s) -> auto& { return s.connect.family; },
          {{"ipv6", upstream::family_preference::prefer_v6},
           {"ipv4", upstream::family_preference::prefer_v4},
           {"only_ipv4", upstream::family_preference::only_v4},
           {"only_ipv6", upstream::family_preference::only_v6}}),
      enum_field<relay::relay_mode>("relay.mode", [](settings& s) -> auto& { return s.relay.mode; },
                                    {{"adaptive", relay::relay_mode::adaptive},
                                     {"splice", relay::relay_mode::splice},
                                     {"copy", relay::relay_mode::copy}}),
      size_field("relay.buffer_size", [](settings& s) -> auto& { return s.relay.chunk; }, 1024, true),
      size_field("relay.pipe_size", [](settings& s) -> auto& { return s.relay.pipe_size; }, 4096, true),
      size_field("relay.notsent_lowat", [](settings& s) -> auto& { return s.relay.notsent_lowat; }, 0),
      enum_field<spdlog::level::level_enum>("log.level", [](settings& s) -> auto& { return s.log.level; },
                                            {{"error", spdlog::level::err},
                                             {"warn", spdlog::level::warn},
                                             {"info", spdlog::level::info},
                                             {"debug", spdlog::level::debug},
                                             {"trace", spdlog::level::trace}}),
      enum_field<obs::log_format>("log.format", [](settings& s) -> auto& { return s.log.format; },
                                  {{"text", obs::log_format::text}, {"json", obs::log_format::json}}, true),
      bool_field("log.access_log", [](settings& s) -> auto& { return s.log.access_log; }),
      bool_field("admin.enabled", [](settings& s) -> auto& { return s.admin.enabled; }, true),
      {"admin.listen", true,
       [](settings& s, std::string_view t) -> std::string {
         return core::parse_endpoint(t, s.admin.listen) ? "" : "expected IPv4:PORT or [IPv6]:PORT";
       },
       [](const settings& s) -> std::string { return core::to_string(s.admin.listen); }},
      bool_field("proxy_pool.enabled", [](settings& s) -> auto& { return s.proxy_pool.enabled; }),
      string_field("proxy_pool.source", [](settings& s) -> auto& { return s.proxy_pool.source; }),
      {"proxy_pool.strategy", false,
       [](settings& s, std::string_view t) -> std::string {
         static const std::set<std::string_view> ok = {"round_robin", "random", "weighted",
                                                       "least_latency", "least_connections", "hash"};
         if (ok.count(t) == 0) {
           return "expected one of: round_robin, random, weighted, least_latency, least_connections, hash";
         }
         s.proxy_pool.strategy = std::string(t);
         return "";
       },
       [](const settings& s) -> std::string { return s.proxy_pool.strategy; }},
      {"proxy_pool.hash_key", false,
       [](settings& s, std::string_view t) -> std::string {
         if (t != "client_ip" && t != "user" && t != "target") {
           return "expected one of: client_ip, user, target";
         }
         s.proxy_pool.hash_key = std::string(t);
         return "";
       },
       [](const settings& s) -> std::string { return s.proxy_pool.hash_key; }},
      uint_field("proxy_pool.max_tries", [](settings& s) -> auto& { return s.proxy_pool.max_tries; }),
      uint_field("proxy_pool.eject_after", [](settings& s) -> auto& { return s.proxy_pool.failures_to_eject; }),
      duration_field("proxy_pool.eject_base", [](settings& s) -> auto& { return s.proxy_pool.eject_base; }),
      duration_field("proxy_pool.eject_max", [](settings& s) -> auto& { return s.proxy_pool.eject_max; }),
      duration_field("proxy_pool.health_check.interval",
                     [](settings& s) -> auto& { return s.proxy_pool.health_check.interval; }),
      duration_field("proxy_pool.health_check.timeout",
                     [](settings& s) -> auto& { return s.proxy_pool.health_check.timeout; }),
      {"proxy_pool.health_check.kind", false,
       [](settings& s, std::string_view t) -> std::string {
         if (t != "connect" && t != "socks5") {
           return "expected connect or socks5";
         }
         s.proxy_pool.health_check.kind = std::string(t);
         return "";
       },
       [](const settings& s) -> std::string { return s.proxy_pool.health_check.kind; }},
      {"proxy_pool.health_check.target", false,
       [](settings& s, std::string_view t) -> std::string {
         core::target_address tgt;
         if (!t.empty() && !core::parse_target(t, tgt)) {
           return "expected HOST:PORT";
         }
         s.proxy_pool.health_check.target = std::string(t);
         return "";
       },
       [](const settings& s) -> std::string { return s.proxy_pool.health_check.target; }},
      ip_field("udp.advertise_address", [](settings& s) -> auto& { return s.udp.advertise_address; }),
      duration_field("udp.idle_timeout", [](settings& s) -> auto& { return s.udp.idle_timeout; }),
      uint_field("udp.max_per_ip", [](settings& s) -> auto& { return s.udp.max_per_ip; }),
      uint_field("udp.max_per_user", [](settings& s) -> auto& { return s.udp.max_per_user; }),
      double_field("udp.rate", [](settings& s) -> auto& { return s.udp.rate; }),
      bool_field("udp.allow_unsolicited", [](settings& s) -> auto& { return s.udp.allow_unsolicited; }),
      ip_field("bind.advertise_address", [](settings& s) -> auto& { return s.bind.advertise_address; }),
      duration_field("bind.timeout", [](settings& s) -> auto& { return s.bind.timeout; }),
  };
  return fields;
}

// Sections with structure of their own (lists of maps, maps of names).
constexpr std::string_view complex_sections[] = {"users", "acl.rules", "upstreams", "forwarding",
                                                 "proxy_pool.members", "port_forward"};

// ------------------------------------------------------------ YAML reader

class yaml_reader {
 public:
  yaml_reader(const std::string& file, std::vector<diagnostic>& errors) : file_(file), errors_(errors) {}

  void error(const YAML::Node& n, const std::string& path, std::string message) {
    diagnostic d{file_, 0, 0, path, std::move(message)};
    const auto m = n.Mark();
    if (m.line >= 0) {
      d.line = m.line + 1;
      d.column = m.column + 1;
    }
    errors_.push_back(std::move(d));
  }

  void apply(const YAML::Node& root, settings& s) {
    if (root.IsNull()) {
      return;  // an empty file is a valid (default) configuration
    }
    walk(root, "", s);
  }

 private:
  static std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  // Keys valid directly under `prefix`.
  static std::vector<std::string_view> children(const std::string& prefix) {
    std::vector<std::string_view> out;
    auto consider = [&](std::string_view path) {
      if (!prefix.empty()) {
        if (!path.starts_with(prefix) || path.size() <= prefix.size() || path[prefix.size()] != '.') {
          return;
        }
        path.remove_prefix(prefix.size() + 1);
      }
      const auto dot = path.find('.');
      const auto child = path.substr(0, dot);
      if (std::find(out.begin(), out.end(), child) == out.end()) {
        out.push_back(child);
      }
    };
    for (const auto& f : scalar_fields()) {
      consider(f.path);
    }
    for (const auto& f : list_fields()) {
      consider(f.path);
    }
    for (auto c : complex_sections) {
      consider(c);
    }
    return out;
  }

  bool check_unique(const YAML::Node& map, const std::string& prefix) {
    std::set<std::string> seen;
    bool ok = true;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const auto key = it->first.as<std::string>("");
      if (!seen.insert(key).second) {
        error(it->first, join(prefix, key), "duplicate key");
        ok = false;
      }
    }
    return ok;
  }

  void walk(const YAML::Node& node, const std::string& prefix, settings& s) {
    if (!node.IsMap()) {
      error(node, prefix.empty() ? std::string("(top level)") : prefix, "expected a mapping of keys");
      return;
    }
    check_unique(node, prefix);
    const auto valid = children(prefix);
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = it->first.as<std::string>("");
      const std::string path = join(prefix, key);
      const YAML::Node value = it->second;  // a copy: it-> returns a proxy that dies here
      if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
        std::string msg = "unknown key";
        if (auto hint = did_you_mean(key, valid); !hint.empty()) {
          msg += " (did you mean '" + hint + "'?)";
        }
        error(it->first, path, msg);
        continue;
      }
      if (const auto* f = find_scalar(path)) {
        set_scalar(*f, value, path, s);
      } else if (const auto* l = find_list(path)) {
        set_list(*l, value, path, s);
      } else if (std::find(std::begin(complex_sections), std::end(complex_sections), path) !=
                 std::end(complex_sections)) {
        complex(path, value, s);
      } else {
        walk(value, path, s);
      }
    }
  }

  static const scalar_field* find_scalar(std::string_view path) {
    for (const auto& f : scalar_fields()) {
      if (f.path == path) {
        return &f;
      }
    }
    return nullptr;
  }
  static const list_field* find_list(std::string_view path) {
    for (const auto& f : list_fields()) {
      if (f.path == path) {
        return &f;
      }
    }
    return nullptr;
  }

  bool scalar_text(const YAML::Node& n, const std::string& path, std::string& out, bool allow_null = true) {
    if (n.IsNull() && allow_null) {
      out.clear();
      return true;
    }
    if (!n.IsScalar()) {
      error(n, path, "expected a single value");
      return false;
    }
    out = n.Scalar();
    return true;
  }

  void set_scalar(const scalar_field& f, const YAML::Node& n, const std::string& path, settings& s) {
    std::string text;
    if (!scalar_text(n, path, text)) {
      return;
    }
    if (auto err = f.set(s, text); !err.empty()) {
      error(n, path, err + (text.empty() ? "" : " (got '" + text + "')"));
    }
  }

  void set_list(const list_field& f, const YAML::Node& n, const std::string& path, settings& s) {
    if (!n.IsSequence() && !n.IsNull()) {
      error(n, path, "expected a list");
      return;
    }
    f.clear(s);
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = n[i];
      const std::string ipath = path + "[" + std::to_string(i) + "]";
      if (path == "listen" && item.IsMap()) {
        listener_map(item, ipath, s);
        continue;
      }
      std::string text;
      if (!scalar_text(item, ipath, text, false)) {
        continue;
      }
      if (auto err = f.add(s, text); !err.empty()) {
        error(item, ipath, err);
      }
    }
  }

  // Checks a mapping's keys against `known`; reports unknown ones.
  bool keys(const YAML::Node& n, const std::string& path, const std::vector<std::string_view>& known) {
    if (!n.IsMap()) {
      error(n, path, "expected a mapping");
      return false;
    }
    check_unique(n, path);
    bool ok = true;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const auto key = it->first.as<std::string>("");
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string msg = "unknown key";
        if (auto hint = did_you_mean(key, known); !hint.empty()) {
          msg += " (did you mean '" + hint + "'?)";
        }
        error(it->first, path + "." + key, msg);
        ok = false;
      }
    }
    return ok;
  }

  // A string or a list of strings.
  std::vector<std::string> strings(const YAML::Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
    } else if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) {
        std::string t;
        if (scalar_text(n[i], path + "[" + std::to_string(i) + "]", t, false)) {
          out.push_back(t);
        }
      }
    } else if (!n.IsNull()) {
      error(n, path, "expected a value or a list of values");
    }
    return out;
  }

  void listener_map(const YAML::Node& n, const std::string& path, settings& s) {
    if (!keys(n, path, {"address", "proxy_protocol"})) {
      return;
    }
    listener_settings l;
    if (!n["address"]) {
      error(n, path + ".address", "missing");
      return;
    }
    std::string addr;
    if (scalar_text(n["address"], path + ".address", addr, false) && !core::parse_endpoint(addr, l.endpoint)) {
      error(n["address"], path + ".address", "expected IPv4:PORT or [IPv6]:PORT");
      return;
    }
    if (n["proxy_protocol"]) {
      std::string pp;
      scalar_text(n["proxy_protocol"], path + ".proxy_protocol", pp, false);
      if (pp == "off" || pp == "false") {
        l.proxy_protocol = proxy_protocol_mode::off;
      } else if (pp == "v1") {
        l.proxy_protocol = proxy_protocol_mode::v1;
      } else if (pp == "v2") {
        l.proxy_protocol = proxy_protocol_mode::v2;
      } else if (pp == "any" || pp == "true") {
        l.proxy_protocol = proxy_protocol_mode::any;
      } else {
        error(n["proxy_protocol"], path + ".proxy_protocol", "expected off, v1, v2 or any");
      }
    }
    s.listen.push_back(l);
  }

  void complex(const std::string& path, const YAML::Node& n, settings& s) {
    if (path == "upstreams") {
      upstreams(n, s);
      return;
    }
    if (!n.IsSequence() && !n.IsNull()) {
      error(n, path, "expected a list");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = n[i];
      const std::string ipath = path + "[" + std::to_string(i) + "]";
      if (path == "users") {
        user(item, ipath, s);
      } else if (path == "acl.rules") {
        acl_rule(item, ipath, i, s);
      } else if (path == "forwarding") {
        forwarding(item, ipath, s);
      } else if (path == "proxy_pool.members") {
        pool_member(item, ipath, s);
      } else if (path == "port_forward") {
        port_forward(item, ipath, s);
      }
    }
  }

  void user(const YAML::Node& n, const std::string& path, settings& s) {
    if (!keys(n, path, {"name", "password", "groups"})) {
      return;
    }
    auth::credential c;
    if (!n["name"] || !scalar_text(n["name"], path + ".name", c.name, false) || c.name.empty()) {
      error(n, path + ".name", "a user needs a non-empty name");
      return;
    }
    if (!n["password"] || !scalar_text(n["password"], path + ".password", c.password)) {
      error(n, path + ".password", "a user needs a password (plain text or an argon2id hash)");
      return;
    }
    if (c.name.size() > 255 || (!auth::is_password_hash(c.password) && c.password.size() > 255)) {
      error(n, path, "SOCKS5 limits names and passwords to 255 bytes");
      return;
    }
    if (auth::is_password_hash(c.password) && !auth::is_valid_password_hash(c.password)) {
      error(n["password"], path + ".password", "malformed password hash (make one with: cleversocks passwd)");
      return;
    }
    if (n["groups"]) {
      c.groups = strings(n["groups"], path + ".groups");
    }
    s.users.push_back(std::move(c));
  }

  void acl_rule(const YAML::Node& n, const std::string& path, std::size_t index, settings& s) {
    if (!keys(n, path, {"name", "action", "src", "users", "dst", "ports", "commands", "countries"})) {
      return;
    }
    policy::rule r;
    r.name = n["name"] ? n["name"].as<std::string>("") : "rule " + std::to_string(index + 1);
    std::string act;
    if (!n["action"] || !scalar_text(n["action"], path + ".action", act, false)) {
      error(n, path + ".action", "missing (allow or deny)");
    } else if (act == "allow") {
      r.act = policy::action::allow;
    } else if (act == "deny" || act == "block") {
      r.act = policy::action::block;
    } else {
      error(n["action"], path + ".action", "expected allow or deny");
    }
    auto each = [&](const char* key, auto fn) {
      if (!n[key]) {
        return;
      }
      const auto list = n[key];
      const auto items = strings(list, path + "." + key);
      for (std::size_t i = 0; i < items.size(); ++i) {
        std::string err = fn(items[i]);
        if (!err.empty()) {
          error(list.IsSequence() ? list[i] : list, path + "." + key + "[" + std::to_string(i) + "]",
                err + " (got '" + items[i] + "')");
        }
      }
    };
    each("src", [&](const std::string& t) -> std::string {
      policy::cidr c;
      std::string err;
      if (!policy::parse_cidr(t, c, &err)) {
        return err;
      }
      r.src.push_back(c);
      return "";
    });
    each("users", [&](const std::string& t) -> std::string {
      r.users.push_back(t);
      return "";
    });
    each("dst", [&](const std::string& t) -> std::string {
      std::string err;
      return policy::parse_destination(t, r, &err) ? "" : err;
    });
    each("ports", [&](const std::string& t) -> std::string {
      policy::port_range p;
      if (!policy::parse_port_range(t, p)) {
        return "expected PORT, LOW-HIGH or *";
      }
      r.ports.push_back(p);
      return "";
    });
    if (n["commands"]) {
      r.commands = 0;
    }
    each("commands", [&](const std::string& t) -> std::string {
      return policy::parse_command(t, r.commands) ? "" : "expected connect, bind, udp or *";
    });
    each("countries", [&](const std::string& t) -> std::string {
      std::string cc;
      if (!policy::parse_country(t, cc)) {
        return "expected a two-letter ISO 3166-1 code";
      }
      r.countries.push_back(cc);
      return "";
    });
    s.acl.rules.push_back(std::move(r));
  }

  void upstreams(const YAML::Node& n, settings& s) {
    if (n.IsNull()) {
      return;
    }
    if (!n.IsMap()) {
      error(n, "upstreams", "expected a mapping of NAME: URL");
      return;
    }
    check_unique(n, "upstreams");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const auto name = it->first.as<std::string>("");
      std::string url;
      upstream::proxy_url parsed;
      std::string err;
      if (!scalar_text(it->second, "upstreams." + name, url, false)) {
        continue;
      }
      if (!upstream::parse_proxy_url(url, parsed, &err)) {
        error(it->second, "upstreams." + name, err);
        continue;
      }
      s.upstreams.emplace_back(name, url);
    }
  }

  void forwarding(const YAML::Node& n, const std::string& path, settings& s) {
    if (!keys(n, path, {"match", "upstream", "remote", "redirect", "src", "users", "dst", "countries", "bind",
                        "prefer"})) {
      return;
    }
    routing::forwarding_rule f;
    auto text = [&](const char* key, std::string& out) {
      if (n[key]) {
        scalar_text(n[key], path + "." + key, out);
      }
    };
    text("match", f.match);
    text("remote", f.remote);
    text("redirect", f.redirect);
    text("bind", f.bind);
    text("prefer", f.prefer);
    if (n["upstream"]) {
      f.upstream = strings(n["upstream"], path + ".upstream");
    }
    for (const char* key : {"src", "users", "dst", "countries"}) {
      if (n[key]) {
        auto v = strings(n[key], path + "." + key);
        auto& dst = std::string_view(key) == "src"     ? f.src
                    : std::string_view(key) == "users" ? f.users
                    : std::string_view(key) == "dst"   ? f.dst
                                                       : f.countries;
        dst = std::move(v);
      }
    }
    if (f.match.empty() && f.src.empty() && f.users.empty() && f.dst.empty() && f.countries.empty()) {
      error(n, path, "a forwarding rule needs 'match' (HOST:PORT pattern) or another condition");
    }
    if (f.upstream.empty() && f.redirect.empty()) {
      error(n, path, "a forwarding rule needs 'upstream' or 'redirect'");
    }
    s.forwarding.push_back(std::move(f));
  }

  // "URL" or {url: URL, weight: N}
  void pool_member(const YAML::Node& n, const std::string& path, settings& s) {
    routing::member_spec m;
    // Not `url_node = n["url"]`: assigning to a YAML::Node writes through it.
    const YAML::Node url_node = n.IsMap() ? n["url"] : n;
    if (n.IsMap()) {
      if (!keys(n, path, {"url", "weight"})) {
        return;
      }
      if (!url_node) {
        error(n, path + ".url", "missing");
        return;
      }
      if (n["weight"]) {
        std::string w;
        if (!scalar_text(n["weight"], path + ".weight", w, false) || !parse_int(w, m.weight) || m.weight == 0 ||
            m.weight > 1000) {
          error(n["weight"], path + ".weight", "expected a whole number from 1 to 1000");
          return;
        }
      }
    }
    upstream::proxy_url parsed;
    std::string err;
    if (!scalar_text(url_node, path, m.url, false)) {
      return;
    }
    if (!upstream::parse_proxy_url(m.url, parsed, &err) || parsed.scheme == upstream::proxy_scheme::direct) {
      error(url_node, path, err.empty() ? "a pool member must be a proxy URL" : err);
      return;
    }
    s.proxy_pool.members.push_back(std::move(m));
  }

  void port_forward(const YAML::Node& n, const std::string& path, settings& s) {
    if (!keys(n, path, {"listen", "target", "via"})) {
      return;
    }
    routing::port_forward_settings p;
    std::string listen;
    if (!n["listen"] || !scalar_text(n["listen"], path + ".listen", listen, false) ||
        !core::parse_endpoint(listen, p.listen)) {
      error(n["listen"] ? n["listen"] : n, path + ".listen", "expected IPv4:PORT or [IPv6]:PORT");
      return;
    }
    core::target_address t;
    if (!n["target"] || !scalar_text(n["target"], path + ".target", p.target, false) ||
        !core::parse_target(p.target, t)) {
      error(n["target"] ? n["target"] : n, path + ".target", "expected HOST:PORT");
      return;
    }
    if (n["via"]) {
      p.via = strings(n["via"], path + ".via");
    }
    s.port_forward.push_back(std::move(p));
  }

  const std::string& file_;
  std::vector<diagnostic>& errors_;
};

}  // namespace

settings source::load(std::vector<diagnostic>& errors) const {
  settings s;
  if (!file.empty()) {
    apply_yaml_file(file, s, errors);
  }
  apply_env(env, s, errors);
  if (command_line) {
    command_line(s, errors);
  }
  return s;
}

std::vector<std::string> source::watched_files(const settings& s) const {
  std::vector<std::string> out;
  if (!file.empty()) {
    out.push_back(file);
  }
  if (!s.users_file.empty()) {
    out.push_back(s.users_file);
  }
  if (!s.proxy_pool.source.empty()) {
    out.push_back(s.proxy_pool.source);
  }
  return out;
}

namespace {

// yaml-cpp 0.7 accepts a quoted scalar that is never closed (it runs to the
// end of the file, or swallows following lines up to the next quote). No
// configuration value spans lines, so a quote still open at the end of its
// line is reported where it was opened.
bool unterminated_quote(std::string_view text, int& line, int& column) {
  int l = 1;
  int col = 0;
  char open = 0;
  int open_line = 0;
  int open_col = 0;
  char prev = '\n';  // previous non-space character on this line ('\n': none yet)
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ++col;
    if (c == '\n') {
      if (open != 0) {
        line = open_line;
        column = open_col;
        return true;
      }
      ++l;
      col = 0;
      prev = '\n';
      continue;
    }
    if (open == '"') {
      if (c == '\\') {
        ++i;
        ++col;
      } else if (c == '"') {
        open = 0;
        prev = c;
      }
      continue;
    }
    if (open == '\'') {
      if (c == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;
        ++col;
      } else if (c == '\'') {
        open = 0;
        prev = c;
      }
      continue;
    }
    if (c == '#' && (prev == '\n' || (i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t')))) {
      while (i + 1 < text.size() && text[i + 1] != '\n') {
        ++i;
      }
      continue;
    }
    // A quote opens a quoted scalar only where a value can start.
    if ((c == '"' || c == '\'') && (prev == '\n' || prev == ':' || prev == '-' || prev == '[' || prev == '{' ||
                                      prev == ',' || prev == '?')) {
      open = c;
      open_line = l;
      open_col = col;
      continue;
    }
    if (c != ' ' && c != '\t') {
      prev = c;
    }
  }
  if (open != 0) {
    line = open_line;
    column = open_col;
    return true;
  }
  return false;
}

}  // namespace

void apply_yaml(std::string_view text, const std::string& file, settings& s, std::vector<diagnostic>& errors) {
  if (int line = 0, column = 0; unterminated_quote(text, line, column)) {
    errors.push_back({file, line, column, "", "quoted value is not closed on its line (missing quote?)"});
    return;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    errors.push_back({file, e.mark.line + 1, e.mark.column + 1, "", e.msg});
    return;
  }
  try {
    yaml_reader(file, errors).apply(root, s);
  } catch (const YAML::Exception& e) {
    // A reader bug must not take the process down: a hot reload keeps the
    // running configuration when a file does not load.
    errors.push_back({file, e.mark.line + 1, e.mark.column + 1, "", e.msg});
  }
}

void apply_yaml_file(const std::string& path, settings& s, std::vector<diagnostic>& errors) {
  std::string text;
  if (const auto why = read_whole_file(path, text); !why.empty()) {
    errors.push_back({path, 0, 0, "", "cannot be read (" + why + ")"});  // a directory too
    return;
  }
  apply_yaml(text, path, s, errors);
}

std::map<std::string, std::string> cleversocks_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (!kv.starts_with("CLEVERSOCKS_")) {
      continue;
    }
    const auto eq = kv.find('=');
    if (eq != std::string_view::npos) {
      out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  return out;
}

void apply_env(const std::map<std::string, std::string>& env, settings& s, std::vector<diagnostic>& errors) {
  std::vector<std::string> known;
  for (const auto& f : scalar_fields()) {
    known.push_back(env_name(f.path));
  }
  for (const auto& f : list_fields()) {
    known.push_back(env_name(f.path));
  }
  known.emplace_back("CLEVERSOCKS_CONFIG");
  for (const auto& [name, value] : env) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::vector<std::string_view> candidates(known.begin(), known.end());
      std::string msg = "unknown environment variable";
      if (auto hint = did_you_mean(name, candidates); !hint.empty()) {
        msg += " (did you mean " + hint + "?)";
      }
      errors.push_back({"environment", 0, 0, name, msg});
    }
  }
  for (const auto& f : scalar_fields()) {
    if (auto it = env.find(env_name(f.path)); it != env.end()) {
      if (auto err = f.set(s, it->second); !err.empty()) {
        errors.push_back({"environment", 0, 0, it->first, err + " (got '" + it->second + "')"});
      }
    }
  }
  for (const auto& f : list_fields()) {
    if (auto it = env.find(env_name(f.path)); it != env.end()) {
      if (auto err = set_value(s, f.path, it->second); !err.empty()) {
        errors.push_back({"environment", 0, 0, it->first, err});
      }
    }
  }
}

std::string set_value(settings& s, std::string_view path, std::string_view value) {
  for (const auto& f : scalar_fields()) {
    if (f.path == path) {
      return f.set(s, value);
    }
  }
  for (const auto& f : list_fields()) {
    if (f.path == path) {
      f.clear(s);
      while (!value.empty()) {
        const auto comma = value.find(',');
        const auto item = value.substr(0, comma);
        if (auto err = f.add(s, item); !err.empty()) {
          return err;
        }
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
      }
      return "";
    }
  }
  return "unknown key";
}

std::vector<std::string> scalar_keys() {
  std::vector<std::string> out;
  for (const auto& f : scalar_fields()) {
    out.emplace_back(f.path);
  }
  for (const auto& f : list_fields()) {
    out.emplace_back(f.path);
  }
  return out;
}

std::vector<std::string> keep_restart_only(const settings& running, settings& loaded) {
  std::vector<std::string> kept;
  for (const auto& f : scalar_fields()) {
    if (!f.restart) {
      continue;
    }
    auto now = f.get(running);
    auto next = f.get(loaded);
    if (now == next) {
      continue;
    }
    kept.push_back(fmt::format("{}: {} → {}", f.path, now, next));
    // Every getter prints what its setter reads back (unit-tested per key).
    if (const auto err = f.set(loaded, now); !err.empty()) {
      throw std::logic_error(fmt::format("{}: cannot keep the running value '{}': {}", f.path, now, err));
    }
  }
  // Lists and tables are compared and kept whole: listeners with their
  // PROXY protocol mode, name servers, port forwards (bound at start).
  const auto keep_whole = [&](std::string_view name, auto member) {
    if (running.*member != loaded.*member) {
      kept.emplace_back(name);
      loaded.*member = running.*member;
    }
  };
  keep_whole("listen", &settings::listen);
  keep_whole("port_forward", &settings::port_forward);
  if (running.dns.servers != loaded.dns.servers) {
    kept.emplace_back("dns.servers");
    loaded.dns.servers = running.dns.servers;
  }
  return kept;
}

std::vector<std::string> restart_only_changes(const settings& before, const settings& after) {
  auto copy = after;
  return keep_restart_only(before, copy);
}

namespace {

void put(YAML::Node& root, std::string_view path, const YAML::Node& value) {
  std::vector<std::string> keys;
  while (true) {
    const auto dot = path.find('.');
    keys.emplace_back(path.substr(0, dot));
    if (dot == std::string_view::npos) {
      break;
    }
    path.remove_prefix(dot + 1);
  }
  YAML::Node cur = root;
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    if (!cur[keys[i]]) {
      cur[keys[i]] = YAML::Node(YAML::NodeType::Map);  // attach before descending
    }
    YAML::Node next = cur[keys[i]];
    cur.reset(next);
  }
  cur[keys.back()] = value;
}

}  // namespace

std::string to_yaml(const settings& s) {
  YAML::Node root(YAML::NodeType::Map);
  {
    YAML::Node listen(YAML::NodeType::Sequence);
    for (const auto& l : s.listen) {
      if (l.proxy_protocol == proxy_protocol_mode::off) {
        listen.push_back(core::to_string(l.endpoint));
      } else {
        YAML::Node m;
        m["address"] = core::to_string(l.endpoint);
        m["proxy_protocol"] = l.proxy_protocol == proxy_protocol_mode::v1   ? "v1"
                              : l.proxy_protocol == proxy_protocol_mode::v2 ? "v2"
                                                                            : "any";
        listen.push_back(m);
      }
    }
    root["listen"] = listen;
  }
  for (const auto& f : scalar_fields()) {
    put(root, f.path, YAML::Node(f.get(s)));
  }
  {
    YAML::Node servers(YAML::NodeType::Sequence);
    for (const auto& e : s.dns.servers) {
      servers.push_back(core::to_string(e));
    }
    put(root, "dns.servers", servers);
  }
  YAML::Node users(YAML::NodeType::Sequence);
  for (const auto& u : s.users) {
    YAML::Node m;
    m["name"] = u.name;
    m["password"] = u.password;
    if (!u.groups.empty()) {
      m["groups"] = u.groups;
    }
    users.push_back(m);
  }
  root["users"] = users;
  YAML::Node rules(YAML::NodeType::Sequence);
  for (const auto& r : s.acl.rules) {
    YAML::Node m;
    m["name"] = r.name;
    m["action"] = r.act == policy::action::allow ? "allow" : "deny";
    auto list = [&](const char* key, std::vector<std::string> v) {
      if (!v.empty()) {
        m[key] = v;
      }
    };
    std::vector<std::string> v;
    for (const auto& c : r.src) {
      v.push_back(c.to_string());
    }
    list("src", v);
    list("users", r.users);
    v.clear();
    const bool any_dst = std::any_of(r.dst_domains.begin(), r.dst_domains.end(), [](const policy::domain_pattern& d) {
      return d.k == policy::domain_pattern::kind::any;
    });
    for (const auto& c : r.dst_cidrs) {
      if (!(any_dst && c.prefix == 0)) {  // "*" stands for itself and the two /0s it adds
        v.push_back(c.to_string());
      }
    }
    for (const auto& d : r.dst_domains) {
      v.push_back(d.to_string());
    }
    list("dst", v);
    v.clear();
    for (const auto& p : r.ports) {
      if (p.lo == 0 && p.hi == 65535) {
        v.emplace_back("*");
      } else {
        v.push_back(p.lo == p.hi ? std::to_string(p.lo) : std::to_string(p.lo) + "-" + std::to_string(p.hi));
      }
    }
    list("ports", v);
    if (r.commands != policy::command_bits::all) {
      v.clear();
      if ((r.commands & policy::command_bits::connect) != 0) {
        v.emplace_back("connect");
      }
      if ((r.commands & policy::command_bits::bind) != 0) {
        v.emplace_back("bind");
      }
      if ((r.commands & policy::command_bits::udp) != 0) {
        v.emplace_back("udp");
      }
      m["commands"] = v;
    }
    list("countries", r.countries);
    rules.push_back(m);
  }
  put(root, "acl.rules", rules);
  YAML::Node ups(YAML::NodeType::Map);
  for (const auto& [name, url] : s.upstreams) {
    ups[name] = url;
  }
  root["upstreams"] = ups;
  YAML::Node fwd(YAML::NodeType::Sequence);
  for (const auto& f : s.forwarding) {
    YAML::Node m;
    auto opt = [&](const char* key, const std::string& v) {
      if (!v.empty()) {
        m[key] = v;
      }
    };
    opt("match", f.match);
    if (f.upstream.size() == 1) {
      m["upstream"] = f.upstream.front();
    } else if (!f.upstream.empty()) {
      m["upstream"] = f.upstream;
    }
    opt("remote", f.remote);
    opt("redirect", f.redirect);
    for (const auto& [key, vec] : {std::pair<const char*, const std::vector<std::string>*>{"src", &f.src},
                                   {"users", &f.users}, {"dst", &f.dst}, {"countries", &f.countries}}) {
      if (!vec->empty()) {
        m[key] = *vec;
      }
    }
    opt("bind", f.bind);
    opt("prefer", f.prefer);
    fwd.push_back(m);
  }
  root["forwarding"] = fwd;
  {
    YAML::Node members(YAML::NodeType::Sequence);
    for (const auto& m : s.proxy_pool.members) {
      if (m.weight == 1) {
        members.push_back(m.url);
      } else {
        YAML::Node o;
        o["url"] = m.url;
        o["weight"] = m.weight;
        members.push_back(o);
      }
    }
    put(root, "proxy_pool.members", members);
  }
  YAML::Node pf(YAML::NodeType::Sequence);
  for (const auto& p : s.port_forward) {
    YAML::Node m;
    m["listen"] = core::to_string(p.listen);
    m["target"] = p.target;
    if (p.via.size() == 1) {
      m["via"] = p.via.front();
    } else if (!p.via.empty()) {
      m["via"] = p.via;
    }
    pf.push_back(m);
  }
  root["port_forward"] = pf;
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace cs::config
