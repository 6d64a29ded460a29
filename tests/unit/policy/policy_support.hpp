#pragma once
// Helpers for the policy unit tests: building rules from SPEC text, request
// views, and the path of the test GeoIP databases (tests/data/geoip/, found
// relative to this file so no build-system variable is needed;
// $CS_TEST_DATA_DIR overrides).

#include "auth/user_store.hpp"
#include "policy/acl.hpp"
#include "policy/rule_spec.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

namespace cs::test::policy {

inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("CS_TEST_DATA_DIR"); env != nullptr && *env != '\0') {
    return std::filesystem::path(env);
  }
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "data";
}

inline std::string geoip_country_db() { return (data_dir() / "geoip" / "GeoLite2-Country-Test.mmdb").string(); }
inline std::string geoip_city_db() { return (data_dir() / "geoip" / "GeoLite2-City-Test.mmdb").string(); }

/// A rule from --allow/--deny SPEC text; fails the test on a parse error.
inline cs::policy::rule allow(std::string_view spec) {
  cs::policy::rule r;
  const auto err = cs::policy::parse_rule_spec(spec, cs::policy::action::allow, r);
  EXPECT_EQ(err, "") << "--allow " << spec;
  return r;
}

inline cs::policy::rule deny(std::string_view spec) {
  cs::policy::rule r;
  const auto err = cs::policy::parse_rule_spec(spec, cs::policy::action::block, r);
  EXPECT_EQ(err, "") << "--deny " << spec;
  return r;
}

/// A request to an IP target (IPv4 or IPv6 text).
inline cs::policy::request_view to_ip(const char* address, std::uint16_t port = 443,
                                      const char* client = "192.0.2.10") {
  cs::policy::request_view v;
  v.client = core::ip::make_address(client);
  v.address = core::ip::make_address(address);
  v.port = port;
  return v;
}

/// A request to a domain target; `resolved` is the candidate address after
/// DNS (nullopt: the first, pre-DNS evaluation). The name must already be
/// normalised, as the session does.
inline cs::policy::request_view to_name(std::string_view name, std::uint16_t port = 443,
                                        const char* resolved = nullptr, const char* client = "192.0.2.10") {
  cs::policy::request_view v;
  v.client = core::ip::make_address(client);
  v.domain = name;
  if (resolved != nullptr) {
    v.address = core::ip::make_address(resolved);
  }
  v.port = port;
  return v;
}

inline const char* verdict_name(cs::policy::decision::verdict v) {
  switch (v) {
    case cs::policy::decision::verdict::allow: return "allow";
    case cs::policy::decision::verdict::block: return "block";
    case cs::policy::decision::verdict::need_address: return "need_address";
  }
  return "?";
}

inline std::string describe(const cs::policy::decision& d) {
  return std::string(verdict_name(d.v)) + " by '" + std::string(d.by) + "'";
}

}  // namespace cs::test::policy
