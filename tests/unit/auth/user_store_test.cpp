#include "auth/user_store.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using cs::auth::credential;
using cs::auth::parse_credential;
using cs::auth::user_store;

TEST(UserStore, EmptyStoreVerifiesNobody) {
  const user_store s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.verify("", ""), nullptr);
  EXPECT_EQ(s.verify("user", "pass"), nullptr);
}

TEST(UserStore, RightAndWrongPasswords) {
  const std::vector<credential> creds{{"alice", "wonderland"}, {"bob", "builder"}};
  const user_store s(creds);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.size(), 2u);

  const auto* a = s.verify("alice", "wonderland");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "alice");
  const auto* bu = s.verify("bob", "builder");
  ASSERT_NE(bu, nullptr);
  EXPECT_EQ(bu->name, "bob");
  EXPECT_EQ(s.verify("alice", "wonderland"), a) << "stable pointer";

  EXPECT_EQ(s.verify("alice", "builder"), nullptr) << "another user's password";
  EXPECT_EQ(s.verify("bob", "wonderland"), nullptr);
  EXPECT_EQ(s.verify("alice", ""), nullptr);
  EXPECT_EQ(s.verify("alice", "Wonderland"), nullptr) << "case-sensitive password";
  EXPECT_EQ(s.verify("Alice", "wonderland"), nullptr) << "case-sensitive name";
  EXPECT_EQ(s.verify("carol", "wonderland"), nullptr) << "unknown user";
  EXPECT_EQ(s.verify("", ""), nullptr);
}

TEST(UserStore, PrefixesNeverMatch) {
  const std::vector<credential> creds{{"user", "pass"}};
  const user_store s(creds);
  ASSERT_NE(s.verify("user", "pass"), nullptr);
  EXPECT_EQ(s.verify("userX", "pass"), nullptr);
  EXPECT_EQ(s.verify("use", "pass"), nullptr);
  EXPECT_EQ(s.verify("user", "passX"), nullptr);
  EXPECT_EQ(s.verify("user", "pas"), nullptr);
  EXPECT_EQ(s.verify("user", std::string_view("pass\0", 5)), nullptr) << "trailing NUL is a different password";
  EXPECT_EQ(s.verify(std::string_view("user\0", 5), "pass"), nullptr);
  EXPECT_EQ(s.verify("userpass", ""), nullptr) << "no concatenation ambiguity";
  EXPECT_EQ(s.verify("use", "rpass"), nullptr);
}

TEST(UserStore, NameAndPasswordDomainsAreSeparate) {
  // A user whose password equals another user's name must not cross over.
  const std::vector<credential> creds{{"x", "y"}, {"y", "x"}};
  const user_store s(creds);
  EXPECT_NE(s.verify("x", "y"), nullptr);
  EXPECT_NE(s.verify("y", "x"), nullptr);
  EXPECT_EQ(s.verify("x", "x"), nullptr);
  EXPECT_EQ(s.verify("y", "y"), nullptr);
}

TEST(UserStore, MaximumAndEmptyLengths) {
  const std::string n255(255, 'n');
  const std::string p255(255, 'p');
  const std::vector<credential> creds{{n255, p255}, {"", "emptyname"}, {"nopass", ""}};
  const user_store s(creds);
  EXPECT_NE(s.verify(n255, p255), nullptr);
  EXPECT_EQ(s.verify(n255, p255.substr(0, 254)), nullptr);
  EXPECT_EQ(s.verify(n255.substr(0, 254), p255), nullptr);
  EXPECT_EQ(s.verify(n255 + "n", p255), nullptr);

  const auto* e = s.verify("", "emptyname");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->name, "");
  EXPECT_EQ(s.verify("", ""), nullptr);

  ASSERT_NE(s.verify("nopass", ""), nullptr);
  EXPECT_EQ(s.verify("nopass", "x"), nullptr);
}

TEST(UserStore, BinaryCredentials) {
  const std::vector<credential> creds{{std::string("a\0b", 3), std::string("\xff\x00\x01", 3)}};
  const user_store s(creds);
  EXPECT_NE(s.verify(std::string_view("a\0b", 3), std::string_view("\xff\x00\x01", 3)), nullptr);
  EXPECT_EQ(s.verify("a", std::string_view("\xff\x00\x01", 3)), nullptr);
  EXPECT_EQ(s.verify(std::string_view("a\0b", 3), "\xff"), nullptr);
}

TEST(UserStore, DuplicateNameLastWins) {
  const std::vector<credential> creds{{"dup", "first"}, {"dup", "second"}};
  const user_store s(creds);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.verify("dup", "first"), nullptr);
  EXPECT_NE(s.verify("dup", "second"), nullptr);
}

TEST(UserStore, IndependentStoresUseIndependentKeys) {
  // Two stores with the same users both verify (keys are per store, so this
  // also checks that a store never compares against another's digests).
  const std::vector<credential> creds{{"u", "p"}};
  const user_store s1(creds);
  const user_store s2(creds);
  EXPECT_NE(s1.verify("u", "p"), nullptr);
  EXPECT_NE(s2.verify("u", "p"), nullptr);
}

TEST(UserStore, ManyUsers) {
  std::vector<credential> creds;
  for (int i = 0; i < 1000; ++i) {
    creds.push_back({"user" + std::to_string(i), "pw" + std::to_string(i)});
  }
  const user_store s(creds);
  EXPECT_EQ(s.size(), 1000u);
  for (int i = 0; i < 1000; i += 37) {
    EXPECT_NE(s.verify("user" + std::to_string(i), "pw" + std::to_string(i)), nullptr) << i;
    EXPECT_EQ(s.verify("user" + std::to_string(i), "pw" + std::to_string(i + 1)), nullptr) << i;
  }
}

TEST(ParseCredential, SplitsAtTheFirstColon) {
  credential c;
  ASSERT_TRUE(parse_credential("alice:secret", c));
  EXPECT_EQ(c.name, "alice");
  EXPECT_EQ(c.password, "secret");

  ASSERT_TRUE(parse_credential("bob:pa:ss:word", c));
  EXPECT_EQ(c.name, "bob");
  EXPECT_EQ(c.password, "pa:ss:word") << "colons belong to the password";

  ASSERT_TRUE(parse_credential("carol:", c));
  EXPECT_EQ(c.name, "carol");
  EXPECT_EQ(c.password, "");

  ASSERT_TRUE(parse_credential(":pw", c));
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.password, "pw");

  ASSERT_TRUE(parse_credential(":", c));
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.password, "");

  ASSERT_TRUE(parse_credential("::", c));
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.password, ":");
}

TEST(ParseCredential, NoColonFails) {
  credential c{"keep", "me"};
  EXPECT_FALSE(parse_credential("", c));
  EXPECT_FALSE(parse_credential("alice", c));
  EXPECT_FALSE(parse_credential("alice;secret", c));
  EXPECT_EQ(c.name, "keep");
  EXPECT_EQ(c.password, "me");
}

}  // namespace
