#pragma once
// Country of an IP address from a MaxMind DB (GeoLite2/GeoIP2 Country or
// City). Thread-safety: lookups on an open database are read-only and safe
// from any thread.

#include "core/address.hpp"

#include <array>
#include <memory>
#include <optional>
#include <string>

namespace cs::policy {

class geoip {
 public:
  /// Opens `path` (memory-mapped). Throws std::runtime_error naming the file
  /// and the reason on failure (configuration time only).
  explicit geoip(const std::string& path);
  ~geoip();
  geoip(const geoip&) = delete;
  geoip& operator=(const geoip&) = delete;

  /// ISO 3166-1 alpha-2 code ("GB") of the address' country, falling back to
  /// the registered country; nullopt when the database has no answer.
  std::optional<std::array<char, 2>> country(const core::ip::address& a) const noexcept;

  const std::string& path() const noexcept { return path_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string path_;
};

}  // namespace cs::policy
