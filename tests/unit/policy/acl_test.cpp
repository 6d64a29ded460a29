// policy/acl: built-in blocks (every category, IPv4, IPv6 and each embedded
// IPv4 form), lifting by specific allows, first match, default action, the
// pre-DNS `need_address` pass, and each rule field.

#include "policy/acl.hpp"

#include "policy_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace cs::policy;
using namespace cs::test::policy;
using verdict = decision::verdict;
namespace core = cs::core;

acl make(std::vector<rule> rules, action def = action::allow, std::shared_ptr<const geoip> geo = nullptr) {
  acl_settings s;
  s.rules = std::move(rules);
  s.default_action = def;
  return acl(std::move(s), std::move(geo));
}

#define EXPECT_DECISION(acl_, view_, v_, by_)                                                     \
  do {                                                                                             \
    const auto d_ = (acl_).evaluate(view_);                                                        \
    EXPECT_TRUE(d_.v == (v_) && d_.by == std::string_view(by_))                                   \
        << "expected " << verdict_name(v_) << " by '" << (by_) << "', got " << describe(d_);       \
  } while (0)

struct blocked_case {
  const char* address;
  const char* category;
};

// ---- built-in blocks ------------------------------------------------------------

const blocked_case builtin_v4[] = {
    {"127.0.0.1", "builtin:loopback"},
    {"127.255.255.254", "builtin:loopback"},
    {"127.0.0.2", "builtin:loopback"},
    {"10.0.0.1", "builtin:private"},
    {"10.255.255.255", "builtin:private"},
    {"172.16.0.1", "builtin:private"},
    {"172.31.255.255", "builtin:private"},
    {"192.168.0.1", "builtin:private"},
    {"192.168.255.255", "builtin:private"},
    {"169.254.0.1", "builtin:link_local"},
    {"169.254.255.255", "builtin:link_local"},
    {"100.64.0.1", "builtin:cgnat"},
    {"100.127.255.255", "builtin:cgnat"},
    {"0.0.0.0", "builtin:unspecified"},
    {"0.1.2.3", "builtin:unspecified"},
    {"224.0.0.1", "builtin:multicast"},
    {"239.255.255.250", "builtin:multicast"},
    {"240.0.0.1", "builtin:reserved"},
    {"255.255.255.255", "builtin:reserved"},
    {"169.254.169.254", "builtin:metadata"},
    {"100.100.100.200", "builtin:metadata"},
};

const blocked_case builtin_v6[] = {
    {"::1", "builtin:loopback"},
    {"fec0::1", "builtin:private"},
    {"fe80::1", "builtin:link_local"},
    {"febf:ffff::1", "builtin:link_local"},
    {"fc00::1", "builtin:unique_local"},
    {"fd12:3456::1", "builtin:unique_local"},
    {"fd00:ec2::253", "builtin:unique_local"},
    {"::", "builtin:unspecified"},
    {"ff02::1", "builtin:multicast"},
    {"ff0e::101", "builtin:multicast"},
    {"fd00:ec2::254", "builtin:metadata"},
};

// Every IPv6 transition form, each embedding a blocked IPv4 address.
const blocked_case builtin_embedded[] = {
    // IPv4-mapped
    {"::ffff:127.0.0.1", "builtin:loopback"},
    {"::ffff:10.0.0.1", "builtin:private"},
    {"::ffff:169.254.169.254", "builtin:metadata"},
    {"::ffff:100.64.0.1", "builtin:cgnat"},
    {"::ffff:255.255.255.255", "builtin:reserved"},
    // IPv4-compatible
    {"::127.0.0.1", "builtin:loopback"},
    {"::10.0.0.1", "builtin:private"},
    {"::169.254.169.254", "builtin:metadata"},
    {"::192.168.1.1", "builtin:private"},
    // NAT64 well-known prefix
    {"64:ff9b::127.0.0.1", "builtin:loopback"},
    {"64:ff9b::10.0.0.1", "builtin:private"},
    {"64:ff9b::169.254.169.254", "builtin:metadata"},
    {"64:ff9b::100.100.100.200", "builtin:metadata"},
    {"64:ff9b::224.0.0.1", "builtin:multicast"},
    // NAT64 local-use prefix, /96 and /48 layouts
    {"64:ff9b:1:a00:0:100::", "builtin:private"},
    {"64:ff9b:1:a9fe:a9:fe00::", "builtin:metadata"},
    {"64:ff9b:1:7f00:0:100::", "builtin:loopback"},
    // 6to4
    {"2002:7f00:1::1", "builtin:loopback"},
    {"2002:a00:1::1", "builtin:private"},
    {"2002:c0a8:101::1", "builtin:private"},
    {"2002:a9fe:a9fe::1", "builtin:metadata"},
    {"2002:6440:1::", "builtin:cgnat"},
    // Teredo: server, then (obfuscated) client
    {"2001:0:7f00:1::ffff:ffff", "builtin:loopback"},
    {"2001:0:808:808:8000:ffff:f5ff:fffe", "builtin:private"},
    {"2001:0:808:808:8000:ffff:5601:5601", "builtin:metadata"},
    // ISATAP
    {"2001:db8::5efe:a00:1", "builtin:private"},
    {"2001:db8::200:5efe:a9fe:a9fe", "builtin:metadata"},
    {"2001:db8:1::5efe:7f00:1", "builtin:loopback"},
};

