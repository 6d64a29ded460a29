#include "protocol/socks5.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cs::protocol::socks5 {
// Value equality for the parse outputs (tests only; found by ADL).
inline bool operator==(const greeting& a, const greeting& b) { return a.methods == b.methods; }
inline bool operator==(const auth_request& a, const auth_request& b) {
  return a.username == b.username && a.password == b.password;
}
inline bool operator==(const request& a, const request& b) { return a.cmd == b.cmd && a.dst == b.dst; }
inline bool operator==(const udp_header& a, const udp_header& b) { return a.frag == b.frag && a.dst == b.dst; }
inline bool operator==(const reply& a, const reply& b) { return a.rep == b.rep && a.bnd == b.bnd; }
}  // namespace cs::protocol::socks5

namespace {

using namespace cs;
using namespace cs::test;
namespace s5 = cs::protocol::socks5;
using cs::core::socks_errc;
using cs::protocol::parse_status;

const auto greet = [](core::byte_view in, s5::greeting& o) { return s5::parse_greeting(in, o); };
const auto auth = [](core::byte_view in, s5::auth_request& o) { return s5::parse_auth_request(in, o); };
const auto req = [](core::byte_view in, s5::request& o) { return s5::parse_request(in, o); };
const auto udp = [](core::byte_view in, s5::udp_header& o) { return s5::parse_udp_header(in, o); };
const auto rep = [](core::byte_view in, s5::reply& o) { return s5::parse_reply(in, o); };
const auto msel = [](core::byte_view in, s5::method& o) { return s5::parse_method_selection(in, o); };
struct no_out {
  bool operator==(const no_out&) const = default;
};
const auto astat = [](core::byte_view in, no_out&) { return s5::parse_auth_status(in); };

core::target_address v4(const char* a, std::uint16_t port) { return {core::ip::make_address(a), port}; }
core::target_address dom(std::string_view d, std::uint16_t port) {
  return {core::domain_name(d.data(), d.size()), port};
}

// ------------------------------------------------------------------ greeting

TEST(Socks5Greeting, ParsegrindOneMethod) {
  const auto g = parsegrind<s5::greeting>(b({0x05, 0x01, 0x00}), greet);
  EXPECT_TRUE(g.offers(s5::method::no_auth));
  EXPECT_FALSE(g.offers(s5::method::user_pass));
  EXPECT_EQ(g.methods.count(), 1u);
}

TEST(Socks5Greeting, ParsegrindTwoMethods) {
  const auto g = parsegrind<s5::greeting>(b({0x05, 0x02, 0x00, 0x02}), greet);
  EXPECT_TRUE(g.offers(s5::method::no_auth));
  EXPECT_TRUE(g.offers(s5::method::user_pass));
  EXPECT_EQ(g.methods.count(), 2u);
}

TEST(Socks5Greeting, ParsegrindAll255Methods) {
  bytes msg = b({0x05, 0xFF});
  for (int m = 0; m < 255; ++m) {
    msg.push_back(static_cast<std::uint8_t>(m));
  }
  ASSERT_EQ(msg.size(), s5::max_greeting_size);
  const auto g = parsegrind<s5::greeting>(msg, greet);
  EXPECT_EQ(g.methods.count(), 255u);
  EXPECT_FALSE(g.methods.test(0xFF));
}

TEST(Socks5Greeting, DuplicateMethodsCountOnce) {
  const auto g = parsegrind<s5::greeting>(b({0x05, 0x03, 0x02, 0x02, 0x02}), greet);
  EXPECT_EQ(g.methods.count(), 1u);
  EXPECT_TRUE(g.offers(s5::method::user_pass));
}

// NMETHODS = 0 is documented to parse with no method offered (the session
// answers 05 FF); it must not read past the two bytes.
TEST(Socks5Greeting, ZeroMethodsParsesWithNothingOffered) {
  const auto g = parsegrind<s5::greeting>(b({0x05, 0x00}), greet);
  EXPECT_TRUE(g.methods.none());
}

TEST(Socks5Greeting, BadVersionIsAnErrorAtTheFirstByte) {
  for (int v : {0x00, 0x01, 0x04, 0x06, 0xFF}) {
    expect_error_at<s5::greeting>(b({v, 0x01, 0x00}), 0, socks_errc::bad_version, greet);
  }
}

TEST(Socks5Greeting, ReusedOutputIsReset) {
  s5::greeting g;
  ASSERT_TRUE(s5::parse_greeting(view(b({0x05, 0x02, 0x00, 0x02})), g).is_done());
  ASSERT_TRUE(s5::parse_greeting(view(b({0x05, 0x01, 0x80})), g).is_done());
  EXPECT_EQ(g.methods.count(), 1u);
  EXPECT_TRUE(g.methods.test(0x80));
}

// ------------------------------------------------------------------ RFC 1929

TEST(Socks5Auth, ParsegrindTypical) {
  const auto a = parsegrind<s5::auth_request>(cat({b({0x01, 4}), str_bytes("user"), b({6}), str_bytes("secret")}),
                                              auth);
  EXPECT_EQ(a.username, "user");
  EXPECT_EQ(a.password, "secret");
}

TEST(Socks5Auth, ParsegrindMaximumLengths) {
  const std::string u(255, 'u');
  const std::string p(255, 'p');
  const bytes msg = cat({b({0x01, 255}), str_bytes(u), b({255}), str_bytes(p)});
  ASSERT_EQ(msg.size(), s5::max_auth_request_size);
  const auto a = parsegrind<s5::auth_request>(msg, auth);
  EXPECT_EQ(str(a.username), u);
  EXPECT_EQ(str(a.password), p);
}

TEST(Socks5Auth, ParsegrindZeroLengths) {
  auto a = parsegrind<s5::auth_request>(b({0x01, 0, 0}), auth);
  EXPECT_TRUE(a.username.empty());
  EXPECT_TRUE(a.password.empty());
  a = parsegrind<s5::auth_request>(cat({b({0x01, 1}), str_bytes("u"), b({0})}), auth);
  EXPECT_EQ(a.username, "u");
  EXPECT_TRUE(a.password.empty());
  a = parsegrind<s5::auth_request>(cat({b({0x01, 0, 1}), str_bytes("p")}), auth);
  EXPECT_TRUE(a.username.empty());
  EXPECT_EQ(a.password, "p");
}

TEST(Socks5Auth, BinaryBytesKept) {
  const auto a = parsegrind<s5::auth_request>(b({0x01, 2, 0x00, 0xFF, 2, 0xFF, 0x00}), auth);
  EXPECT_EQ(str(a.username), std::string("\x00\xFF", 2));
  EXPECT_EQ(str(a.password), std::string("\xFF\x00", 2));
}

TEST(Socks5Auth, BadVersion) {
  // 0x05 is what a client sends when it skips authentication and goes
  // straight to a request.
  for (int v : {0x00, 0x02, 0x05}) {
    expect_error_at<s5::auth_request>(b({v, 1, 'u', 1, 'p'}), 0, socks_errc::bad_version, auth);
  }
}

TEST(Socks5Auth, EncodeStatus) {
  expect_encodes(b({0x01, 0x00}), [](core::byte_span o) { return s5::encode_auth_status(true, o); });
  expect_encodes(b({0x01, 0x01}), [](core::byte_span o) { return s5::encode_auth_status(false, o); });
}

// ------------------------------------------------------------------ request

TEST(Socks5Request, ParsegrindIPv4Connect) {
  const auto r = parsegrind<s5::request>(b({0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x1F, 0x90}), req);
  EXPECT_EQ(r.cmd, s5::command::connect);
  EXPECT_EQ(r.dst, v4("127.0.0.1", 8080));
}

TEST(Socks5Request, ParsegrindIPv6Bind) {
  const auto r = parsegrind<s5::request>(
      b({0x05, 0x02, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x50}), req);
  EXPECT_EQ(r.cmd, s5::command::bind);
  EXPECT_EQ(r.dst, (core::target_address{core::ip::make_address("2001:db8::1"), 80}));
}

TEST(Socks5Request, ParsegrindDomainUdpAssociate) {
  const auto r = parsegrind<s5::request>(
      cat({b({0x05, 0x03, 0x00, 0x03, 11}), str_bytes("example.com"), b({0x01, 0xBB})}), req);
  EXPECT_EQ(r.cmd, s5::command::udp_associate);
  EXPECT_EQ(r.dst, dom("example.com", 443));
  EXPECT_TRUE(r.dst.is_domain());
}

TEST(Socks5Request, ParsegrindMaxDomainAndPortExtremes) {
  const std::string d(255, 'a');
  const bytes msg = cat({b({0x05, 0x01, 0x00, 0x03, 255}), str_bytes(d), b({0xFF, 0xFF})});
  ASSERT_EQ(msg.size(), s5::max_request_size);
  auto r = parsegrind<s5::request>(msg, req);
  EXPECT_EQ(r.dst, dom(d, 65535));
  r = parsegrind<s5::request>(b({0x05, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0}), req);
  EXPECT_EQ(r.dst, v4("0.0.0.0", 0));
}

TEST(Socks5Request, ReservedByteIsIgnored) {
  const auto r = parsegrind<s5::request>(b({0x05, 0x01, 0x7F, 0x01, 10, 0, 0, 1, 0, 22}), req);
  EXPECT_EQ(r.dst, v4("10.0.0.1", 22));
}

TEST(Socks5Request, MappedIPv6IsKeptAsSent) {
  const auto r = parsegrind<s5::request>(
      b({0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4, 0, 80}), req);
  ASSERT_NE(r.dst.ip_address(), nullptr);
  EXPECT_TRUE(r.dst.ip_address()->is_v6());
  EXPECT_EQ(core::unmap(*r.dst.ip_address()), core::ip::make_address("1.2.3.4"));
}

TEST(Socks5Request, BadVersion) {
  for (int v : {0x04, 0x00, 0x01}) {
    expect_error_at<s5::request>(b({v, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80}), 0, socks_errc::bad_version, req);
  }
}

TEST(Socks5Request, UnknownCommandIsAnErrorAtCmd) {
  for (int cmd : {0x00, 0x04, 0x05, 0x80, 0xFF}) {
    expect_error_at<s5::request>(b({0x05, cmd, 0x00, 0x01, 1, 2, 3, 4, 0, 80}), 1,
                                 socks_errc::command_not_supported, req);
  }
}

TEST(Socks5Request, UnknownAtypIsAnErrorAsSoonAsSeen) {
  for (int at : {0x00, 0x02, 0x05, 0xFF}) {
    expect_error_at<s5::request>(b({0x05, 0x01, 0x00, at, 1, 2, 3, 4, 0, 80}), 3,
                                 socks_errc::address_type_not_supported, req);
  }
}

TEST(Socks5Request, EmptyDomainIsAnErrorAtTheLengthByte) {
  expect_error_at<s5::request>(b({0x05, 0x01, 0x00, 0x03, 0x00, 0, 80}), 4, socks_errc::bad_domain, req);
}

TEST(Socks5Request, NulInsideDomainIsAnErrorAsSoonAsVisible) {
  // "ab\0cd": the NUL is at index 5 + 2 = 7.
  expect_error_at<s5::request>(cat({b({0x05, 0x01, 0x00, 0x03, 5}), b({'a', 'b', 0, 'c', 'd'}), b({0, 80})}), 7,
                               socks_errc::bad_domain, req);
  // Leading and trailing NUL.
  expect_error_at<s5::request>(b({0x05, 0x01, 0x00, 0x03, 3, 0, 'a', 'b', 0, 80}), 5, socks_errc::bad_domain, req);
  expect_error_at<s5::request>(b({0x05, 0x01, 0x00, 0x03, 3, 'a', 'b', 0, 0, 80}), 7, socks_errc::bad_domain, req);
}

TEST(Socks5Request, NulInPortBytesIsFine) {
  const auto r = parsegrind<s5::request>(b({0x05, 0x01, 0x00, 0x03, 1, 'x', 0x00, 0x00}), req);
  EXPECT_EQ(r.dst, dom("x", 0));
}

// ------------------------------------------------------------------ reply (server side encoder)

TEST(Socks5Reply, EncodeIPv4) {
  expect_encodes(b({0x05, 0x00, 0x00, 0x01, 192, 168, 1, 2, 0x04, 0x38}), [](core::byte_span o) {
    return s5::encode_reply(core::reply_code::succeeded, core::ip::make_address("192.168.1.2"), 1080, o);
  });
}

TEST(Socks5Reply, EncodeIPv6) {
  expect_encodes(b({0x05, 0x05, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xFF,
                    0xFE}),
                 [](core::byte_span o) {
                   return s5::encode_reply(core::reply_code::connection_refused,
                                           core::ip::make_address("2001:db8::2"), 65534, o);
                 });
}

TEST(Socks5Reply, EncodeMappedBndIsWrittenAsIPv4) {
  expect_encodes(b({0x05, 0x00, 0x00, 0x01, 10, 1, 2, 3, 0x00, 0x50}), [](core::byte_span o) {
    return s5::encode_reply(core::reply_code::succeeded, core::ip::make_address("::ffff:10.1.2.3"), 80, o);
  });
}

TEST(Socks5Reply, EncodeUnspecifiedAndEveryCode) {
  for (int code = 0; code <= 8; ++code) {
    expect_encodes(b({0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0}), [code](core::byte_span o) {
      return s5::encode_reply(static_cast<core::reply_code>(code), core::ip::address_v4::any(), 0, o);
    });
  }
}

TEST(Socks5Reply, ParsegrindClientSide) {
  auto r = parsegrind<s5::reply>(b({0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0x12, 0x34}), rep);
  EXPECT_EQ(r.rep, core::reply_code::succeeded);
  EXPECT_EQ(r.bnd, v4("1.2.3.4", 0x1234));
  r = parsegrind<s5::reply>(b({0x05, 0x04, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}), rep);
  EXPECT_EQ(r.rep, core::reply_code::host_unreachable);
  EXPECT_EQ(r.bnd, (core::target_address{core::ip::make_address("::1"), 1}));
  r = parsegrind<s5::reply>(cat({b({0x05, 0x00, 0x00, 0x03, 4}), str_bytes("host"), b({0, 1})}), rep);
  EXPECT_EQ(r.bnd, dom("host", 1));
  // A REP outside the RFC's table is still a well-formed reply.
  r = parsegrind<s5::reply>(b({0x05, 0x42, 0x00, 0x01, 0, 0, 0, 0, 0, 0}), rep);
  EXPECT_EQ(static_cast<int>(r.rep), 0x42);
}

TEST(Socks5Reply, ClientSideErrors) {
  expect_error_at<s5::reply>(b({0x04, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}), 0, socks_errc::bad_version, rep);
  expect_error_at<s5::reply>(b({0x05, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0}), 3,
                             socks_errc::address_type_not_supported, rep);
  expect_error_at<s5::reply>(b({0x05, 0x00, 0x00, 0x03, 0, 0, 0}), 4, socks_errc::bad_domain, rep);
  expect_error_at<s5::reply>(b({0x05, 0x00, 0x00, 0x03, 2, 'a', 0, 0, 0}), 6, socks_errc::bad_domain, rep);
}

// ------------------------------------------------------------------ UDP header

TEST(Socks5Udp, ParsegrindIPv4) {
  const auto h = parsegrind<s5::udp_header>(b({0x00, 0x00, 0x00, 0x01, 8, 8, 8, 8, 0x00, 0x35}), udp);
  EXPECT_EQ(h.frag, 0);
  EXPECT_EQ(h.dst, v4("8.8.8.8", 53));
}

TEST(Socks5Udp, ParsegrindDomainWithFrag) {
  const auto h = parsegrind<s5::udp_header>(cat({b({0x00, 0x00, 0x07, 0x03, 3}), str_bytes("a.b"), b({0, 53})}), udp);
  EXPECT_EQ(h.frag, 7);
  EXPECT_EQ(h.dst, dom("a.b", 53));
}

TEST(Socks5Udp, ParsegrindIPv6) {
  const auto h = parsegrind<s5::udp_header>(
      b({0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x35}), udp);
  EXPECT_EQ(h.dst, (core::target_address{core::ip::make_address("::1"), 53}));
}

TEST(Socks5Udp, TruncatedHeaderNeverDone) {
  // A datagram is complete: need_more means truncated. No truncation of a
  // valid header may be reported as done (or as an error).
  const bytes full = cat({b({0x00, 0x00, 0x00, 0x03, 9}), str_bytes("localhost"), b({0x13, 0x88})});
  for (std::size_t k = 0; k < full.size(); ++k) {
    s5::udp_header h;
    const auto r = s5::parse_udp_header(view(full, k), h);
    EXPECT_EQ(r.status, parse_status::need_more) << k;
  }
}

TEST(Socks5Udp, PayloadFollowsHeader) {
  const bytes dgram = b({0x00, 0x00, 0x00, 0x01, 1, 1, 1, 1, 0, 53, 0xDE, 0xAD, 0xBE, 0xEF});
  s5::udp_header h;
  const auto r = s5::parse_udp_header(view(dgram), h);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(r.consumed, 10u);
}

TEST(Socks5Udp, Errors) {
  expect_error_at<s5::udp_header>(b({0x00, 0x00, 0x00, 0x09, 1, 1, 1, 1, 0, 53}), 3,
                                  socks_errc::address_type_not_supported, udp);
  expect_error_at<s5::udp_header>(b({0x00, 0x00, 0x00, 0x03, 0, 0, 53}), 4, socks_errc::bad_domain, udp);
  expect_error_at<s5::udp_header>(b({0x00, 0x00, 0x00, 0x03, 2, 0, 'a', 0, 53}), 5, socks_errc::bad_domain, udp);
}

TEST(Socks5Udp, EncodeEachAddressType) {
  expect_encodes(b({0, 0, 0, 0x01, 9, 9, 9, 9, 0x00, 0x35}),
                 [](core::byte_span o) { return s5::encode_udp_header(v4("9.9.9.9", 53), o); });
  expect_encodes(b({0, 0, 0, 0x01, 9, 9, 9, 9, 0x00, 0x35}), [](core::byte_span o) {
    return s5::encode_udp_header({core::ip::make_address("::ffff:9.9.9.9"), 53}, o);
  });
  expect_encodes(cat({b({0, 0, 0, 0x03, 7}), str_bytes("dns.foo"), b({0x00, 0x35})}),
                 [](core::byte_span o) { return s5::encode_udp_header(dom("dns.foo", 53), o); });
  expect_encodes(b({0, 0, 0, 0x04, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x35}),
                 [](core::byte_span o) { return s5::encode_udp_header({core::ip::make_address("fe80::1"), 53}, o); });
}

TEST(Socks5Udp, EncodeEmptyDomainRefused) {
  std::array<std::uint8_t, 64> out{};
  EXPECT_EQ(s5::encode_udp_header(dom("", 53), out), 0u);
}

// ------------------------------------------------------------------ client side

TEST(Socks5Client, EncodeGreeting) {
  expect_encodes(b({0x05, 0x01, 0x00}), [](core::byte_span o) { return s5::encode_greeting(true, false, o); });
  expect_encodes(b({0x05, 0x01, 0x02}), [](core::byte_span o) { return s5::encode_greeting(false, true, o); });
  expect_encodes(b({0x05, 0x02, 0x00, 0x02}), [](core::byte_span o) { return s5::encode_greeting(true, true, o); });
  std::array<std::uint8_t, 16> out{};
  EXPECT_EQ(s5::encode_greeting(false, false, out), 0u) << "a greeting with no method is not sent";
}

TEST(Socks5Client, EncodeGreetingRoundTrip) {
  std::array<std::uint8_t, 16> out{};
  const auto n = s5::encode_greeting(true, true, out);
  s5::greeting g;
  const auto r = s5::parse_greeting(core::byte_view(out.data(), n), g);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(r.consumed, n);
  EXPECT_TRUE(g.offers(s5::method::no_auth));
  EXPECT_TRUE(g.offers(s5::method::user_pass));
}

TEST(Socks5Client, MethodSelection) {
  for (int m : {0x00, 0x01, 0x02, 0x80, 0xFF}) {
    const auto got = parsegrind<s5::method>(b({0x05, m}), msel);
    EXPECT_EQ(static_cast<int>(got), m);
  }
  expect_error_at<s5::method>(b({0x01, 0x00}), 0, socks_errc::bad_version, msel);
  expect_encodes(b({0x05, 0x02}), [](core::byte_span o) { return s5::encode_method_selection(s5::method::user_pass, o); });
  expect_encodes(b({0x05, 0xFF}),
                 [](core::byte_span o) { return s5::encode_method_selection(s5::method::no_acceptable, o); });
}

TEST(Socks5Client, AuthStatus) {
  parsegrind<no_out>(b({0x01, 0x00}), astat);
  for (int st : {0x01, 0x02, 0xFF}) {
    expect_error_at<no_out>(b({0x01, st}), 1, socks_errc::auth_failed, astat);
  }
  expect_error_at<no_out>(b({0x05, 0x00}), 0, socks_errc::bad_version, astat);
}

TEST(Socks5Client, EncodeAuthRequest) {
  expect_encodes(cat({b({0x01, 4}), str_bytes("user"), b({4}), str_bytes("pass")}),
                 [](core::byte_span o) { return s5::encode_auth_request("user", "pass", o); });
  expect_encodes(b({0x01, 0, 0}), [](core::byte_span o) { return s5::encode_auth_request("", "", o); });
  const std::string u255(255, 'U');
  const std::string p255(255, 'P');
  expect_encodes(cat({b({0x01, 255}), str_bytes(u255), b({255}), str_bytes(p255)}),
                 [&](core::byte_span o) { return s5::encode_auth_request(u255, p255, o); });
}

TEST(Socks5Client, EncodeAuthRequestRefusesOverlongFields) {
  std::array<std::uint8_t, 1024> out{};
  const std::string long256(256, 'x');
  EXPECT_EQ(s5::encode_auth_request(long256, "p", out), 0u);
  EXPECT_EQ(s5::encode_auth_request("u", long256, out), 0u);
  EXPECT_EQ(s5::encode_auth_request(long256, long256, out), 0u);
}

TEST(Socks5Client, AuthRequestRoundTrip) {
  for (const auto& [u, p] : std::vector<std::pair<std::string, std::string>>{
           {"user", "pass"}, {"", ""}, {std::string(255, 'a'), ""}, {"", std::string(255, 'b')},
           {std::string("a\0b", 3), std::string("\xff\x00", 2)}}) {
    std::array<std::uint8_t, s5::max_auth_request_size> out{};
    const auto n = s5::encode_auth_request(u, p, out);
    ASSERT_EQ(n, 3 + u.size() + p.size());
    s5::auth_request a;
    const auto r = s5::parse_auth_request(core::byte_view(out.data(), n), a);
    ASSERT_TRUE(r.is_done());
    EXPECT_EQ(r.consumed, n);
    EXPECT_EQ(std::string(a.username.data(), a.username.size()), u);
    EXPECT_EQ(std::string(a.password.data(), a.password.size()), p);
  }
}

TEST(Socks5Client, EncodeRequest) {
  expect_encodes(b({0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0x00, 0x50}),
                 [](core::byte_span o) { return s5::encode_request(s5::command::connect, v4("1.2.3.4", 80), o); });
  expect_encodes(b({0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0x00, 0x50}), [](core::byte_span o) {
    return s5::encode_request(s5::command::connect, {core::ip::make_address("::ffff:1.2.3.4"), 80}, o);
  });
  expect_encodes(cat({b({0x05, 0x03, 0x00, 0x03, 3}), str_bytes("a.b"), b({0x01, 0x00})}),
                 [](core::byte_span o) { return s5::encode_request(s5::command::udp_associate, dom("a.b", 256), o); });
  expect_encodes(b({0x05, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}),
                 [](core::byte_span o) {
                   return s5::encode_request(s5::command::bind, {core::ip::address_v6::any(), 65535}, o);
                 });
  std::array<std::uint8_t, 64> out{};
  EXPECT_EQ(s5::encode_request(s5::command::connect, dom("", 80), out), 0u);
}

// ------------------------------------------------------------------ round trips

TEST(Socks5RoundTrip, RequestEncodeParse) {
  const std::vector<core::target_address> targets{
      v4("0.0.0.0", 0),       v4("255.255.255.255", 65535), {core::ip::make_address("::1"), 443},
      dom("x", 1),            dom(std::string(255, 'z'), 8080),
      {core::ip::make_address("2001:db8::dead:beef"), 22}};
  for (auto cmd : {s5::command::connect, s5::command::bind, s5::command::udp_associate}) {
    for (const auto& t : targets) {
      std::array<std::uint8_t, s5::max_request_size> out{};
      const auto n = s5::encode_request(cmd, t, out);
      ASSERT_GT(n, 0u);
      const auto r = parsegrind<s5::request>(bytes(out.begin(), out.begin() + static_cast<long>(n)), req);
      EXPECT_EQ(r.cmd, cmd);
      EXPECT_EQ(r.dst, t) << core::to_string(t);
    }
  }
}

TEST(Socks5RoundTrip, ReplyEncodeParse) {
  for (const char* a : {"0.0.0.0", "10.0.0.1", "::", "2001:db8::1", "::ffff:192.0.2.1"}) {
    for (int code : {0, 1, 5, 8}) {
      std::array<std::uint8_t, s5::max_reply_size> out{};
      const auto addr = core::ip::make_address(a);
      const auto n = s5::encode_reply(static_cast<core::reply_code>(code), addr, 4242, out);
      ASSERT_GT(n, 0u);
      const auto r = parsegrind<s5::reply>(bytes(out.begin(), out.begin() + static_cast<long>(n)), rep);
      EXPECT_EQ(static_cast<int>(r.rep), code);
      EXPECT_EQ(r.bnd, (core::target_address{core::unmap(addr), 4242})) << a;
    }
  }
}

TEST(Socks5RoundTrip, UdpHeaderEncodeParse) {
  for (const auto& t : {v4("1.1.1.1", 53), dom("resolver.example", 53), dom(std::string(255, 'q'), 1),
                        core::target_address{core::ip::make_address("2606:4700::1111"), 853}}) {
    std::array<std::uint8_t, s5::max_udp_header_size> out{};
    const auto n = s5::encode_udp_header(t, out);
    ASSERT_GT(n, 0u);
    const auto h = parsegrind<s5::udp_header>(bytes(out.begin(), out.begin() + static_cast<long>(n)), udp);
    EXPECT_EQ(h.frag, 0);
    EXPECT_EQ(h.dst, t);
  }
}

TEST(Socks5Sizes, Constants) {
  EXPECT_EQ(s5::max_greeting_size, 257u);
  EXPECT_EQ(s5::max_auth_request_size, 513u);
  EXPECT_EQ(s5::max_request_size, 262u);
  EXPECT_EQ(s5::max_udp_header_size, 262u);
}

}  // namespace
