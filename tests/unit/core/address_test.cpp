#include "core/address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

namespace core = cs::core;
namespace ip = cs::core::ip;

core::target_address dom(std::string_view d, std::uint16_t port) {
  return {core::domain_name(d.data(), d.size()), port};
}

TEST(AddressToString, Targets) {
  EXPECT_EQ(core::to_string(core::target_address{ip::make_address("1.2.3.4"), 80}), "1.2.3.4:80");
  EXPECT_EQ(core::to_string(core::target_address{ip::make_address("::1"), 80}), "[::1]:80");
  EXPECT_EQ(core::to_string(core::target_address{ip::make_address("2001:db8::1"), 65535}), "[2001:db8::1]:65535");
  EXPECT_EQ(core::to_string(core::target_address{ip::make_address("::ffff:10.0.0.1"), 443}), "10.0.0.1:443")
      << "IPv4-mapped prints as IPv4";
  EXPECT_EQ(core::to_string(dom("example.com", 443)), "example.com:443");
  EXPECT_EQ(core::to_string(dom("a", 0)), "a:0");
  EXPECT_EQ(core::to_string(core::target_address{}), "0.0.0.0:0") << "default target";
}

TEST(AddressToString, Endpoints) {
  EXPECT_EQ(core::to_string(ip::tcp::endpoint(ip::make_address("127.0.0.1"), 1080)), "127.0.0.1:1080");
  EXPECT_EQ(core::to_string(ip::udp::endpoint(ip::make_address("::"), 53)), "[::]:53");
  EXPECT_EQ(core::to_string(ip::tcp::endpoint(ip::make_address("::ffff:127.0.0.1"), 1)), "127.0.0.1:1");
  EXPECT_EQ(core::to_string(ip::make_address("fe80::1"), 22), "[fe80::1]:22");
}

// IPv4 is formatted by our own code (std::to_chars), not inet_ntop: it must
// print what inet_ntop prints for every octet value, at every width.
TEST(AddressToString, Ipv4MatchesInetNtop) {
  EXPECT_EQ(core::to_string(ip::make_address("255.255.255.255"), 65535), "255.255.255.255:65535") << "widest";
  EXPECT_EQ(core::to_string(ip::make_address("10.0.100.9"), 9), "10.0.100.9:9");
  for (unsigned v = 0; v < 256; ++v) {
    const auto o = static_cast<unsigned char>(v);
    const ip::address_v4 a(ip::address_v4::bytes_type{o, static_cast<unsigned char>(255 - v), o, 0});
    const std::uint16_t port = static_cast<std::uint16_t>(v * 257);
    EXPECT_EQ(core::to_string(a, port), a.to_string() + ":" + std::to_string(port));
  }
}

TEST(Unmap, OnlyMappedAddressesChange) {
  EXPECT_EQ(core::unmap(ip::make_address("::ffff:1.2.3.4")), ip::make_address("1.2.3.4"));
  EXPECT_TRUE(core::unmap(ip::make_address("::ffff:1.2.3.4")).is_v4());
  EXPECT_EQ(core::unmap(ip::make_address("1.2.3.4")), ip::make_address("1.2.3.4"));
  EXPECT_EQ(core::unmap(ip::make_address("::1")), ip::make_address("::1"));
  EXPECT_EQ(core::unmap(ip::make_address("::1.2.3.4")), ip::make_address("::1.2.3.4")) << "v4-compatible is not mapped";
  EXPECT_EQ(core::unmap(ip::make_address("64:ff9b::1.2.3.4")), ip::make_address("64:ff9b::1.2.3.4"));
}

struct endpoint_case {
  const char* text;
  bool ok;
  const char* addr;
  std::uint16_t port;
};