const char* public_addresses[] = {
    "8.8.8.8",         "1.1.1.1",          "9.255.255.255",  "11.0.0.0",    "172.15.255.255", "172.32.0.0",
    "192.167.255.255", "192.169.0.0",      "169.253.255.255", "169.255.0.0", "100.63.255.255", "100.128.0.0",
    "1.0.0.0",         "223.255.255.255",  "126.255.255.255", "128.0.0.0",   "2001:4860::8888", "2606:4700::1111",
    "::ffff:8.8.8.8",  "64:ff9b::8.8.8.8", "2002:808:808::1", "fbff::1",     "fe00::1",        "fec0::" /* see below */,
};

TEST(AclBuiltin, EveryV4Category) {
  const acl a;
  for (const auto& c : builtin_v4) {
    EXPECT_DECISION(a, to_ip(c.address, 443), verdict::block, c.category);
  }
}

TEST(AclBuiltin, EveryV6Category) {
  const acl a;
  for (const auto& c : builtin_v6) {
    EXPECT_DECISION(a, to_ip(c.address, 443), verdict::block, c.category);
  }
}

TEST(AclBuiltin, EveryEmbeddedForm) {
  const acl a;
  for (const auto& c : builtin_embedded) {
    SCOPED_TRACE(c.address);
    EXPECT_DECISION(a, to_ip(c.address, 443), verdict::block, c.category);
  }
}

TEST(AclBuiltin, Nat64LocalUse96IsBlocked) {
  // A /96 inside 64:ff9b:1::/48 is also read in the /48 layout (0.0.0.0
  // here): blocked either way, by either name.
  const acl a;
  const auto d = a.evaluate(to_ip("64:ff9b:1::10.0.0.1"));
  EXPECT_TRUE(d.blocked() && (d.by == "builtin:private" || d.by == "builtin:unspecified")) << describe(d);
}

TEST(AclBuiltin, PublicAddressesAreAllowed) {
  const acl a;
  for (const char* addr : public_addresses) {
    const auto d = a.evaluate(to_ip(addr, 443));
    if (std::string_view(addr) == "fec0::") {
      EXPECT_DECISION(a, to_ip(addr, 443), verdict::block, "builtin:private");  // site-local, deprecated
      continue;
    }
    EXPECT_TRUE(d.allowed()) << addr << ": " << describe(d);
    EXPECT_EQ(d.by, "default") << addr;
  }
}

TEST(AclBuiltin, Smtp) {
  const acl a;
  EXPECT_DECISION(a, to_ip("8.8.8.8", 25), verdict::block, "builtin:smtp");
  EXPECT_DECISION(a, to_ip("2001:4860::8888", 25), verdict::block, "builtin:smtp");
  EXPECT_DECISION(a, to_name("mail.example.com", 25), verdict::block, "builtin:smtp");
  for (const int port : {24, 26, 465, 587, 2525}) {
    EXPECT_DECISION(a, to_ip("8.8.8.8", static_cast<std::uint16_t>(port)), verdict::allow, "default");
  }
}

