// policy/rule_spec: domain patterns, port ranges, countries, commands and
// the --allow/--deny SPEC (both forms, every error).

#include "policy/rule_spec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using namespace cs::policy;
namespace ip = cs::core::ip;
using kind = domain_pattern::kind;

domain_pattern P(const char* text) {
  domain_pattern p;
  std::string err;
  EXPECT_TRUE(parse_domain_pattern(text, p, &err)) << text << ": " << err;
  return p;
}

cidr C(const char* text) {
  cidr c;
  EXPECT_TRUE(parse_cidr(text, c)) << text;
  return c;
}

rule R(const char* spec, action act = action::allow) {
  rule r;
  const auto err = parse_rule_spec(spec, act, r);
  EXPECT_EQ(err, "") << spec;
  return r;
}

std::string E(const char* spec) {
  rule r;
  return parse_rule_spec(spec, action::block, r);
}

// ---- domain patterns ----------------------------------------------------------

TEST(DomainPattern, Parse) {
  struct {
    const char* text;
    kind k;
    const char* name;
  } cases[] = {
      {"example.com", kind::exact, "example.com"},
      {"Example.COM.", kind::exact, "example.com"},
      {"localhost", kind::exact, "localhost"},
      {"*.example.com", kind::subdomains, "example.com"},
      {"*.CORP.example", kind::subdomains, "corp.example"},
      {".example.com", kind::domain_and_subdomains, "example.com"},
      {".example.com.", kind::domain_and_subdomains, "example.com"},
      {"*", kind::any, ""},
      {"_dmarc.example-1.com", kind::exact, "_dmarc.example-1.com"},
      {"*.com", kind::subdomains, "com"},
  };
  for (const auto& c : cases) {
    const auto p = P(c.text);
    EXPECT_EQ(p.k, c.k) << c.text;
    EXPECT_EQ(p.name, c.name) << c.text;
  }
  EXPECT_EQ(P("*.example.com").to_string(), "*.example.com");
  EXPECT_EQ(P(".example.com").to_string(), ".example.com");
  EXPECT_EQ(P("EXAMPLE.com").to_string(), "example.com");
  EXPECT_EQ(P("*").to_string(), "*");
}

TEST(DomainPattern, ParseErrors) {
  const std::string label64(64, 'a');
  const std::string label63(63, 'a');
  std::string name254;
  while (name254.size() < 254) {
    name254 += name254.empty() ? "" : ".";
    name254 += std::string(std::min<std::size_t>(63, 254 - name254.size()), 'b');
  }
  ASSERT_EQ(name254.size(), 254u);
  const std::string bad[] = {"", ".", "*.", "..", "a..b", ".a..b", "*example.com", "ex*ample.com", "a.*.b",
                             "**.example.com", "*.*.example.com", "exa mple.com", "example.com/8", "ex@mple.com",
                             "example.com..", "*..example.com", label64 + ".com", name254, "é.com",
                             std::string("a\0b", 3)};
  for (const auto& text : bad) {
    domain_pattern p;
    std::string err;
    EXPECT_FALSE(parse_domain_pattern(text, p, &err)) << "'" << text << "'";
    EXPECT_FALSE(err.empty()) << "'" << text << "'";
  }
  // Exactly at the limits: fine.
  EXPECT_EQ(P((label63 + ".com").c_str()).name, label63 + ".com");
  std::string name253 = name254.substr(1);
  if (name253.front() == '.') {
    name253 = "x" + name253.substr(1);
  }
  ASSERT_EQ(name253.size(), 253u);
  domain_pattern p;
  EXPECT_TRUE(parse_domain_pattern(name253, p)) << name253;
}

TEST(DomainPattern, ExactMatchesOnlyTheName) {
  const auto p = P("example.com");
  EXPECT_TRUE(p.matches("example.com"));
  EXPECT_FALSE(p.matches("www.example.com"));
  EXPECT_FALSE(p.matches("example.co"));
  EXPECT_FALSE(p.matches("xexample.com"));
  EXPECT_FALSE(p.matches("example.com.evil"));
  EXPECT_FALSE(p.matches(""));
}