TEST(ParseEndpoint, Table) {
  const endpoint_case cases[] = {
      {"127.0.0.1:1080", true, "127.0.0.1", 1080},
      {"0.0.0.0:0", true, "0.0.0.0", 0},
      {"255.255.255.255:65535", true, "255.255.255.255", 65535},
      {"[::1]:80", true, "::1", 80},
      {"[::]:1080", true, "::", 1080},
      {"[2001:db8::1]:443", true, "2001:db8::1", 443},
      {"[::ffff:1.2.3.4]:80", true, "::ffff:1.2.3.4", 80},
      {"1.2.3.4:00080", true, "1.2.3.4", 80},
      // invalid
      {"", false, nullptr, 0},
      {"127.0.0.1", false, nullptr, 0},           // missing port
      {"127.0.0.1:", false, nullptr, 0},          // empty port
      {"127.0.0.1:65536", false, nullptr, 0},     // port out of range
      {"127.0.0.1:99999", false, nullptr, 0},
      {"127.0.0.1:123456", false, nullptr, 0},
      {"127.0.0.1:-1", false, nullptr, 0},
      {"127.0.0.1:+80", false, nullptr, 0},
      {"127.0.0.1: 80", false, nullptr, 0},
      {"127.0.0.1:80 ", false, nullptr, 0},
      {"127.0.0.1:8o", false, nullptr, 0},
      {"::1:80", false, nullptr, 0},              // unbracketed IPv6
      {"::1", false, nullptr, 0},
      {"2001:db8::1:443", false, nullptr, 0},
      {"[127.0.0.1]:80", false, nullptr, 0},      // brackets around IPv4
      {":80", false, nullptr, 0},                 // empty host
      {"[]:80", false, nullptr, 0},
      {"[::1]", false, nullptr, 0},
      {"[::1]80", false, nullptr, 0},
      {"[::1]:", false, nullptr, 0},
      {"[::1:80", false, nullptr, 0},
      {"localhost:80", false, nullptr, 0},        // not an IP literal
      {"1.2.3:80", false, nullptr, 0},
      {"1.2.3.4.5:80", false, nullptr, 0},
      {"256.1.1.1:80", false, nullptr, 0},
  };
  for (const auto& c : cases) {
    ip::tcp::endpoint ep(ip::make_address("9.9.9.9"), 9);
    EXPECT_EQ(core::parse_endpoint(c.text, ep), c.ok) << '"' << c.text << '"';
    if (c.ok) {
      EXPECT_EQ(ep.address(), ip::make_address(c.addr)) << c.text;
      EXPECT_EQ(ep.port(), c.port) << c.text;
    } else {
      EXPECT_EQ(ep, ip::tcp::endpoint(ip::make_address("9.9.9.9"), 9)) << "untouched on failure: " << c.text;
    }
  }
}

TEST(ParseEndpoint, ZeroPortCanBeRefused) {
  ip::tcp::endpoint ep;
  EXPECT_TRUE(core::parse_endpoint("1.2.3.4:0", ep, true));
  EXPECT_FALSE(core::parse_endpoint("1.2.3.4:0", ep, false));
  EXPECT_FALSE(core::parse_endpoint("[::1]:0", ep, false));
  EXPECT_TRUE(core::parse_endpoint("1.2.3.4:1", ep, false));
}

TEST(ParseEndpoint, NulInPortIsRefused) {
  ip::tcp::endpoint ep;
  EXPECT_FALSE(core::parse_endpoint(std::string_view("1.2.3.4:8\0", 10), ep));
  EXPECT_FALSE(core::parse_endpoint(std::string_view("1.2.3.4:\0", 9), ep));
}

// BUG (src/core/address.cpp): the host text is handed to ip::make_address()
// via std::string::c_str(), so everything from an embedded NUL on is
// silently ignored: "1.2.3.4\0junk:80" parses as 1.2.3.4:80 in both
// parse_endpoint() and parse_target() (the NUL check in parse_target only
// runs on the domain branch). Today only argv reaches these (no NUL
// possible), but the functions promise to reject anything else. Fix: refuse
// a host containing '\0' before calling make_address. Enable when fixed.
TEST(ParseEndpoint, NulAfterHostLiteralIsRefused) {
  ip::tcp::endpoint ep;
  EXPECT_FALSE(core::parse_endpoint(std::string_view("1.2.3.4\0:80", 11), ep));
  EXPECT_FALSE(core::parse_endpoint(std::string_view("1.2.3.4\0junk:80", 15), ep));
  EXPECT_FALSE(core::parse_endpoint(std::string_view("[::1\0junk]:80", 13), ep));
  core::target_address t;
  EXPECT_FALSE(core::parse_target(std::string_view("1.2.3.4\0evil.example:80", 23), t));
  EXPECT_FALSE(core::parse_target(std::string_view("[::1\0x]:80", 10), t));
}

TEST(ParseTarget, Valid) {
  core::target_address t;
  ASSERT_TRUE(core::parse_target("example.com:443", t));
  EXPECT_EQ(t, dom("example.com", 443));

  ASSERT_TRUE(core::parse_target("1.2.3.4:80", t));
  EXPECT_FALSE(t.is_domain()) << "an IPv4 literal is an address, not a name";
  EXPECT_EQ(t, (core::target_address{ip::make_address("1.2.3.4"), 80}));

  ASSERT_TRUE(core::parse_target("[2001:db8::5]:8443", t));
  EXPECT_EQ(t, (core::target_address{ip::make_address("2001:db8::5"), 8443}));

  ASSERT_TRUE(core::parse_target("a:0", t));
  EXPECT_EQ(t, dom("a", 0));

  const std::string d255(255, 'd');
  ASSERT_TRUE(core::parse_target(d255 + ":1", t));
  EXPECT_EQ(t, dom(d255, 1));

  ASSERT_TRUE(core::parse_target("under_score.example:65535", t));
  EXPECT_EQ(t.port, 65535);
}