TEST(AclBuiltin, MetadataHostnamesBlockedBeforeDns) {
  const acl a;
  for (const char* name : {"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                           "instance-data.ec2.internal", "metadata.azure.internal"}) {
    EXPECT_DECISION(a, to_name(name, 80), verdict::block, "builtin:metadata");
  }
  // A similar name is not a metadata name; it needs DNS like any other.
  EXPECT_DECISION(a, to_name("metadata.google.internal.example", 80), verdict::need_address, "default");
  EXPECT_DECISION(a, to_name("mymetadata", 80), verdict::need_address, "default");
}

TEST(AclBuiltin, MetadataHostnameBlockedBeforeDnsEvenAfterAnAddressRule) {
  // The quick-start configuration (`--allow 127.0.0.0/8 --allow ::1`) puts
  // CIDR rules first. A CIDR rule cannot decide a name before DNS, but the
  // name is a metadata name: the answer is certain, no lookup must happen.
  const auto a = make({allow("127.0.0.0/8"), allow("::1")});
  EXPECT_DECISION(a, to_name("metadata.google.internal", 80), verdict::block, "builtin:metadata");
  const auto b = make({deny("10.0.0.0/8")});
  EXPECT_DECISION(b, to_name("metadata.goog", 80), verdict::block, "builtin:metadata");
}

TEST(AclBuiltin, SmtpBlockedBeforeDnsEvenAfterAnAddressRule) {
  const auto a = make({allow("127.0.0.0/8")});
  EXPECT_DECISION(a, to_name("mail.example.com", 25), verdict::block, "builtin:smtp");
}

TEST(AclBuiltin, MetadataHostnameStillBlockedAfterDns) {
  const auto a = make({allow("127.0.0.0/8")});
  EXPECT_DECISION(a, to_name("metadata.google.internal", 80, "203.0.113.9"), verdict::block,
                  "builtin:metadata");
}

TEST(AclBuiltin, DomainResolvingToBlockedAddress) {
  const acl a;
  EXPECT_DECISION(a, to_name("evil.test", 80), verdict::need_address, "default");
  EXPECT_DECISION(a, to_name("evil.test", 80, "10.0.0.1"), verdict::block, "builtin:private");
  EXPECT_DECISION(a, to_name("evil.test", 80, "169.254.169.254"), verdict::block, "builtin:metadata");
  EXPECT_DECISION(a, to_name("evil.test", 80, "127.0.0.1"), verdict::block, "builtin:loopback");
  EXPECT_DECISION(a, to_name("evil.test", 80, "::ffff:10.0.0.1"), verdict::block, "builtin:private");
  EXPECT_DECISION(a, to_name("evil.test", 80, "64:ff9b::a9fe:a9fe"), verdict::block, "builtin:metadata");
  EXPECT_DECISION(a, to_name("evil.test", 80, "203.0.113.9"), verdict::allow, "default");
}

TEST(AclBuiltin, OffSwitchesTurnCategoriesOff) {
  acl_settings s;
  s.builtin = builtin_blocks{false, false, false, false, false, false, false, false, false, false};
  const acl a(s);
  for (const auto& c : builtin_v4) {
    EXPECT_TRUE(a.evaluate(to_ip(c.address)).allowed()) << c.address;
  }
  EXPECT_TRUE(a.evaluate(to_ip("8.8.8.8", 25)).allowed());
  EXPECT_TRUE(a.evaluate(to_name("metadata.google.internal", 80)).v == verdict::need_address);
  // Turning one category off leaves the others on.
  acl_settings only_private_off;
  only_private_off.builtin.private_ranges = false;
  const acl b(only_private_off);
  EXPECT_TRUE(b.evaluate(to_ip("10.0.0.1")).allowed());
  EXPECT_DECISION(b, to_ip("127.0.0.1"), verdict::block, "builtin:loopback");
  EXPECT_DECISION(b, to_ip("64:ff9b::127.0.0.1"), verdict::block, "builtin:loopback");
}

// This host's own addresses: a public one on an interface reaches every
// local service bound to all addresses, as 127.0.0.1 would.
TEST(AclBuiltin, LocalAddressesOfThisHost) {
  const auto with_local = [](std::vector<rule> rules, bool on = true) {
    acl_settings s;
    s.rules = std::move(rules);
    s.builtin.local = on;
    for (const char* a : {"198.51.100.10", "2001:db8:5::10", "127.0.0.1", "10.0.0.5", "fe80::1", "::ffff:203.0.113.7"}) {
      s.local_addresses.push_back(core::ip::make_address(a));
    }
    return acl(std::move(s));
  };
  const auto a = with_local({});
  EXPECT_DECISION(a, to_ip("198.51.100.10"), verdict::block, "builtin:local");
  EXPECT_DECISION(a, to_ip("::ffff:198.51.100.10"), verdict::block, "builtin:local");
  EXPECT_DECISION(a, to_ip("64:ff9b::198.51.100.10"), verdict::block, "builtin:local");  // through NAT64
  EXPECT_DECISION(a, to_ip("2001:db8:5::10"), verdict::block, "builtin:local");
  EXPECT_DECISION(a, to_ip("203.0.113.7"), verdict::block, "builtin:local");  // the host reported it IPv4-mapped
  EXPECT_TRUE(a.evaluate(to_ip("198.51.100.11")).allowed()) << "a neighbour is not this host";
  // An own address inside another block stays that block's business.
  EXPECT_DECISION(a, to_ip("127.0.0.1"), verdict::block, "builtin:loopback");
  EXPECT_DECISION(a, to_ip("10.0.0.5"), verdict::block, "builtin:private");
  EXPECT_TRUE(with_local({allow("10.0.0.0/8")}).evaluate(to_ip("10.0.0.5")).allowed());
  // Lifted like the others: by an allow rule naming the address itself.
  EXPECT_TRUE(with_local({allow("198.51.100.10")}).evaluate(to_ip("198.51.100.10")).allowed());
  EXPECT_DECISION(with_local({allow("198.51.100.0/24")}), to_ip("198.51.100.10"), verdict::block, "builtin:local");
  EXPECT_DECISION(with_local({allow("*")}), to_ip("198.51.100.10"), verdict::block, "builtin:local");
  EXPECT_TRUE(with_local({}, false).evaluate(to_ip("198.51.100.10")).allowed()) << "switched off";
  // Turning another block off does not bring its range back as "local".
  acl_settings loopback_off;
  loopback_off.builtin.loopback = false;
  loopback_off.builtin.private_ranges = false;
  loopback_off.local_addresses = {core::ip::make_address("127.0.0.1"), core::ip::make_address("10.0.0.5")};
  const acl off(std::move(loopback_off));
  EXPECT_TRUE(off.evaluate(to_ip("127.0.0.1")).allowed());
  EXPECT_TRUE(off.evaluate(to_ip("10.0.0.5")).allowed());
}

TEST(AclBuiltin, HostAddressesIncludeLoopback) {
  const auto mine = host_addresses();
  EXPECT_NE(std::find(mine.begin(), mine.end(), core::ip::make_address("127.0.0.1")), mine.end());
}

// ---- lifting a built-in block -------------------------------------------------------

TEST(AclLift, SpecificEnoughAllowLifts) {
  struct {
    const char* spec;
    const char* address;
  } lifted[] = {
      {"10.0.0.0/8", "10.1.2.3"},
      {"10.1.0.0/16", "10.1.2.3"},
      {"10.1.2.3", "10.1.2.3"},
      {"127.0.0.0/8", "127.0.0.1"},
      {"127.0.0.1", "127.0.0.1"},
      {"::1", "::1"},
      {"172.16.0.0/12", "172.20.0.1"},
      {"192.168.0.0/16", "192.168.1.1"},
      {"169.254.0.0/16", "169.254.1.1"},
      {"169.254.169.254", "169.254.169.254"},
      {"100.64.0.0/10", "100.64.0.1"},
      {"100.100.100.200", "100.100.100.200"},
      {"fe80::/10", "fe80::1"},
      {"fc00::/7", "fd12::1"},
      {"fd00::/8", "fd12::1"},
      {"fd00:ec2::254", "fd00:ec2::254"},
      {"224.0.0.0/4", "224.0.0.1"},
      {"240.0.0.0/4", "250.1.1.1"},
      {"::ffff:10.0.0.0/104", "10.9.9.9"},
      {"10.0.0.0/8", "::ffff:10.9.9.9"},
  };
  for (const auto& c : lifted) {
    const auto a = make({allow(c.spec)});
    EXPECT_DECISION(a, to_ip(c.address), verdict::allow, std::string("--allow ") + c.spec);
  }
}

TEST(AclLift, WideAllowLiftsNothing) {
  struct {
    const char* spec;
    const char* address;
    const char* category;
  } kept[] = {
      {"0.0.0.0/0", "10.1.2.3", "builtin:private"},
      {"0.0.0.0/0", "127.0.0.1", "builtin:loopback"},
      {"0.0.0.0/0", "169.254.169.254", "builtin:metadata"},
      {"8.0.0.0/5", "10.1.2.3", "builtin:private"},          // contains 10/8 but is wider
      {"0.0.0.0/1", "100.64.0.1", "builtin:cgnat"},
      {"::/0", "::1", "builtin:loopback"},
      {"::/0", "fe80::1", "builtin:link_local"},
      {"fc00::/6", "fd12::1", "builtin:unique_local"},
      {"169.254.0.0/16", "169.254.169.254", "builtin:metadata"},  // link-local lifted, metadata not
      {"100.64.0.0/10", "100.100.100.200", "builtin:metadata"},
      {"fc00::/7", "fd00:ec2::254", "builtin:metadata"},
      {"::ffff:0:0/96", "10.0.0.1", "builtin:private"},
      {"*", "10.0.0.1", "builtin:private"},
      {"*", "127.0.0.1", "builtin:loopback"},
      {"*:443", "10.0.0.1", "builtin:private"},
  };
  for (const auto& c : kept) {
    SCOPED_TRACE(std::string("--allow ") + c.spec + " → " + c.address);
    const auto a = make({allow(c.spec)});
    EXPECT_DECISION(a, to_ip(c.address), verdict::block, c.category);
  }
}

TEST(AclLift, LiftIsPerFamilyAndPerForm) {
  // Allowing an IPv4 range does not open the IPv6 forms that embed it: the
  // IPv6 address is not in the allowed range, so the block stays.
  const auto a = make({allow("10.0.0.0/8"), allow("127.0.0.0/8")});
  EXPECT_TRUE(a.evaluate(to_ip("10.0.0.1")).allowed());
  EXPECT_TRUE(a.evaluate(to_ip("::ffff:10.0.0.1")).allowed()) << "mapped is the IPv4 address";
  EXPECT_DECISION(a, to_ip("64:ff9b::10.0.0.1"), verdict::block, "builtin:private");
  EXPECT_DECISION(a, to_ip("2002:a00:1::1"), verdict::block, "builtin:private");
  EXPECT_DECISION(a, to_ip("::1"), verdict::block, "builtin:loopback");
  // Allowing the IPv6 translation prefix does not lift the IPv4 block inside.
  const auto b = make({allow("64:ff9b::/96")});
  EXPECT_DECISION(b, to_ip("64:ff9b::10.0.0.1"), verdict::block, "builtin:private");
  EXPECT_TRUE(b.evaluate(to_ip("64:ff9b::8.8.8.8")).allowed());
  // ::1 lifted, 127/8 not.
  const auto c = make({allow("::1")});
  EXPECT_TRUE(c.evaluate(to_ip("::1")).allowed());
  EXPECT_DECISION(c, to_ip("127.0.0.1"), verdict::block, "builtin:loopback");
  EXPECT_DECISION(c, to_ip("::ffff:127.0.0.1"), verdict::block, "builtin:loopback");
}

TEST(AclLift, OnlyTheMatchingAllowRuleLifts) {
  // A rule that allowed by name (no range), or a rule for another port, does
  // not lift anything.
  const auto a = make({allow("localhost"), allow("dst=10.0.0.0/8 port=80")});
  EXPECT_DECISION(a, to_name("localhost", 80, "127.0.0.1"), verdict::block, "builtin:loopback");
  EXPECT_TRUE(a.evaluate(to_ip("10.0.0.1", 80)).allowed());
  EXPECT_DECISION(a, to_ip("10.0.0.1", 81), verdict::block, "builtin:private");
  // A lifting rule lower down does not help a request an earlier rule decided.
  const auto b = make({allow("0.0.0.0/0"), allow("10.0.0.0/8")});
  EXPECT_DECISION(b, to_ip("10.0.0.1"), verdict::block, "builtin:private");
  // A domain resolving into a lifted range is allowed.
  const auto c = make({allow("10.0.0.0/8")});
  EXPECT_DECISION(c, to_name("intranet.test", 443), verdict::need_address, "--allow 10.0.0.0/8");
  EXPECT_DECISION(c, to_name("intranet.test", 443, "10.2.3.4"), verdict::allow, "--allow 10.0.0.0/8");
  EXPECT_DECISION(c, to_name("intranet.test", 443, "192.168.0.1"), verdict::block, "builtin:private");
}

TEST(AclLift, SmtpLiftedOnlyByANarrowPortRange) {
  struct {
    const char* spec;
    bool lifted;
  } cases[] = {
      {"*:25", true},
      {"8.8.8.8:25", true},
      {"*:20-30", true},
      {"*:1-1023", true},
      {"dst=8.8.8.8 port=25", true},
      {"dst=8.8.8.8 port=80,25", true},
      {"*:*", false},
      {"*:1-65535", false},
      {"*:1-1025", false},
      {"*:25-2000", false},
      {"8.8.8.8", false},
      {"0.0.0.0/0", false},
      {"*", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string("--allow ") + c.spec);
    const auto a = make({allow(c.spec)});
    const auto d = a.evaluate(to_ip("8.8.8.8", 25));
    if (c.lifted) {
      EXPECT_TRUE(d.allowed()) << describe(d);
    } else {
      EXPECT_TRUE(d.blocked() && d.by == "builtin:smtp") << describe(d);
    }
  }
  // Lifting SMTP does not lift an address block.
  const auto a = make({allow("*:25")});
  EXPECT_DECISION(a, to_ip("10.0.0.1", 25), verdict::block, "builtin:private");
  const auto b = make({allow("10.0.0.0/8:25")});
  EXPECT_TRUE(b.evaluate(to_ip("10.0.0.1", 25)).allowed());
}

TEST(AclLift, SmtpRangeOfExactly1024PortsDoesNotLift) {
  // "spans fewer than 1024 ports": 1-1024 and 2-1025 span 1024 ports.
  for (const char* spec : {"*:1-1024", "*:2-1025"}) {
    const auto a = make({allow(spec)});
    const auto d = a.evaluate(to_ip("8.8.8.8", 25));
    EXPECT_TRUE(d.blocked() && d.by == "builtin:smtp") << "--allow " << spec << ": " << describe(d);
  }
}

TEST(AclLift, MetadataNameLiftedOnlyByTheExactName) {
  const auto wide = make({allow(".google.internal"), allow("*.internal")});
  EXPECT_DECISION(wide, to_name("metadata.google.internal", 80), verdict::block, "builtin:metadata");
  const auto exact = make({allow("metadata.google.internal")});
  EXPECT_DECISION(exact, to_name("metadata.google.internal", 80), verdict::need_address,
                  "--allow metadata.google.internal");
  // The name is lifted; its address is a separate block.
  EXPECT_DECISION(exact, to_name("metadata.google.internal", 80, "169.254.169.254"), verdict::block,
                  "builtin:metadata");
  const auto both = make({allow("dst=metadata.google.internal,169.254.169.254")});
  EXPECT_DECISION(both, to_name("metadata.google.internal", 80, "169.254.169.254"), verdict::allow,
                  "--allow dst=metadata.google.internal,169.254.169.254");
}

// ---- order and default -----------------------------------------------------------

TEST(AclOrder, FirstMatchWins) {
  const auto a = make({deny("8.8.8.8"), allow("8.0.0.0/8")});
  EXPECT_DECISION(a, to_ip("8.8.8.8"), verdict::block, "--deny 8.8.8.8");
  EXPECT_DECISION(a, to_ip("8.8.4.4"), verdict::allow, "--allow 8.0.0.0/8");
  const auto b = make({allow("8.0.0.0/8"), deny("8.8.8.8")});
  EXPECT_DECISION(b, to_ip("8.8.8.8"), verdict::allow, "--allow 8.0.0.0/8");
  const auto c = make({deny("*.example.com"), allow(".example.com")});
  EXPECT_DECISION(c, to_name("www.example.com"), verdict::block, "--deny *.example.com");
  EXPECT_DECISION(c, to_name("example.com"), verdict::need_address, "--allow .example.com");
}

TEST(AclOrder, DefaultAction) {
  const auto open = make({deny("203.0.113.0/24")}, action::allow);
  EXPECT_DECISION(open, to_ip("8.8.8.8"), verdict::allow, "default");
  EXPECT_DECISION(open, to_ip("203.0.113.1"), verdict::block, "--deny 203.0.113.0/24");
  const auto closed = make({allow("8.8.8.0/24")}, action::block);
  EXPECT_DECISION(closed, to_ip("8.8.8.8"), verdict::allow, "--allow 8.8.8.0/24");
  EXPECT_DECISION(closed, to_ip("1.1.1.1"), verdict::block, "default");
  EXPECT_DECISION(closed, to_name("example.com"), verdict::need_address, "--allow 8.8.8.0/24");
  EXPECT_DECISION(closed, to_name("example.com", 443, "1.1.1.1"), verdict::block, "default");
  EXPECT_DECISION(closed, to_name("example.com", 443, "8.8.8.8"), verdict::allow, "--allow 8.8.8.0/24");
  const auto none = make({}, action::block);
  EXPECT_DECISION(none, to_ip("8.8.8.8"), verdict::block, "default");
  EXPECT_DECISION(none, to_name("example.com"), verdict::block, "default");
  // Default deny does not lift built-in blocks, and an empty default-allow ACL keeps them.
  EXPECT_DECISION(make({}), to_ip("10.0.0.1"), verdict::block, "builtin:private");
}

TEST(AclOrder, RulesGetNamesAndCount) {
  rule unnamed;
  unnamed.act = action::block;
  unnamed.dst_cidrs.push_back(cidr{core::ip::make_address("203.0.113.0"), 24});
  rule named = unnamed;
  named.name = "mine";
  const auto a = make({unnamed, named, unnamed});
  EXPECT_EQ(a.rule_count(), 3u);
  EXPECT_EQ(a.settings().rules[0].name, "rule 1");
  EXPECT_EQ(a.settings().rules[1].name, "mine");
  EXPECT_EQ(a.settings().rules[2].name, "rule 3");
  EXPECT_DECISION(a, to_ip("203.0.113.7"), verdict::block, "rule 1");
}

TEST(AclOrder, DstWildcardInAListMeansAnyDestination) {
  // "dst=*,10.0.0.0/8" names every destination; it must not shrink to 10/8
  // (for a deny rule that would fail open).
  const auto a = make({deny("dst=*,10.0.0.0/8 port=22")});
  EXPECT_DECISION(a, to_ip("8.8.8.8", 22), verdict::block, "--deny dst=*,10.0.0.0/8 port=22");
  EXPECT_DECISION(a, to_name("example.com", 22), verdict::block, "--deny dst=*,10.0.0.0/8 port=22");
}

// ---- need_address -------------------------------------------------------------------

TEST(AclNeedAddress, DomainTargets) {
  const acl plain;
  EXPECT_DECISION(plain, to_name("example.com"), verdict::need_address, "default");
  // A CIDR rule may match after DNS: undecided.
  const auto cidr_first = make({deny("203.0.113.0/24"), deny("example.com")});
  EXPECT_DECISION(cidr_first, to_name("example.com"), verdict::need_address, "--deny 203.0.113.0/24");
  EXPECT_DECISION(cidr_first, to_name("example.com", 443, "203.0.113.5"), verdict::block,
                  "--deny 203.0.113.0/24");
  EXPECT_DECISION(cidr_first, to_name("example.com", 443, "198.51.100.5"), verdict::block, "--deny example.com");
  EXPECT_DECISION(cidr_first, to_name("other.test", 443, "198.51.100.5"), verdict::allow, "default");
  // A name rule decides at once.
  const auto name_first = make({deny("example.com"), deny("203.0.113.0/24")});
  EXPECT_DECISION(name_first, to_name("example.com"), verdict::block, "--deny example.com");
  // An allow by name still needs the address (built-in blocks apply to it).
  const auto allow_name = make({allow(".example.com")}, action::block);
  EXPECT_DECISION(allow_name, to_name("www.example.com"), verdict::need_address, "--allow .example.com");
  EXPECT_DECISION(allow_name, to_name("www.example.com", 443, "192.168.1.1"), verdict::block,
                  "builtin:private");
  EXPECT_DECISION(allow_name, to_name("www.example.com", 443, "203.0.113.1"), verdict::allow,
                  "--allow .example.com");
  EXPECT_DECISION(allow_name, to_name("example.org"), verdict::block, "default");
  // A rule with both names and CIDRs that matches by name is decided.
  const auto mixed = make({deny("dst=10.0.0.0/8,example.com")});
  EXPECT_DECISION(mixed, to_name("example.com"), verdict::block, "--deny dst=10.0.0.0/8,example.com");
  EXPECT_DECISION(mixed, to_name("example.org"), verdict::need_address, "--deny dst=10.0.0.0/8,example.com");
  // A rule that cannot match for another reason (port) does not need the address.
  const auto other_port = make({deny("dst=203.0.113.0/24 port=22")});
  EXPECT_DECISION(other_port, to_name("example.com", 443), verdict::need_address, "default");
  EXPECT_EQ(other_port.evaluate(to_name("example.com", 22)).v, verdict::need_address);
}

TEST(AclNeedAddress, CountryRules) {
  const auto geo = std::make_shared<const geoip>(geoip_country_db());
  const auto a = make({deny("country=GB")}, action::allow, geo);
  EXPECT_DECISION(a, to_name("example.co.uk"), verdict::need_address, "--deny country=GB");
  EXPECT_DECISION(a, to_name("example.co.uk", 443, "2.125.160.217"), verdict::block, "--deny country=GB");
  EXPECT_DECISION(a, to_name("example.se", 443, "89.160.20.113"), verdict::allow, "default");
  // A country rule restricted to a port that does not apply is no reason to wait.
  const auto b = make({deny("country=GB port=22")}, action::allow, geo);
  EXPECT_DECISION(b, to_name("example.co.uk", 443), verdict::need_address, "default");
}

TEST(AclNeedAddress, IpTargetsNeverNeedAddress) {
  const auto geo = std::make_shared<const geoip>(geoip_country_db());
  const auto a = make({deny("10.0.0.0/8"), deny("country=GB"), allow("example.com")}, action::block, geo);
  for (const char* addr : {"8.8.8.8", "2.125.160.217", "2001:4860::8888", "203.0.113.1"}) {
    EXPECT_NE(a.evaluate(to_ip(addr)).v, verdict::need_address) << addr;
  }
}

// ---- rule fields --------------------------------------------------------------------

TEST(AclFields, Users) {
  const cs::auth::user alice{"alice", {"ops"}};
  const cs::auth::user bob{"bob", {}};
  const cs::auth::user carol{"carol", {"dev", "ops"}};
  const cs::auth::user alicex{"aliceX", {}};
  const auto a = make({allow("user=alice"), allow("user=@ops"), deny("user=*"), allow("8.8.8.8")}, action::block);
  auto as = [](const cs::auth::user* u) {
    auto v = to_ip("8.8.8.8");
    v.user = u;
    return v;
  };
  EXPECT_DECISION(a, as(&alice), verdict::allow, "--allow user=alice");
  EXPECT_DECISION(a, as(&carol), verdict::allow, "--allow user=@ops");
  EXPECT_DECISION(a, as(&bob), verdict::block, "--deny user=*");
  EXPECT_DECISION(a, as(&alicex), verdict::block, "--deny user=*");      // no prefix match
  EXPECT_DECISION(a, as(nullptr), verdict::allow, "--allow 8.8.8.8");    // user rules never match anonymous
  // A group name is not a user name and vice versa.
  const cs::auth::user ops_user{"ops", {}};
  const cs::auth::user in_alice_group{"zed", {"alice"}};
  EXPECT_DECISION(a, as(&ops_user), verdict::block, "--deny user=*");
  EXPECT_DECISION(a, as(&in_alice_group), verdict::block, "--deny user=*");
}

TEST(AclFields, SourceAddress) {
  const auto a = make({deny("src=127.0.0.2"), deny("src=2001:db8::/32")});
  EXPECT_DECISION(a, to_ip("8.8.8.8", 443, "127.0.0.2"), verdict::block, "--deny src=127.0.0.2");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 443, "::ffff:127.0.0.2"), verdict::block, "--deny src=127.0.0.2");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 443, "127.0.0.1"), verdict::allow, "default");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 443, "2001:db8::77"), verdict::block, "--deny src=2001:db8::/32");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 443, "2001:db9::77"), verdict::allow, "default");
  EXPECT_DECISION(a, to_name("example.com", 443, nullptr, "127.0.0.2"), verdict::block, "--deny src=127.0.0.2");
}