TEST(DomainPattern, StarDotMatchesSubdomainsOnly) {
  const auto p = P("*.example.com");
  EXPECT_TRUE(p.matches("a.example.com"));
  EXPECT_TRUE(p.matches("a.b.example.com"));
  EXPECT_FALSE(p.matches("example.com")) << "*.example.com does not include example.com itself";
  EXPECT_FALSE(p.matches("badexample.com")) << "label boundary";
  EXPECT_FALSE(p.matches(".example.com")) << "an empty label is no subdomain";
  EXPECT_FALSE(p.matches("example.com.evil"));
  EXPECT_FALSE(p.matches("com"));
}

TEST(DomainPattern, LeadingDotMatchesDomainAndSubdomains) {
  const auto p = P(".example.com");
  EXPECT_TRUE(p.matches("example.com"));
  EXPECT_TRUE(p.matches("a.example.com"));
  EXPECT_TRUE(p.matches("x.y.z.example.com"));
  EXPECT_FALSE(p.matches("badexample.com"));
  EXPECT_FALSE(p.matches("example.com.au"));
  EXPECT_FALSE(p.matches("example.co"));
}

TEST(DomainPattern, StarMatchesAnyName) {
  const auto p = P("*");
  EXPECT_TRUE(p.matches("example.com"));
  EXPECT_TRUE(p.matches("localhost"));
}

// ---- port ranges, countries, commands -------------------------------------------

TEST(PortRange, Parse) {
  port_range p;
  ASSERT_TRUE(parse_port_range("80", p));
  EXPECT_EQ(p, (port_range{80, 80}));
  ASSERT_TRUE(parse_port_range("1000-2000", p));
  EXPECT_EQ(p, (port_range{1000, 2000}));
  ASSERT_TRUE(parse_port_range("1-65535", p));
  EXPECT_EQ(p, (port_range{1, 65535}));
  ASSERT_TRUE(parse_port_range("*", p));
  EXPECT_EQ(p, (port_range{0, 65535}));
  ASSERT_TRUE(parse_port_range("443-443", p));
  EXPECT_EQ(p, (port_range{443, 443}));
  for (const char* bad : {"", "0", "65536", "-1", "80-", "-80", "2000-1000", "0-10", "1-65536", "8o", "80 ",
                          " 80", "+80", "80-90-100", "*-80", "1e3", "0x50", "80,443"}) {
    port_range q{7, 7};
    EXPECT_FALSE(parse_port_range(bad, q)) << "'" << bad << "'";
  }
}

TEST(PortRange, Contains) {
  const port_range p{1000, 2000};
  EXPECT_FALSE(p.contains(999));
  EXPECT_TRUE(p.contains(1000));
  EXPECT_TRUE(p.contains(2000));
  EXPECT_FALSE(p.contains(2001));
}

TEST(Country, Parse) {
  std::string cc;
  ASSERT_TRUE(parse_country("GB", cc));
  EXPECT_EQ(cc, "GB");
  ASSERT_TRUE(parse_country("gb", cc));
  EXPECT_EQ(cc, "GB");
  ASSERT_TRUE(parse_country("sE", cc));
  EXPECT_EQ(cc, "SE");
  for (const char* bad : {"", "G", "GBR", "G1", "12", "G ", "*"}) {
    EXPECT_FALSE(parse_country(bad, cc)) << "'" << bad << "'";
  }
}

TEST(Command, Parse) {
  std::uint8_t bits = 0;
  ASSERT_TRUE(parse_command("connect", bits));
  EXPECT_EQ(bits, command_bits::connect);
  ASSERT_TRUE(parse_command("bind", bits));
  EXPECT_EQ(bits, command_bits::connect | command_bits::bind);
  bits = 0;
  ASSERT_TRUE(parse_command("udp", bits));
  EXPECT_EQ(bits, command_bits::udp);
  bits = 0;
  ASSERT_TRUE(parse_command("udp_associate", bits));
  EXPECT_EQ(bits, command_bits::udp);
  bits = 0;
  ASSERT_TRUE(parse_command("*", bits));
  EXPECT_EQ(bits, command_bits::all);
  for (const char* bad : {"", "CONNECT", "shell", "connect,bind", "udp-associate"}) {
    std::uint8_t b = 0;
    EXPECT_FALSE(parse_command(bad, b)) << bad;
  }
}