TEST(ParseTarget, Invalid) {
  const std::string d256(256, 'd');
  const std::string bad[] = {
      "",
      "example.com",          // missing port
      "example.com:",         // empty port
      "example.com:65536",    // out of range
      "example.com:-1",
      "example.com:http",
      ":80",                  // empty host
      "[]:80",
      "::1:80",               // unbracketed IPv6
      "[1.2.3.4]:80",         // brackets around IPv4
      "[example.com]:80",     // brackets around a name
      "[::1]80",
      "[::1",
      d256 + ":80",           // name too long
      std::string("ex\0ample.com:80", 15),  // NUL inside the name
  };
  for (const auto& text : bad) {
    core::target_address t = dom("untouched", 7);
    EXPECT_FALSE(core::parse_target(text, t)) << '"' << text << '"';
    EXPECT_EQ(t, dom("untouched", 7)) << "output untouched on failure: " << text;
  }
}

// ---- read_name: what a name sent as DOMAIN is

struct name_case {
  std::string_view name;
  core::name_form form;
  std::string_view address;  // when form == address
};

TEST(ReadName, Table) {
  using enum core::name_form;
  const name_case cases[] = {
      {"127.0.0.1", address, "127.0.0.1"},
      {"0177.0.0.1", address, "127.0.0.1"},  // octal, as inet_aton and browsers read it
      {"0x7f.0.0.1", address, "127.0.0.1"},
      {"0X7F.1", address, "127.0.0.1"},
      {"127.1", address, "127.0.0.1"},        // the last part fills the rest
      {"10.1.2", address, "10.1.0.2"},
      {"2130706433", address, "127.0.0.1"},
      {"0x7f000001", address, "127.0.0.1"},
      {"017700000001", address, "127.0.0.1"},
      {"169.254.169.254.", address, "169.254.169.254"},  // one trailing dot: still the address
      {"0", address, "0.0.0.0"},
      {"4294967295", address, "255.255.255.255"},
      {"1.16777215", address, "1.255.255.255"},
      {"1.2.65535", address, "1.2.255.255"},
      {"::1", address, "::1"},
      {"::ffff:127.0.0.1", address, "127.0.0.1"},  // mapped: read as the IPv4 address
      {"4294967296", invalid, ""},
      {"0x100000000", invalid, ""},
      {"99999999999999999999999999", invalid, ""},  // no overflow into a small value
      {"1.2.3.4.5", invalid, ""},
      {"1.2.3.256", invalid, ""},
      {"256.1.2.3", invalid, ""},
      {"1.2.16777216", invalid, ""},
      {"09.1.1.1", invalid, ""},   // 9 is no octal digit
      {"08", invalid, ""},
      {"1..2", invalid, ""},
      {".1", invalid, ""},
      {"example.1", invalid, ""},  // the last label is a number: no DNS name either
      {"foo.0x10", invalid, ""},
      {"1.2.3.4..", dns_name, ""},  // two trailing dots: the last label is empty
      {"example.com", dns_name, ""},
      {"1.2.3.4x", dns_name, ""},
      {"0x", dns_name, ""},        // no hex digits: no number (inet_aton agrees)
      {"1.2.3.0x", dns_name, ""},
      {"1.2.3.0xg", dns_name, ""},
      {"127.0.0.1.example", dns_name, ""},
      {"0x7f.example", dns_name, ""},
      {"localhost", dns_name, ""},
      {"", dns_name, ""},
      {".", dns_name, ""},
      {"a:b", dns_name, ""},
  };
  for (const auto& c : cases) {
    ip::address out;
    EXPECT_EQ(core::read_name(c.name, out), c.form) << '"' << c.name << '"';
    if (c.form == core::name_form::address) {
      EXPECT_EQ(out, ip::make_address(std::string(c.address))) << '"' << c.name << '"';
    }
  }
}

// Across names made of digits, hex letters, x and dots, read_name agrees
// with glibc's inet_aton (what getaddrinfo reads a numeric host with),
// except for the trailing dot, which only the URL standard allows.
TEST(ReadName, AgreesWithInetAton) {
  std::mt19937 rng(20261124);
  constexpr std::string_view alphabet = "0123456789xXaF.";
  std::uniform_int_distribution<std::size_t> length(1, 14);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  int addresses = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string name(length(rng), '0');
    for (auto& c : name) {
      c = alphabet[pick(rng)];
    }
    ip::address ours;
    const auto form = core::read_name(name, ours);
    in_addr theirs{};
    const bool aton = inet_aton(name.c_str(), &theirs) != 0;
    if (name.back() == '.') {
      continue;
    }
    ASSERT_EQ(form == core::name_form::address, aton) << '"' << name << '"';
    if (aton) {
      ++addresses;
      ASSERT_EQ(ours, ip::address_v4(ntohl(theirs.s_addr))) << '"' << name << '"';
    }
  }
  EXPECT_GT(addresses, 1000);  // the alphabet reaches addresses often enough to mean something
}

}  // namespace
