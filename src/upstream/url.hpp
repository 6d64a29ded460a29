#pragma once
// Upstream proxy URLs: socks5://[user:pass@]host:port, socks4://, socks4a://,
// http://[user:pass@]host:port (CONNECT), direct://. A bare "host:port" is
// SOCKS5 (the seed's forwarding example writes upstreams that way).
// Pure; no I/O.

#include "core/address.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace cs::upstream {

enum class proxy_scheme : std::uint8_t { direct, socks5, socks4, socks4a, http };

struct proxy_url {
  proxy_scheme scheme = proxy_scheme::direct;
  core::target_address server;  ///< unused for direct
  std::string username;         ///< percent-decoded
  std::string password;
  bool has_credentials = false;

  /// The URL with the password replaced by "***" (for logs and the API).
  std::string redacted() const;
  friend bool operator==(const proxy_url&, const proxy_url&) = default;
};

std::string_view to_string(proxy_scheme s) noexcept;

/// Parses `text`. Usernames and passwords are percent-decoded and limited
/// to 255 bytes (what SOCKS5 can carry). Returns false with `error` set.
bool parse_proxy_url(std::string_view text, proxy_url& out, std::string* error = nullptr);

}  // namespace cs::upstream