// ---- SPEC: DEST[:PORTS] -----------------------------------------------------

TEST(RuleSpec, DestForms) {
  {
    const auto r = R("10.0.0.0/8");
    EXPECT_EQ(r.act, action::allow);
    EXPECT_EQ(r.name, "--allow 10.0.0.0/8");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("10.0.0.0/8")});
    EXPECT_TRUE(r.dst_domains.empty());
    EXPECT_TRUE(r.ports.empty());
    EXPECT_TRUE(r.src.empty());
    EXPECT_TRUE(r.users.empty());
    EXPECT_TRUE(r.countries.empty());
    EXPECT_EQ(r.commands, command_bits::all);
  }
  {
    const auto r = R("::1", action::block);
    EXPECT_EQ(r.act, action::block);
    EXPECT_EQ(r.name, "--deny ::1");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("::1/128")});
    EXPECT_TRUE(r.ports.empty()) << "an unbracketed IPv6 address has no port";
  }
  {
    const auto r = R("fe80::1:22");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("fe80::1:22")}) << "the last group is part of the address";
    EXPECT_TRUE(r.ports.empty());
  }
  {
    const auto r = R("[fe80::/10]:22");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("fe80::/10")});
    EXPECT_EQ(r.ports, (std::vector<port_range>{{22, 22}}));
  }
  {
    const auto r = R("[::1]");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("::1")});
    EXPECT_TRUE(r.ports.empty());
  }
  {
    const auto r = R("[2001:db8::/32]:1000-2000");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("2001:db8::/32")});
    EXPECT_EQ(r.ports, (std::vector<port_range>{{1000, 2000}}));
  }
  {
    const auto r = R("localhost:8080");
    ASSERT_EQ(r.dst_domains.size(), 1u);
    EXPECT_EQ(r.dst_domains[0], (domain_pattern{kind::exact, "localhost"}));
    EXPECT_TRUE(r.dst_cidrs.empty());
    EXPECT_EQ(r.ports, (std::vector<port_range>{{8080, 8080}}));
  }
  {
    const auto r = R("*.corp.example:443");
    ASSERT_EQ(r.dst_domains.size(), 1u);
    EXPECT_EQ(r.dst_domains[0], (domain_pattern{kind::subdomains, "corp.example"}));
    EXPECT_EQ(r.ports, (std::vector<port_range>{{443, 443}}));
  }
  {
    const auto r = R(".Example.COM");
    ASSERT_EQ(r.dst_domains.size(), 1u);
    EXPECT_EQ(r.dst_domains[0], (domain_pattern{kind::domain_and_subdomains, "example.com"}));
  }
  {
    const auto r = R("*:25");
    EXPECT_TRUE(r.dst_cidrs.empty());
    EXPECT_TRUE(r.dst_domains.empty());
    EXPECT_EQ(r.ports, (std::vector<port_range>{{25, 25}}));
  }
  {
    const auto r = R("*");
    EXPECT_TRUE(r.dst_cidrs.empty());
    EXPECT_TRUE(r.dst_domains.empty());
    EXPECT_TRUE(r.ports.empty());
  }
  {
    const auto r = R("10.0.0.0/8:1000-2000");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("10.0.0.0/8")});
    EXPECT_EQ(r.ports, (std::vector<port_range>{{1000, 2000}}));
  }
  {
    const auto r = R("203.0.113.5:*");
    EXPECT_EQ(r.ports, (std::vector<port_range>{{0, 65535}}));
  }
  {
    const auto r = R("example.com:80,443");
    EXPECT_EQ(r.ports, (std::vector<port_range>{{80, 80}, {443, 443}}));
  }
  {
    const auto r = R("::ffff:10.0.0.0/104");
    EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("10.0.0.0/8")});
    EXPECT_TRUE(r.dst_cidrs[0].network.is_v4());
  }
}