TEST(AclFields, Commands) {
  const auto a = make({deny("cmd=bind"), deny("cmd=udp port=53"), allow("cmd=connect")}, action::block);
  auto with = [](core::command c, std::uint16_t port = 443) {
    auto v = to_ip("8.8.8.8", port);
    v.cmd = c;
    return v;
  };
  EXPECT_DECISION(a, with(core::command::connect), verdict::allow, "--allow cmd=connect");
  EXPECT_DECISION(a, with(core::command::bind), verdict::block, "--deny cmd=bind");
  EXPECT_DECISION(a, with(core::command::udp_associate, 53), verdict::block, "--deny cmd=udp port=53");
  EXPECT_DECISION(a, with(core::command::udp_associate, 54), verdict::block, "default");
  EXPECT_DECISION(a, with(core::command::connect, 53), verdict::allow, "--allow cmd=connect");
  const auto b = make({deny("cmd=connect,udp")});
  EXPECT_TRUE(b.evaluate(with(core::command::bind)).allowed());
  EXPECT_TRUE(b.evaluate(with(core::command::udp_associate)).blocked());
}

TEST(AclFields, Ports) {
  const auto a = make({deny("*:1000-2000"), deny("dst=8.8.8.8 port=22,80"), deny("*.example.com:443")});
  for (const int p : {1000, 1500, 2000}) {
    EXPECT_DECISION(a, to_ip("1.1.1.1", static_cast<std::uint16_t>(p)), verdict::block, "--deny *:1000-2000");
  }
  for (const int p : {999, 2001}) {
    EXPECT_DECISION(a, to_ip("1.1.1.1", static_cast<std::uint16_t>(p)), verdict::allow, "default");
  }
  EXPECT_DECISION(a, to_ip("8.8.8.8", 22), verdict::block, "--deny dst=8.8.8.8 port=22,80");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 80), verdict::block, "--deny dst=8.8.8.8 port=22,80");
  EXPECT_DECISION(a, to_ip("8.8.8.8", 81), verdict::allow, "default");
  EXPECT_DECISION(a, to_ip("8.8.4.4", 22), verdict::allow, "default");
  EXPECT_DECISION(a, to_name("www.example.com", 443), verdict::block, "--deny *.example.com:443");
  EXPECT_DECISION(a, to_name("www.example.com", 8443), verdict::need_address, "default");
}

