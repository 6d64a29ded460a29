#include "upstream/connect.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using cs::upstream::family_preference;
using cs::upstream::order_candidates;
namespace ip = cs::core::ip;

std::vector<ip::address> addrs(std::initializer_list<const char*> list) {
  std::vector<ip::address> out;
  for (const char* a : list) {
    out.push_back(ip::make_address(a));
  }
  return out;
}

std::vector<std::string> order(const std::vector<ip::address>& in, family_preference pref, std::uint16_t port = 443) {
  std::vector<std::string> out;
  for (const auto& ep : order_candidates(in, port, pref)) {
    EXPECT_EQ(ep.port(), port);
    out.push_back(ep.address().to_string());
  }
  return out;
}

using strings = std::vector<std::string>;

TEST(OrderCandidates, PreferV6InterleavesStartingWithV6) {
  const auto in = addrs({"1.1.1.1", "2.2.2.2", "3.3.3.3", "2001:db8::1", "2001:db8::2"});
  EXPECT_EQ(order(in, family_preference::prefer_v6),
            (strings{"2001:db8::1", "1.1.1.1", "2001:db8::2", "2.2.2.2", "3.3.3.3"}));
}

TEST(OrderCandidates, PreferV4InterleavesStartingWithV4) {
  const auto in = addrs({"2001:db8::1", "2001:db8::2", "2001:db8::3", "1.1.1.1"});
  EXPECT_EQ(order(in, family_preference::prefer_v4),
            (strings{"1.1.1.1", "2001:db8::1", "2001:db8::2", "2001:db8::3"}));
}

TEST(OrderCandidates, KeepsOrderWithinAFamily) {
  const auto in = addrs({"9.9.9.9", "::2", "1.1.1.1", "::1", "5.5.5.5"});
  EXPECT_EQ(order(in, family_preference::prefer_v6), (strings{"::2", "9.9.9.9", "::1", "1.1.1.1", "5.5.5.5"}));
  EXPECT_EQ(order(in, family_preference::prefer_v4), (strings{"9.9.9.9", "::2", "1.1.1.1", "::1", "5.5.5.5"}));
}

TEST(OrderCandidates, OnlyFamiliesDropTheOther) {
  const auto in = addrs({"1.1.1.1", "2001:db8::1", "2.2.2.2"});
  EXPECT_EQ(order(in, family_preference::only_v4), (strings{"1.1.1.1", "2.2.2.2"}));
  EXPECT_EQ(order(in, family_preference::only_v6), (strings{"2001:db8::1"}));
  EXPECT_TRUE(order(addrs({"1.1.1.1"}), family_preference::only_v6).empty());
  EXPECT_TRUE(order(addrs({"::1"}), family_preference::only_v4).empty());
}

TEST(OrderCandidates, SingleFamilyIsUnchanged) {
  const auto in = addrs({"3.3.3.3", "1.1.1.1", "2.2.2.2"});
  for (auto pref : {family_preference::prefer_v6, family_preference::prefer_v4, family_preference::only_v4}) {
    EXPECT_EQ(order(in, pref), (strings{"3.3.3.3", "1.1.1.1", "2.2.2.2"}));
  }
}

TEST(OrderCandidates, MappedAddressesCountAsV4AndAreUnmapped) {
  const auto in = addrs({"::ffff:10.0.0.1", "2001:db8::1", "::ffff:10.0.0.2"});
  EXPECT_EQ(order(in, family_preference::prefer_v6), (strings{"2001:db8::1", "10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(order(in, family_preference::only_v4), (strings{"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(order(in, family_preference::only_v6), (strings{"2001:db8::1"}));
  for (const auto& ep : order_candidates(in, 1, family_preference::only_v4)) {
    EXPECT_TRUE(ep.address().is_v4());
  }
}

TEST(OrderCandidates, EmptyInEmptyOut) {
  EXPECT_TRUE(order_candidates({}, 80, family_preference::prefer_v6).empty());
}

TEST(OrderCandidates, PortAppliedToAll) {
  const auto in = addrs({"1.1.1.1", "::1"});
  for (const auto& ep : order_candidates(in, 0, family_preference::prefer_v6)) {
    EXPECT_EQ(ep.port(), 0);
  }
  for (const auto& ep : order_candidates(in, 65535, family_preference::prefer_v4)) {
    EXPECT_EQ(ep.port(), 65535);
  }
}

}  // namespace
