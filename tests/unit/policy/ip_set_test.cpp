// policy/ip_set: CIDR parsing, compiled address sets, and the IPv4 addresses
// embedded in IPv6 transition forms.

#include "policy/ip_set.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using cs::policy::cidr;
using cs::policy::embedded_v4;
using cs::policy::ip_set;
using cs::policy::parse_cidr;
namespace ip = cs::core::ip;

ip::address A(const char* text) { return ip::make_address(text); }

cidr C(const char* text) {
  cidr c;
  std::string err;
  EXPECT_TRUE(parse_cidr(text, c, &err)) << text << ": " << err;
  return c;
}

ip_set S(std::initializer_list<const char*> prefixes) {
  ip_set s;
  for (const char* p : prefixes) {
    s.add(C(p));
  }
  s.finalize();
  return s;
}

std::vector<std::string> embedded(const char* v6) {
  std::vector<std::string> out;
  for (const auto& a : embedded_v4(ip::make_address_v6(v6))) {
    out.push_back(a.to_string());
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// ---- parse_cidr -------------------------------------------------------------

TEST(ParseCidr, NetworksAndBareAddresses) {
  struct {
    const char* text;
    const char* network;
    int prefix;
    bool v4;
  } cases[] = {
      {"10.0.0.0/8", "10.0.0.0", 8, true},
      {"0.0.0.0/0", "0.0.0.0", 0, true},
      {"192.168.1.0/24", "192.168.1.0", 24, true},
      {"203.0.113.7", "203.0.113.7", 32, true},
      {"203.0.113.7/32", "203.0.113.7", 32, true},
      {"::1", "::1", 128, false},
      {"::/0", "::", 0, false},
      {"fe80::/10", "fe80::", 10, false},
      {"2001:db8::/32", "2001:db8::", 32, false},
      {"fd00:ec2::254/128", "fd00:ec2::254", 128, false},
  };
  for (const auto& c : cases) {
    cidr out;
    std::string err;
    ASSERT_TRUE(parse_cidr(c.text, out, &err)) << c.text << ": " << err;
    EXPECT_EQ(out.network, A(c.network)) << c.text;
    EXPECT_EQ(out.prefix, c.prefix) << c.text;
    EXPECT_EQ(out.network.is_v4(), c.v4) << c.text;
  }
  EXPECT_EQ(C("10.0.0.0/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(C("fe80::/10").to_string(), "fe80::/10");
}

TEST(ParseCidr, HostBitsSetAreRefused) {
  for (const char* text : {"10.0.0.1/8", "192.168.1.1/24", "10.128.0.0/8", "1.0.0.0/7", "128.0.0.0/0",
                           "fe80::1/10", "2001:db8::1/64", "::1/127", "ff00::/7", "::ffff:10.0.0.1/104"}) {
    cidr out;
    std::string err;
    EXPECT_FALSE(parse_cidr(text, out, &err)) << text;
    EXPECT_NE(err.find("host bits"), std::string::npos) << text << ": '" << err << "'";
  }
}

TEST(ParseCidr, BadPrefixesAreRefused) {
  for (const char* text : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8",
                           "10.0.0.0/8 ", "10.0.0.0/ 8", "10.0.0.0/x", "10.0.0.0/4294967304", "::/129",
                           "::/1000", "fe80::/10x"}) {
    cidr out;
    std::string err;
    EXPECT_FALSE(parse_cidr(text, out, &err)) << text;
    EXPECT_FALSE(err.empty()) << text;
  }
}

TEST(ParseCidr, NonAddressesAreRefused) {
  for (const char* text : {"", "/8", "10.0.0", "10.0.0.0.0", "256.0.0.0/8", "example.com", "*", " 10.0.0.0/8",
                           "10.0.0.0 /8", ":::/0", "fe80::/", "[::1]", "1.2.3.4:80"}) {
    cidr out;
    std::string err;
    EXPECT_FALSE(parse_cidr(text, out, &err)) << "'" << text << "'";
  }
  const std::string long_text(100, '1');
  cidr out;
  EXPECT_FALSE(parse_cidr(long_text, out));
  EXPECT_TRUE(parse_cidr("10.0.0.0/8", out, nullptr)) << "a null error pointer is allowed";
  EXPECT_FALSE(parse_cidr("10.0.0.1/8", out, nullptr));
}

// Found by fuzz/acl_pattern_fuzz.cpp: make_address() reads a C string, so
// everything from an embedded NUL on was ignored ("10.0.0.0\0x/8" was 10/8).
TEST(ParseCidr, NulInAddressIsRefused) {
  for (const std::string& text : {std::string("10.0.0.0\0x/8", 13), std::string("10.0.0.0\0/8", 11),
                                 std::string("::1\0:/128", 9), std::string("192.0.2.1\0", 10)}) {
    cidr out;
    std::string err;
    EXPECT_FALSE(parse_cidr(text, out, &err)) << text.size() << "-byte text with NUL was accepted";
    EXPECT_EQ(err, "not an IP address");
  }
}

TEST(ParseCidr, FailureLeavesOutputUntouched) {
  cidr out = C("192.0.2.0/24");
  EXPECT_FALSE(parse_cidr("10.0.0.1/8", out));
  EXPECT_EQ(out, C("192.0.2.0/24"));
}

TEST(ParseCidr, V4MappedIsStoredAsV4) {
  struct {
    const char* text;
    const char* network;
    int prefix;
  } cases[] = {
      {"::ffff:10.0.0.0/104", "10.0.0.0", 8},
      {"::ffff:127.0.0.1", "127.0.0.1", 32},
      {"::ffff:127.0.0.1/128", "127.0.0.1", 32},
      {"::ffff:0:0/96", "0.0.0.0", 0},
      {"::ffff:169.254.169.254/128", "169.254.169.254", 32},
      {"::FFFF:192.168.0.0/112", "192.168.0.0", 16},
  };
  for (const auto& c : cases) {
    cidr out;
    std::string err;
    ASSERT_TRUE(parse_cidr(c.text, out, &err)) << c.text << ": " << err;
    EXPECT_TRUE(out.network.is_v4()) << c.text << " stored as " << out.to_string();
    EXPECT_EQ(out.network, A(c.network)) << c.text;
    EXPECT_EQ(out.prefix, c.prefix) << c.text;
  }
  // Shorter than /96 the prefix is not an IPv4 range: it stays IPv6.
  const auto wide = C("::fffe:0:0/95");
  EXPECT_TRUE(wide.network.is_v6());
  EXPECT_EQ(wide.prefix, 95);
}

TEST(Cidr, ContainsBoundariesAndFamilies) {
  const auto c = C("10.0.0.0/8");
  EXPECT_TRUE(c.contains(A("10.0.0.0")));
  EXPECT_TRUE(c.contains(A("10.255.255.255")));
  EXPECT_FALSE(c.contains(A("9.255.255.255")));
  EXPECT_FALSE(c.contains(A("11.0.0.0")));
  EXPECT_TRUE(c.contains(A("::ffff:10.1.2.3"))) << "a mapped address is its IPv4 address";
  EXPECT_FALSE(c.contains(A("::10.1.2.3"))) << "IPv4-compatible is IPv6 for a plain CIDR";
  EXPECT_FALSE(c.contains(A("::a01:203")));

  const auto all4 = C("0.0.0.0/0");
  EXPECT_TRUE(all4.contains(A("255.255.255.255")));
  EXPECT_TRUE(all4.contains(A("0.0.0.0")));
  EXPECT_FALSE(all4.contains(A("::1"))) << "0.0.0.0/0 is not IPv6";
  const auto all6 = C("::/0");
  EXPECT_TRUE(all6.contains(A("2001:db8::1")));
  EXPECT_FALSE(all6.contains(A("1.2.3.4")));
  EXPECT_FALSE(all6.contains(A("::ffff:1.2.3.4"))) << "mapped is looked up as IPv4";

  const auto ll = C("fe80::/10");
  EXPECT_TRUE(ll.contains(A("fe80::1")));
  EXPECT_TRUE(ll.contains(A("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(ll.contains(A("fec0::")));
  EXPECT_FALSE(ll.contains(A("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

// ---- ip_set -----------------------------------------------------------------

TEST(IpSet, EmptySetContainsNothing) {
  ip_set s;
  s.finalize();
  EXPECT_TRUE(s.empty());
  for (const char* a : {"0.0.0.0", "10.0.0.1", "255.255.255.255", "::", "::1", "ffff::1"}) {
    EXPECT_FALSE(s.contains(A(a))) << a;
  }
}

TEST(IpSet, BoundariesV4) {
  const auto s = S({"10.0.0.0/8", "192.168.0.0/16", "203.0.113.9"});
  EXPECT_FALSE(s.empty());
  for (const char* in : {"10.0.0.0", "10.255.255.255", "192.168.0.0", "192.168.255.255", "203.0.113.9"}) {
    EXPECT_TRUE(s.contains(A(in))) << in;
  }
  for (const char* out : {"9.255.255.255", "11.0.0.0", "192.167.255.255", "192.169.0.0", "203.0.113.8",
                          "203.0.113.10", "0.0.0.0", "255.255.255.255"}) {
    EXPECT_FALSE(s.contains(A(out))) << out;
  }
}

TEST(IpSet, BoundariesV6) {
  const auto s = S({"fe80::/10", "2001:db8::/32", "::1"});
  for (const char* in : {"fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::",
                         "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::1"}) {
    EXPECT_TRUE(s.contains(A(in))) << in;
  }
  for (const char* out : {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                          "2001:db9::", "::", "::2"}) {
    EXPECT_FALSE(s.contains(A(out))) << out;
  }
}

TEST(IpSet, FamiliesAreSeparate) {
  const auto v4 = S({"0.0.0.0/0"});
  EXPECT_TRUE(v4.contains(A("8.8.8.8")));
  EXPECT_FALSE(v4.contains(A("::")));
  EXPECT_FALSE(v4.contains(A("2001:db8::1")));
  EXPECT_FALSE(v4.contains(A("::8.8.8.8"))) << "IPv4-compatible is not looked up as IPv4";
  const auto v6 = S({"::/0"});
  EXPECT_TRUE(v6.contains(A("2001:db8::1")));
  EXPECT_TRUE(v6.contains(A("::")));
  EXPECT_FALSE(v6.contains(A("8.8.8.8")));
}

TEST(IpSet, MappedAddressesAreLookedUpAsV4) {
  const auto s = S({"10.0.0.0/8", "::ffff:192.168.0.0/112"});
  EXPECT_TRUE(s.contains(A("::ffff:10.1.2.3")));
  EXPECT_TRUE(s.contains(A("192.168.7.7"))) << "a mapped prefix was added as IPv4";
  EXPECT_TRUE(s.contains(A("::ffff:192.168.7.7")));
  EXPECT_FALSE(s.contains(A("::ffff:11.0.0.0")));
}

TEST(IpSet, OverlappingAndNestedMerge) {
  const auto s = S({"10.0.0.0/16", "10.0.0.0/8", "10.1.2.0/24", "10.200.0.0/16"});
  EXPECT_TRUE(s.contains(A("10.0.0.0")));
  EXPECT_TRUE(s.contains(A("10.128.0.1")));
  EXPECT_TRUE(s.contains(A("10.255.255.255"))) << "a nested smaller range must not shorten the merged one";
  EXPECT_FALSE(s.contains(A("11.0.0.0")));
}

TEST(IpSet, AdjacentRangesMergeWithoutGaps) {
  const auto s = S({"10.0.0.128/25", "10.0.0.0/25", "10.0.1.0/24"});
  for (const char* in : {"10.0.0.0", "10.0.0.127", "10.0.0.128", "10.0.0.255", "10.0.1.0", "10.0.1.255"}) {
    EXPECT_TRUE(s.contains(A(in))) << in;
  }
  EXPECT_FALSE(s.contains(A("10.0.2.0")));
  EXPECT_FALSE(s.contains(A("9.255.255.255")));

  // Not adjacent: the gap stays a gap.
  const auto g = S({"10.0.0.0/32", "10.0.0.2/32"});
  EXPECT_TRUE(g.contains(A("10.0.0.0")));
  EXPECT_FALSE(g.contains(A("10.0.0.1")));
  EXPECT_TRUE(g.contains(A("10.0.0.2")));
}

TEST(IpSet, EdgesOfTheAddressSpace) {
  const auto s = S({"255.255.255.255", "0.0.0.0", "255.255.255.254"});
  EXPECT_TRUE(s.contains(A("255.255.255.255")));
  EXPECT_TRUE(s.contains(A("255.255.255.254")));
  EXPECT_TRUE(s.contains(A("0.0.0.0")));
  EXPECT_FALSE(s.contains(A("0.0.0.1")));
  EXPECT_FALSE(s.contains(A("255.255.255.253")));

  const auto s6 = S({"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"});
  EXPECT_TRUE(s6.contains(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(s6.contains(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")));
  EXPECT_TRUE(s6.contains(A("::")));
  EXPECT_FALSE(s6.contains(A("::1")));
  EXPECT_FALSE(s6.contains(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd")));

  const auto whole = S({"0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"});
  EXPECT_TRUE(whole.contains(A("127.255.255.255")));
  EXPECT_TRUE(whole.contains(A("128.0.0.0")));
  EXPECT_TRUE(whole.contains(A("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(whole.contains(A("8000::")));
}

TEST(IpSet, ManyPrefixes) {
  ip_set s;
  for (int i = 0; i < 256; i += 2) {
    s.add(C(("10." + std::to_string(i) + ".0.0/16").c_str()));
  }
  s.finalize();
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(s.contains(A(("10." + std::to_string(i) + ".1.1").c_str())), i % 2 == 0) << i;
  }
}

// ---- embedded_v4 ------------------------------------------------------------

TEST(EmbeddedV4, Mapped) {
  EXPECT_EQ(embedded("::ffff:10.0.0.1"), std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(embedded("::ffff:169.254.169.254"), std::vector<std::string>{"169.254.169.254"});
}

TEST(EmbeddedV4, Compatible) {
  EXPECT_EQ(embedded("::127.0.0.1"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(embedded("::10.0.0.1"), std::vector<std::string>{"10.0.0.1"});
  EXPECT_TRUE(embedded("::").empty()) << ":: is the unspecified address, not 0.0.0.0";
  EXPECT_TRUE(embedded("::1").empty()) << "::1 is IPv6 loopback, not 0.0.0.1";
}

TEST(EmbeddedV4, Nat64WellKnown) {
  EXPECT_EQ(embedded("64:ff9b::10.0.0.1"), std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(embedded("64:ff9b::a9fe:a9fe"), std::vector<std::string>{"169.254.169.254"});
  EXPECT_EQ(embedded("64:ff9b::8.8.8.8"), std::vector<std::string>{"8.8.8.8"});
  EXPECT_TRUE(embedded("64:ff9b:0:0:1::a00:1").empty()) << "outside 64:ff9b::/96";
}

TEST(EmbeddedV4, Nat64LocalUse) {
  // RFC 6052 /48 layout: v4 in bits 48..63 and 72..87 (bits 64..71 zero).
  const auto v48 = embedded("64:ff9b:1:a00:0:100::");
  EXPECT_TRUE(has(v48, "10.0.0.1")) << "64:ff9b:1:a00:0:100:: (/48 layout)";
  const auto v96 = embedded("64:ff9b:1::10.0.0.1");
  EXPECT_TRUE(has(v96, "10.0.0.1")) << "64:ff9b:1::10.0.0.1 (/96 inside the /48)";
  const auto meta = embedded("64:ff9b:1:a9fe:a9:fe00::");
  EXPECT_TRUE(has(meta, "169.254.169.254"));
  EXPECT_LE(v48.size(), 2u);
}

TEST(EmbeddedV4, SixToFour) {
  EXPECT_EQ(embedded("2002:a00:1::1"), std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(embedded("2002:7f00:1:ffff::5"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(embedded("2002:a9fe:a9fe::"), std::vector<std::string>{"169.254.169.254"});
}

TEST(EmbeddedV4, TeredoServerAndClient) {
  // 2001:0:SERVER:flags:port:~CLIENT
  const auto both = embedded("2001:0:102:304:8000:ffff:f5ff:fffe");
  EXPECT_TRUE(has(both, "1.2.3.4")) << "server";
  EXPECT_TRUE(has(both, "10.0.0.1")) << "obfuscated client ~f5fffffe";
  const auto server = embedded("2001:0:7f00:1::ffff:ffff");
  EXPECT_TRUE(has(server, "127.0.0.1"));
  // RFC 4380's example: server 65.54.227.120, client 192.0.2.45.
  const auto rfc = embedded("2001:0:4136:e378:8000:63bf:3fff:fdd2");
  EXPECT_TRUE(has(rfc, "65.54.227.120"));
  EXPECT_TRUE(has(rfc, "192.0.2.45"));
  EXPECT_TRUE(embedded("2001:1::1").empty()) << "2001:1:: is not Teredo";
}

TEST(EmbeddedV4, Isatap) {
  EXPECT_TRUE(has(embedded("2001:db8::5efe:10.0.0.1"), "10.0.0.1"));
  EXPECT_TRUE(has(embedded("2001:db8:1:2:200:5efe:a9fe:a9fe"), "169.254.169.254")) << "u bit set";
  EXPECT_TRUE(has(embedded("fe80::5efe:7f00:1"), "127.0.0.1"));
  EXPECT_TRUE(embedded("2001:db8::5eff:a00:1").empty());
}

TEST(EmbeddedV4, PlainIpv6HasNone) {
  for (const char* a : {"2001:db8::1", "2606:4700::1111", "fe80::1", "fd00::1", "ff02::1",
                        "2001:4860:4860::8888"}) {
    EXPECT_TRUE(embedded(a).empty()) << a;
  }
}

}  // namespace