TEST(AclFields, DomainPatternsThroughEvaluate) {
  const auto a = make({deny("blocked.test"), deny("*.sub.test"), deny(".both.test")});
  EXPECT_DECISION(a, to_name("blocked.test"), verdict::block, "--deny blocked.test");
  EXPECT_DECISION(a, to_name("www.blocked.test"), verdict::need_address, "default");
  EXPECT_DECISION(a, to_name("a.sub.test"), verdict::block, "--deny *.sub.test");
  EXPECT_DECISION(a, to_name("sub.test"), verdict::need_address, "default");
  EXPECT_DECISION(a, to_name("both.test"), verdict::block, "--deny .both.test");
  EXPECT_DECISION(a, to_name("x.y.both.test"), verdict::block, "--deny .both.test");
  EXPECT_DECISION(a, to_name("notboth.test"), verdict::need_address, "default");
  // Patterns never match IP targets.
  EXPECT_DECISION(a, to_ip("8.8.8.8"), verdict::allow, "default");
  // The name is matched in the form the session passes (normalised).
  EXPECT_EQ(normalise_host("WWW.Sub.Test."), "www.sub.test");
  const std::string n = normalise_host("A.SUB.TEST.");
  EXPECT_DECISION(a, to_name(n), verdict::block, "--deny *.sub.test");
}

