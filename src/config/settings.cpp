#include "config/settings.hpp"

#include <sched.h>

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <thread>

namespace cs::config {

core::ip::tcp::endpoint default_listen_endpoint() {
  return {core::ip::make_address_v4("127.0.0.1"), 1080};
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
    snap->source.listen.push_back(default_listen_endpoint());
  }
  if (snap->source.workers == 0) {
    snap->source.workers = available_cores();
  }
  for (const auto& u : s.users) {
    if (u.name.size() > 255 || u.password.size() > 255) {
      throw std::invalid_argument("user '" + u.name.substr(0, 32) +
                                  "': SOCKS5 limits usernames and passwords to 255 bytes");
    }
  }
  snap->users = auth::user_store(s.users);
  return snap;
}

bool parse_duration(std::string_view text, std::chrono::milliseconds& out) {
  if (text.empty()) {
    return false;
  }
  double scale = 1000.0;  // bare numbers are seconds
  if (text.ends_with("ms")) {
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
  out = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(value * scale)));
  return true;
}

}  // namespace cs::config
