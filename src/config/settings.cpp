#include "config/settings.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <cmath>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace cs::config {

// std::ifstream opens a directory without complaint and then reads nothing,
// which made a users file that is a directory look like an empty one.
std::string read_whole_file(const std::string& path, std::string& out) {
  const auto os_error = [] { return std::error_code(errno, std::generic_category()).message(); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return os_error();
  }
  std::string why;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    why = os_error();
  } else if (S_ISDIR(st.st_mode)) {
    why = std::error_code(EISDIR, std::generic_category()).message();
  }
  std::array<char, 16384> buf{};
  while (why.empty()) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out.append(buf.data(), static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      why = os_error();
    }
  }
  ::close(fd);
  return why;
}

unsigned available_cores() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) {
      return static_cast<unsigned>(n);
    }
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? hw : 1;
}

std::shared_ptr<const snapshot> compile(const settings& s, std::uint64_t generation) {
  auto snap = std::make_shared<snapshot>();
  snap->generation = generation;
  snap->source = s;
  if (snap->source.listen.empty()) {
    throw std::invalid_argument("listen: at least one address is needed");
  }
  // The relay's idle deadline is the configured tunnel idle timeout.
  snap->source.relay.idle_timeout = s.timeouts.idle;
  if (snap->source.workers == 0) {
    snap->source.workers = available_cores();
  }
  std::vector<auth::credential> users = s.users;
  if (!s.users_file.empty()) {
    std::string text;
    if (const auto why = read_whole_file(s.users_file, text); !why.empty()) {
      throw std::invalid_argument("users file '" + s.users_file + "': cannot be read (" + why + ")");
    }
    std::vector<std::string> errors;
    auto from_file = auth::parse_users_file(text, errors);
    if (!errors.empty()) {
      std::string all;
      for (const auto& e : errors) {
        all += "\n  " + s.users_file + ":" + e;
      }
      throw std::invalid_argument("users file has errors:" + all);
    }
    // Configuring a users file is how the operator asks for authentication;
    // one that names nobody would silently turn the proxy into an open one.
    // It is nearly always a mistake or a file caught mid-rewrite (`: > users`
    // then appending, a slow `cat new > users`), so it is refused like any
    // other bad file: at start-up the proxy does not start, on reload the
    // users already loaded keep serving. An open proxy is asked for by
    // removing users_file. With users from `users:`/--user authentication
    // stays on, and emptying the file is how its last user is revoked.
    if (from_file.empty()) {
      if (users.empty()) {
        throw std::invalid_argument("users file '" + s.users_file +
                                    "' names no user: refusing to run without authentication (remove "
                                    "users_file from the configuration to run an open proxy)");
      }
      snap->warnings.push_back("users file '" + s.users_file + "' names no user; only the " +
                               std::to_string(users.size()) + " user(s) from `users` or --user can log in");
    }
    users.insert(users.end(), from_file.begin(), from_file.end());
  }
  for (const auto& u : users) {
    if (u.name.empty() || u.name.size() > 255 ||
        (!auth::is_password_hash(u.password) && u.password.size() > 255)) {
      throw std::invalid_argument("user '" + u.name.substr(0, 32) +
                                  "': SOCKS5 needs a name of 1..255 bytes and a password of at most 255");
    }
  }
  snap->users = auth::user_store(users);
  if (snap->users.plaintext_count() > 0 && !s.users_file.empty()) {
    snap->warnings.push_back(std::to_string(snap->users.plaintext_count()) +
                             " user(s) have plain-text passwords; store argon2id hashes instead "
                             "(cleversocks passwd)");
  }
  if (!s.geoip_database.empty()) {
    try {
      snap->geoip = std::make_shared<policy::geoip>(s.geoip_database);
    } catch (const std::exception& e) {
      throw std::invalid_argument(e.what());
    }
  }
  for (std::size_t i = 0; i < s.acl.rules.size(); ++i) {
    const auto& r = s.acl.rules[i];
    if (!r.countries.empty() && !snap->geoip) {
      throw std::invalid_argument("rule '" + (r.name.empty() ? "rule " + std::to_string(i + 1) : r.name) +
                                  "' matches countries but no GeoIP database is configured");
    }
  }
  policy::acl_settings acl = s.acl;
  if (acl.builtin.local) {
    acl.local_addresses = policy::host_addresses();  // read again at every reload
  }
  snap->acl = policy::acl(std::move(acl), snap->geoip);

  std::vector<routing::member_spec> members = s.proxy_pool.members;
  if (!s.proxy_pool.source.empty()) {
    std::string text;
    if (const auto why = read_whole_file(s.proxy_pool.source, text); !why.empty()) {
      throw std::invalid_argument("proxy_pool.source '" + s.proxy_pool.source + "': cannot be read (" + why + ")");
    }
    std::vector<std::string> errors;
    auto from_file = routing::parse_pool_source(text, errors);
    for (const auto& e : errors) {
      snap->warnings.push_back("proxy_pool.source " + s.proxy_pool.source + ":" + e + " (skipped)");
    }
    members.insert(members.end(), from_file.begin(), from_file.end());
  }
  if (s.proxy_pool.enabled && members.empty()) {
    snap->warnings.push_back("proxy_pool is enabled but has no members: unmatched requests will fail");
  }
  snap->router = routing::router(s.forwarding, s.upstreams, s.proxy_pool, std::move(members), s.connect, snap->geoip,
                                 s.port_forward);

  auto& reg = obs::global_registry();
  for (const auto& r : snap->acl.settings().rules) {
    snap->acl_block_counters[r.name] = reg.acl_blocks.get(r.name);
  }
  for (std::string_view b : policy::acl::builtin_names()) {
    snap->acl_block_counters[b] = reg.acl_blocks.get(b);
  }
  snap->acl_block_counters["default"] = reg.acl_blocks.get("default");
  for (const auto* u : snap->users.all()) {
    snap->user_counters[u] = reg.user(u->name);
  }
  return snap;
}