TEST(AclFields, AllFieldsMustMatch) {
  const cs::auth::user alice{"alice", {}};
  const auto a = make({deny("dst=8.8.8.0/24 port=53 user=alice src=127.0.0.2 cmd=connect")});
  auto v = to_ip("8.8.8.8", 53, "127.0.0.2");
  v.user = &alice;
  EXPECT_TRUE(a.evaluate(v).blocked());
  auto other_port = v;
  other_port.port = 54;
  EXPECT_TRUE(a.evaluate(other_port).allowed());
  auto other_src = v;
  other_src.client = core::ip::make_address("127.0.0.1");
  EXPECT_TRUE(a.evaluate(other_src).allowed());
  auto anonymous = v;
  anonymous.user = nullptr;
  EXPECT_TRUE(a.evaluate(anonymous).allowed());
  auto other_dst = v;
  other_dst.address = core::ip::make_address("8.8.9.8");
  EXPECT_TRUE(a.evaluate(other_dst).allowed());
  auto bind = v;
  bind.cmd = core::command::bind;
  EXPECT_TRUE(a.evaluate(bind).allowed());
}

TEST(AclFields, Countries) {
  const auto geo = std::make_shared<const geoip>(geoip_country_db());
  const auto a = make({deny("country=GB"), allow("country=se,JP")}, action::block, geo);
  EXPECT_DECISION(a, to_ip("2.125.160.217"), verdict::block, "--deny country=GB");
  EXPECT_DECISION(a, to_ip("81.2.69.160"), verdict::block, "--deny country=GB");
  EXPECT_DECISION(a, to_ip("::ffff:2.125.160.217"), verdict::block, "--deny country=GB");
  EXPECT_DECISION(a, to_ip("89.160.20.113"), verdict::allow, "--allow country=se,JP");
  EXPECT_DECISION(a, to_ip("2001:218::1"), verdict::allow, "--allow country=se,JP");
  // Country is the location, not the registration: 216.160.83.56/29 is US
  // (registered GB), 2.125.160.216/29 is GB (registered FR).
  EXPECT_DECISION(a, to_ip("216.160.83.57"), verdict::block, "default");
  const auto fr = make({deny("country=FR")}, action::allow, geo);
  EXPECT_DECISION(fr, to_ip("2.125.160.217"), verdict::allow, "default");
  // Unknown to the database: no country matches.
  EXPECT_DECISION(a, to_ip("203.0.113.1"), verdict::block, "default");
  EXPECT_DECISION(a, to_ip("2a02:d500::1"), verdict::block, "default");
  // Built-in blocks still apply to an allowed country.
  const auto gb = make({allow("country=GB")}, action::block, geo);
  EXPECT_DECISION(gb, to_ip("2.125.160.217", 25), verdict::block, "builtin:smtp");
  // A country rule without a database matches nothing (the config refuses it).
  const auto nodb = make({deny("country=GB")});
  EXPECT_DECISION(nodb, to_ip("2.125.160.217"), verdict::allow, "default");
}

}  // namespace