TEST(RuleSpec, DestFormErrors) {
  const char* bad[] = {
      "",                    // empty rule
      "[::1",                // missing ']'
      "[::1]x",              // junk after ']'
      "[::1]:",              // ':' without a port
      "[::1]22",             // no ':'
      "example.com:",        // missing port
      "example.com:0",       // port 0
      "example.com:65536",   // out of range
      "example.com:2000-1000",
      "example.com:http",
      "example.com:80,",     // trailing comma
      "example.com:,80",
      "10.0.0.1/8",          // host bits set
      "10.0.0.0/33",
      "999.1.1.1",           // looks like an IP, is not
      "1.2.3.4:80:90",       // two colons: read as one (invalid) IPv6 address
      "exa mple.com",
      "ex*ample.com",
      "a..b",
      "[10.0.0.0/8]:",
  };
  for (const char* spec : bad) {
    const auto err = E(spec);
    EXPECT_FALSE(err.empty()) << "'" << spec << "' was accepted";
  }
  EXPECT_EQ(E(""), "empty rule");
  EXPECT_NE(E("[::1").find("']'"), std::string::npos) << E("[::1");
  EXPECT_NE(E("10.0.0.1/8").find("host bits"), std::string::npos) << E("10.0.0.1/8");
  EXPECT_NE(E("example.com:0").find("invalid port"), std::string::npos) << E("example.com:0");
}

TEST(RuleSpec, NameIsTheOptionAndSpec) {
  EXPECT_EQ(R("*.corp.example:443", action::allow).name, "--allow *.corp.example:443");
  EXPECT_EQ(R("10.0.0.0/8", action::block).name, "--deny 10.0.0.0/8");
  EXPECT_EQ(R("dst=10.0.0.0/8 port=22", action::block).name, "--deny dst=10.0.0.0/8 port=22");
  EXPECT_EQ(R("dst=10.0.0.0/8 name=corp-ssh", action::block).name, "corp-ssh");
}

// ---- SPEC: key=value -----------------------------------------------------------

TEST(RuleSpec, KeyValueAllFields) {
  const auto r = R("dst=10.0.0.0/8,example.com port=80,443,1000-2000 user=alice,@ops src=127.0.0.2,::1 "
                   "cmd=connect country=GB,se name=corp");
  EXPECT_EQ(r.name, "corp");
  EXPECT_EQ(r.dst_cidrs, std::vector<cidr>{C("10.0.0.0/8")});
  ASSERT_EQ(r.dst_domains.size(), 1u);
  EXPECT_EQ(r.dst_domains[0], (domain_pattern{kind::exact, "example.com"}));
  EXPECT_EQ(r.ports, (std::vector<port_range>{{80, 80}, {443, 443}, {1000, 2000}}));
  EXPECT_EQ(r.users, (std::vector<std::string>{"alice", "@ops"}));
  EXPECT_EQ(r.src, (std::vector<cidr>{C("127.0.0.2"), C("::1")}));
  EXPECT_EQ(r.commands, command_bits::connect);
  EXPECT_EQ(r.countries, (std::vector<std::string>{"GB", "SE"}));
}

TEST(RuleSpec, KeyAliases) {
  const auto a = R("to=10.0.0.0/8 from=127.0.0.0/8 ports=22 users=* command=bind,udp countries=gb");
  EXPECT_EQ(a.dst_cidrs, std::vector<cidr>{C("10.0.0.0/8")});
  EXPECT_EQ(a.src, std::vector<cidr>{C("127.0.0.0/8")});
  EXPECT_EQ(a.ports, (std::vector<port_range>{{22, 22}}));
  EXPECT_EQ(a.users, std::vector<std::string>{"*"});
  EXPECT_EQ(a.commands, command_bits::bind | command_bits::udp);
  EXPECT_EQ(a.countries, std::vector<std::string>{"GB"});
}

