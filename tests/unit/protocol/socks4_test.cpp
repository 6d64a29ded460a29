#include "protocol/socks4.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cs::protocol::socks4 {
inline bool operator==(const request& a, const request& b) {
  return a.cmd == b.cmd && a.dst == b.dst && a.userid == b.userid && a.socks4a == b.socks4a;
}
inline bool operator==(const reply& a, const reply& b) {
  return a.granted == b.granted && a.code == b.code && a.addr == b.addr && a.port == b.port;
}
}  // namespace cs::protocol::socks4

namespace {

using namespace cs;
using namespace cs::test;
namespace s4 = cs::protocol::socks4;
using cs::core::socks_errc;
using cs::protocol::parse_status;

const auto req = [](core::byte_view in, s4::request& o) { return s4::parse_request(in, o); };
const auto rep = [](core::byte_view in, s4::reply& o) { return s4::parse_reply(in, o); };

core::target_address v4(const char* a, std::uint16_t port) { return {core::ip::make_address(a), port}; }
core::target_address dom(std::string_view d, std::uint16_t port) {
  return {core::domain_name(d.data(), d.size()), port};
}

TEST(Socks4Request, ParsegrindConnectNoUser) {
  const auto r = parsegrind<s4::request>(b({0x04, 0x01, 0x00, 0x50, 93, 184, 216, 34, 0x00}), req);
  EXPECT_EQ(r.cmd, s4::command::connect);
  EXPECT_EQ(r.dst, v4("93.184.216.34", 80));
  EXPECT_TRUE(r.userid.empty());
  EXPECT_FALSE(r.socks4a);
}

TEST(Socks4Request, ParsegrindBindWithUser) {
  const auto r = parsegrind<s4::request>(cat({b({0x04, 0x02, 0x1F, 0x90, 10, 0, 0, 7}), str_bytes("alice"), b({0})}),
                                         req);
  EXPECT_EQ(r.cmd, s4::command::bind);
  EXPECT_EQ(r.dst, v4("10.0.0.7", 8080));
  EXPECT_EQ(r.userid, "alice");
}

TEST(Socks4Request, ParsegrindSocks4a) {
  const auto r = parsegrind<s4::request>(
      cat({b({0x04, 0x01, 0x01, 0xBB, 0, 0, 0, 1}), str_bytes("bob"), b({0}), str_bytes("example.com"), b({0})}),
      req);
  EXPECT_TRUE(r.socks4a);
  EXPECT_EQ(r.dst, dom("example.com", 443));
  EXPECT_EQ(r.userid, "bob");
}

TEST(Socks4Request, ParsegrindSocks4aEmptyUser) {
  const auto r = parsegrind<s4::request>(cat({b({0x04, 0x01, 0, 80, 0, 0, 0, 255, 0}), str_bytes("h"), b({0})}), req);
  EXPECT_TRUE(r.socks4a);
  EXPECT_EQ(r.dst, dom("h", 80));
}

TEST(Socks4Request, ZeroAddressIsNotSocks4a) {
  // 0.0.0.0 (x == 0) is a plain SOCKS4 request to 0.0.0.0, not a 4a marker.
  const auto r = parsegrind<s4::request>(b({0x04, 0x01, 0, 80, 0, 0, 0, 0, 0}), req);
  EXPECT_FALSE(r.socks4a);
  EXPECT_EQ(r.dst, v4("0.0.0.0", 80));
  // 0.0.1.1 is not 0.0.0.x either.
  const auto r2 = parsegrind<s4::request>(b({0x04, 0x01, 0, 80, 0, 0, 1, 1, 0}), req);
  EXPECT_FALSE(r2.socks4a);
}

TEST(Socks4Request, UseridAtExactly255IsAccepted) {
  const std::string u(255, 'u');
  const auto r = parsegrind<s4::request>(cat({b({0x04, 0x01, 0, 80, 1, 2, 3, 4}), str_bytes(u), b({0})}), req);
  EXPECT_EQ(str(r.userid), u);
}

TEST(Socks4Request, UseridOf256WithoutNulIsTooLong) {
  // Bytes 8..263 are 256 non-NUL bytes: once the 256th is visible, the cap
  // (255 + NUL) cannot be met.
  const bytes in = cat({b({0x04, 0x01, 0, 80, 1, 2, 3, 4}), bytes(256, 'u'), b({0})});
  expect_error_at<s4::request>(in, 8 + 255, socks_errc::field_too_long, req);
}

TEST(Socks4Request, HostnameAtExactly255IsAccepted) {
  const std::string u(255, 'u');
  const std::string h(255, 'h');
  const bytes msg = cat({b({0x04, 0x01, 0, 80, 0, 0, 0, 9}), str_bytes(u), b({0}), str_bytes(h), b({0})});
  ASSERT_EQ(msg.size(), s4::max_request_size);
  const auto r = parsegrind<s4::request>(msg, req);
  EXPECT_EQ(r.dst, dom(h, 80));
  EXPECT_EQ(str(r.userid), u);
}

TEST(Socks4Request, HostnameOf256WithoutNulIsTooLong) {
  const bytes in = cat({b({0x04, 0x01, 0, 80, 0, 0, 0, 1}), str_bytes("me"), b({0}), bytes(256, 'h'), b({0})});
  expect_error_at<s4::request>(in, 11 + 255, socks_errc::field_too_long, req);
}

TEST(Socks4Request, EmptySocks4aHostnameIsBadDomain) {
  expect_error_at<s4::request>(b({0x04, 0x01, 0, 80, 0, 0, 0, 1, 'u', 0, 0}), 10, socks_errc::bad_domain, req);
  expect_error_at<s4::request>(b({0x04, 0x01, 0, 80, 0, 0, 0, 1, 0, 0}), 9, socks_errc::bad_domain, req);
}

TEST(Socks4Request, BadVersionAndCommand) {
  for (int v : {0x05, 0x00, 0x03}) {
    expect_error_at<s4::request>(b({v, 0x01, 0, 80, 1, 2, 3, 4, 0}), 0, socks_errc::bad_version, req);
  }
  for (int cd : {0x00, 0x03, 0xFF}) {
    expect_error_at<s4::request>(b({0x04, cd, 0, 80, 1, 2, 3, 4, 0}), 1, socks_errc::command_not_supported, req);
  }
}

TEST(Socks4Request, EncodeSocks4) {
  expect_encodes(cat({b({0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4}), str_bytes("id"), b({0})}), [](core::byte_span o) {
    return s4::encode_request(s4::command::connect, v4("1.2.3.4", 80), "id", o);
  });
  expect_encodes(b({0x04, 0x02, 0xFF, 0xFF, 5, 6, 7, 8, 0}), [](core::byte_span o) {
    return s4::encode_request(s4::command::bind, {core::ip::make_address("::ffff:5.6.7.8"), 65535}, "", o);
  });
}

TEST(Socks4Request, EncodeSocks4a) {
  expect_encodes(cat({b({0x04, 0x01, 0x01, 0xBB, 0, 0, 0, 1}), str_bytes("u"), b({0}), str_bytes("host.example"),
                      b({0})}),
                 [](core::byte_span o) { return s4::encode_request(s4::command::connect, dom("host.example", 443), "u", o); });
}

TEST(Socks4Request, EncodeRefusals) {
  std::array<std::uint8_t, 1024> out{};
  EXPECT_EQ(s4::encode_request(s4::command::connect, {core::ip::make_address("::1"), 80}, "", out), 0u)
      << "IPv6 is not expressible in SOCKS4";
  EXPECT_EQ(s4::encode_request(s4::command::connect, dom("", 80), "", out), 0u) << "empty hostname";
  EXPECT_EQ(s4::encode_request(s4::command::connect, v4("1.2.3.4", 80), std::string(256, 'u'), out), 0u);
  EXPECT_EQ(s4::encode_request(s4::command::connect, v4("1.2.3.4", 80), std::string("a\0b", 3), out), 0u)
      << "a NUL would end USERID early";
  EXPECT_EQ(s4::encode_request(s4::command::connect, v4("1.2.3.4", 80), std::string(255, 'u'), out), 8u + 256u);
}

TEST(Socks4Request, RoundTrip) {
  const std::vector<std::pair<core::target_address, std::string>> cases{
      {v4("1.2.3.4", 80), ""},
      {v4("255.255.255.255", 65535), std::string(255, 'u')},
      {dom("example.org", 443), "user"},
      {dom(std::string(255, 'h'), 1), std::string(255, 'u')},
      {dom("x", 0), ""}};
  for (auto cmd : {s4::command::connect, s4::command::bind}) {
    for (const auto& [t, id] : cases) {
      std::array<std::uint8_t, s4::max_request_size> out{};
      const auto n = s4::encode_request(cmd, t, id, out);
      ASSERT_GT(n, 0u);
      const auto r = parsegrind<s4::request>(bytes(out.begin(), out.begin() + static_cast<long>(n)), req);
      EXPECT_EQ(r.cmd, cmd);
      EXPECT_EQ(r.dst, t);
      EXPECT_EQ(std::string(r.userid.data(), r.userid.size()), id);
      EXPECT_EQ(r.socks4a, t.is_domain());
    }
  }
}

TEST(Socks4Reply, Encode) {
  expect_encodes(b({0x00, 0x5A, 0x04, 0x38, 127, 0, 0, 1}), [](core::byte_span o) {
    return s4::encode_reply(core::socks4_reply::granted, core::ip::make_address_v4("127.0.0.1"), 1080, o);
  });
  expect_encodes(b({0x00, 0x5B, 0, 0, 0, 0, 0, 0}), [](core::byte_span o) {
    return s4::encode_reply(core::socks4_reply::rejected, core::ip::address_v4::any(), 0, o);
  });
}

TEST(Socks4Reply, ParsegrindAndRoundTrip) {
  auto r = parsegrind<s4::reply>(b({0x00, 0x5A, 0x00, 0x50, 1, 2, 3, 4}), rep);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.code, 0x5A);
  EXPECT_EQ(r.addr, core::ip::make_address_v4("1.2.3.4"));
  EXPECT_EQ(r.port, 80);
  for (int cd : {0x5B, 0x5C, 0x5D, 0x00}) {
    r = parsegrind<s4::reply>(b({0x00, cd, 0, 0, 0, 0, 0, 0}), rep);
    EXPECT_FALSE(r.granted);
    EXPECT_EQ(r.code, cd);
  }
  std::array<std::uint8_t, s4::reply_size> out{};
  ASSERT_EQ(s4::encode_reply(core::socks4_reply::granted, core::ip::make_address_v4("9.8.7.6"), 54321, out), 8u);
  r = parsegrind<s4::reply>(bytes(out.begin(), out.end()), rep);
  EXPECT_TRUE(r.granted);
  EXPECT_EQ(r.addr, core::ip::make_address_v4("9.8.7.6"));
  EXPECT_EQ(r.port, 54321);
}

TEST(Socks4Reply, BadVersion) {
  for (int vn : {0x04, 0x05, 0x01}) {
    expect_error_at<s4::reply>(b({vn, 0x5A, 0, 0, 0, 0, 0, 0}), 0, socks_errc::bad_version, rep);
  }
}

}  // namespace
