#include "core/error.hpp"

#include <boost/asio/error.hpp>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

using cs::core::error_code;
using cs::core::reply_code;
using cs::core::socks_errc;
namespace err = boost::asio::error;

struct mapping {
  error_code ec;
  reply_code expected;
  const char* what;
};

TEST(ReplyCodeMapping, SuccessIsSucceeded) {
  EXPECT_EQ(cs::core::to_reply_code(error_code{}), reply_code::succeeded);
}

TEST(ReplyCodeMapping, EverySocksErrc) {
  const mapping table[] = {
      {socks_errc::bad_version, reply_code::general_failure, "bad_version"},
      {socks_errc::no_acceptable_method, reply_code::general_failure, "no_acceptable_method"},
      {socks_errc::auth_failed, reply_code::general_failure, "auth_failed"},
      {socks_errc::command_not_supported, reply_code::command_not_supported, "command_not_supported"},
      {socks_errc::address_type_not_supported, reply_code::address_type_not_supported,
       "address_type_not_supported"},
      {socks_errc::bad_domain, reply_code::general_failure, "bad_domain"},
      {socks_errc::field_too_long, reply_code::general_failure, "field_too_long"},
      {socks_errc::auth_required, reply_code::general_failure, "auth_required"},
      {socks_errc::not_allowed, reply_code::not_allowed, "not_allowed"},
      {socks_errc::limit_reached, reply_code::general_failure, "limit_reached"},
      {socks_errc::host_not_found, reply_code::host_unreachable, "host_not_found"},
      {socks_errc::dns_failure, reply_code::host_unreachable, "dns_failure"},
      {socks_errc::connect_timeout, reply_code::host_unreachable, "connect_timeout"},
      {socks_errc::handshake_timeout, reply_code::general_failure, "handshake_timeout"},
      {socks_errc::upstream_failure, reply_code::general_failure, "upstream_failure"},
      {socks_errc::general_failure, reply_code::general_failure, "general_failure"},
  };
  // The table must cover every enumerator (bad_version = 1 .. general_failure).
  std::set<int> seen;
  for (const auto& m : table) {
    EXPECT_EQ(cs::core::to_reply_code(m.ec), m.expected) << m.what;
    EXPECT_EQ(m.ec.category(), cs::core::socks_category()) << m.what;
    seen.insert(m.ec.value());
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(socks_errc::general_failure));
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), static_cast<int>(socks_errc::general_failure));
}

TEST(ReplyCodeMapping, SystemErrors) {
  const mapping table[] = {
      {err::connection_refused, reply_code::connection_refused, "connection_refused"},
      {err::network_unreachable, reply_code::network_unreachable, "network_unreachable"},
      {err::network_down, reply_code::network_unreachable, "network_down"},
      {err::host_unreachable, reply_code::host_unreachable, "host_unreachable"},
      {err::timed_out, reply_code::host_unreachable, "timed_out"},
      {err::host_not_found, reply_code::host_unreachable, "host_not_found (netdb)"},
      {err::host_not_found_try_again, reply_code::host_unreachable, "host_not_found_try_again"},
      {err::no_data, reply_code::host_unreachable, "no_data"},
      {err::address_family_not_supported, reply_code::address_type_not_supported, "address_family_not_supported"},
      {err::connection_reset, reply_code::general_failure, "connection_reset"},
      {err::connection_aborted, reply_code::general_failure, "connection_aborted"},
      {err::operation_aborted, reply_code::general_failure, "operation_aborted"},
      {err::access_denied, reply_code::general_failure, "access_denied"},
      {err::no_buffer_space, reply_code::general_failure, "no_buffer_space"},
      {err::eof, reply_code::general_failure, "eof (misc)"},
      {err::broken_pipe, reply_code::general_failure, "broken_pipe"},
  };
  for (const auto& m : table) {
    EXPECT_EQ(cs::core::to_reply_code(m.ec), m.expected) << m.what;
  }
}

TEST(ReplyCodeMapping, RawErrnoInSystemCategory) {
  // What a socket reports: the same mapping must hold for errno values.
  EXPECT_EQ(cs::core::to_reply_code(error_code(ECONNREFUSED, boost::system::system_category())),
            reply_code::connection_refused);
  EXPECT_EQ(cs::core::to_reply_code(error_code(ENETUNREACH, boost::system::system_category())),
            reply_code::network_unreachable);
  EXPECT_EQ(cs::core::to_reply_code(error_code(EHOSTUNREACH, boost::system::system_category())),
            reply_code::host_unreachable);
  EXPECT_EQ(cs::core::to_reply_code(error_code(ETIMEDOUT, boost::system::system_category())),
            reply_code::host_unreachable);
}

TEST(ReplyCodeMapping, UnknownSocksValueIsGeneralFailure) {
  EXPECT_EQ(cs::core::to_reply_code(error_code(9999, cs::core::socks_category())), reply_code::general_failure);
  EXPECT_EQ(cs::core::to_reply_code(error_code(0x7FFF, boost::system::system_category())),
            reply_code::general_failure);
}

TEST(Socks4Reply, Mapping) {
  EXPECT_EQ(cs::core::to_socks4_reply(reply_code::succeeded), cs::core::socks4_reply::granted);
  for (int rc = 1; rc <= 8; ++rc) {
    EXPECT_EQ(cs::core::to_socks4_reply(static_cast<reply_code>(rc)), cs::core::socks4_reply::rejected) << rc;
  }
  static_assert(cs::core::to_socks4_reply(reply_code::succeeded) == cs::core::socks4_reply::granted);
  EXPECT_EQ(static_cast<int>(cs::core::socks4_reply::granted), 0x5A);
  EXPECT_EQ(static_cast<int>(cs::core::socks4_reply::rejected), 0x5B);
}

TEST(ReplyName, EveryCodeHasADistinctName) {
  std::set<std::string> names;
  for (int rc = 0; rc <= 8; ++rc) {
    const auto n = cs::core::reply_name(static_cast<reply_code>(rc));
    EXPECT_NE(n, "unknown") << rc;
    names.emplace(n);
  }
  EXPECT_EQ(names.size(), 9u);
  EXPECT_EQ(cs::core::reply_name(reply_code::succeeded), "ok");
  EXPECT_EQ(cs::core::reply_name(reply_code::connection_refused), "refused");
  EXPECT_EQ(cs::core::reply_name(static_cast<reply_code>(0x42)), "unknown");
}

TEST(SocksCategory, NameAndMessages) {
  EXPECT_STREQ(cs::core::socks_category().name(), "socks");
  std::set<std::string> messages;
  for (int e = 1; e <= static_cast<int>(socks_errc::general_failure); ++e) {
    const auto m = error_code(static_cast<socks_errc>(e)).message();
    EXPECT_FALSE(m.empty());
    EXPECT_NE(m, "unknown socks error") << e;
    messages.insert(m);
  }
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(socks_errc::general_failure)) << "messages are distinct";
  EXPECT_EQ(error_code(9999, cs::core::socks_category()).message(), "unknown socks error");
  // is_error_code_enum: comparisons with the enum work.
  const error_code ec = socks_errc::not_allowed;
  EXPECT_EQ(ec, socks_errc::not_allowed);
  EXPECT_NE(ec, socks_errc::auth_failed);
}

}  // namespace