TEST(RuleSpec, KeyValueWhitespaceAndSingleFields) {
  const auto r = R("  dst=*.example.com\tport=443  ");
  ASSERT_EQ(r.dst_domains.size(), 1u);
  EXPECT_EQ(r.dst_domains[0], (domain_pattern{kind::subdomains, "example.com"}));
  EXPECT_EQ(r.ports, (std::vector<port_range>{{443, 443}}));
  EXPECT_EQ(r.commands, command_bits::all) << "no cmd key: every command";
  EXPECT_EQ(R("cmd=*").commands, command_bits::all);
  EXPECT_EQ(R("cmd=udp_associate").commands, command_bits::udp);
  EXPECT_EQ(R("src=10.0.0.0/8").src, std::vector<cidr>{C("10.0.0.0/8")});
}

TEST(RuleSpec, KeyValueErrors) {
  const char* bad[] = {
      "dst=",                       // no value
      "=10.0.0.0/8",                // no key
      "dst=10.0.0.0/8 bogus",       // not key=value
      "foo=bar",                    // unknown key
      "DST=10.0.0.0/8",             // keys are lower case
      "dst=10.0.0.1/8",             // host bits
      "dst=10.0.0.0/8,",            // trailing comma
      "dst=,10.0.0.0/8",
      "dst=10.0.0.0/8,,example.com",
      "dst=ex*ample.com",
      "src=example.com",            // src must be an address
      "src=10.0.0.1/8",
      "src=",
      "port=0",
      "port=70000",
      "port=80,",
      "port=http",
      "port=2000-1000",
      "user=",
      "user=alice,,bob",
      "user=alice,",
      "cmd=shell",
      "cmd=connect,",
      "cmd=",
      "country=GBR",
      "country=G",
      "country=12",
      "country=GB,",
      "name=",
  };
  for (const char* spec : bad) {
    const auto err = E(spec);
    EXPECT_FALSE(err.empty()) << "'" << spec << "' was accepted";
  }
  EXPECT_NE(E("foo=bar").find("unknown key 'foo'"), std::string::npos) << E("foo=bar");
  EXPECT_NE(E("dst=10.0.0.0/8 bogus").find("expected key=value"), std::string::npos);
  EXPECT_NE(E("port=0").find("port"), std::string::npos) << E("port=0");
  EXPECT_NE(E("cmd=shell").find("connect, bind, udp"), std::string::npos) << E("cmd=shell");
  EXPECT_NE(E("country=GBR").find("two-letter"), std::string::npos) << E("country=GBR");
  EXPECT_NE(E("src=10.0.0.1/8").find("host bits"), std::string::npos) << E("src=10.0.0.1/8");
}

TEST(RuleSpec, EmptyDestinationIsAnError) {
  // "[]:80" and ":80" name no destination at all; they are typos, not "*:80".
  // Where the issue is silent, fail closed: refuse them like "[::1" is refused.
  for (const char* spec : {"[]:80", ":80", "[]"}) {
    rule r;
    const auto err = parse_rule_spec(spec, action::allow, r);
    EXPECT_FALSE(err.empty()) << "'" << spec << "' was accepted as a rule for every destination (dst_cidrs="
                              << r.dst_cidrs.size() << ", dst_domains=" << r.dst_domains.size() << ")";
  }
}

TEST(RuleSpec, ParseResetsTheOutput) {
  rule r;
  r.users = {"stale"};
  r.dst_cidrs = {C("192.0.2.0/24")};
  ASSERT_EQ(parse_rule_spec("example.com", action::allow, r), "");
  EXPECT_TRUE(r.users.empty());
  EXPECT_TRUE(r.dst_cidrs.empty());
}

TEST(RuleSpec, OverlongSpecNameIsBounded) {
  std::string spec = "dst=" + std::string(1000, 'a');
  rule r;
  EXPECT_FALSE(parse_rule_spec(spec, action::allow, r).empty()) << "a 1000-character label";
  EXPECT_LE(r.name.size(), 220u);
}

}  // namespace