obs::shared_counter* snapshot::acl_counter(std::string_view rule) const {
  const auto it = acl_block_counters.find(rule);
  return it != acl_block_counters.end() ? it->second : nullptr;
}

namespace {

// `text` in milliseconds: a number with an optional unit (bare numbers are
// seconds); "us" is accepted only when `micros` (fields kept in µs).
bool parse_duration_ms(std::string_view text, bool micros, double& ms) {
  if (text.empty()) {
    return false;
  }
  double scale = 1000.0;  // bare numbers are seconds
  if (micros && (text.ends_with("us") || text.ends_with("\u00b5s"))) {
    scale = 0.001;
    text.remove_suffix(text.ends_with("us") ? 2 : std::string_view("\u00b5s").size());
  } else if (text.ends_with("ms")) {
    scale = 1.0;
    text.remove_suffix(2);
  } else if (text.ends_with('s')) {
    text.remove_suffix(1);
  } else if (text.ends_with('m')) {
    scale = 60'000.0;
    text.remove_suffix(1);
  } else if (text.ends_with('h')) {
    scale = 3'600'000.0;
    text.remove_suffix(1);
  }
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(value) ||
      value < 0 || value * scale > 1e15) {
    return false;
  }
  ms = value * scale;
  return true;
}

}  // namespace

bool parse_duration(std::string_view text, std::chrono::milliseconds& out) {
  double ms = 0;
  if (!parse_duration_ms(text, false, ms)) {
    return false;
  }
  out = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
  return true;
}

bool parse_duration(std::string_view text, std::chrono::microseconds& out) {
  double ms = 0;
  if (!parse_duration_ms(text, true, ms)) {
    return false;
  }
  out = std::chrono::microseconds(static_cast<std::int64_t>(std::llround(ms * 1000.0)));
  return true;
}

}  // namespace cs::config
