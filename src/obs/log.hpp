#pragma once
// Logging: text for terminals, JSON lines for machines. Each thread logs
// through its own spdlog logger into a sink that emits every record with a
// single write(2), so event-loop threads never share a lock to log.

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace cs::obs {

enum class log_format : std::uint8_t { text, json };

struct log_settings {
  spdlog::level::level_enum level = spdlog::level::info;
  log_format format = log_format::text;
  bool access_log = true;  ///< one record per session at info level
  int fd = 2;              ///< where records go (stderr)
};

/// Configures logging for the process. Call once, before starting threads.
void init_logging(const log_settings& settings);

/// Changes the level on every thread's logger (e.g. on reload).
void set_level(spdlog::level::level_enum level);

/// The calling thread's logger.
spdlog::logger& log();

/// Logs at info level whatever the configured level: start-up and shutdown
/// facts an operator (or a test harness) always needs, such as the bound
/// listen addresses, even with -q.
void notice(std::string_view message);

/// Maps -q / -v counts to a level: -q → warn, 0 → info, 1 → debug, ≥2 → trace.
spdlog::level::level_enum level_from_verbosity(int verbose, bool quiet) noexcept;

/// One record per finished session (the access log).
struct access_record {
  std::uint64_t session = 0;
  std::string client;          ///< "ip:port"
  std::string user;            ///< "" when unauthenticated
  std::string_view proto;      ///< "socks5", "socks4", "-"
  std::string_view command;    ///< "connect", "bind", "udp", "-"
  std::string target;          ///< as requested, "" if never parsed
  std::string dialled;         ///< address actually connected to, "" if none
  std::string route;           ///< "direct", upstream name, ...
  std::string rule;            ///< the ACL rule / built-in block that refused it, if any
  std::string_view result;     ///< short outcome ("ok", "refused", "handshake_timeout", ...)
  int reply = -1;              ///< SOCKS REP sent, -1 if none
  std::uint64_t bytes_up = 0;  ///< client → target
  std::uint64_t bytes_down = 0;
  std::chrono::microseconds duration{0};
};

/// Writes an access record at info level (text: key=value; JSON: fields).
void write_access(const access_record& r);

/// JSON string escaping (quotes not included).
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace cs::obs
