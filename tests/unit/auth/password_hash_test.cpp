#include "auth/user_store.hpp"
#include "auth/verify_cache.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using cs::auth::credential;
using cs::auth::user_store;

// One argon2id hash for the whole file (each costs tens of milliseconds).
const std::string& hash_of_pw() {
  static const std::string h = cs::auth::hash_password("correct horse");
  return h;
}

TEST(PasswordHash, Recognised) {
  EXPECT_TRUE(cs::auth::is_password_hash(hash_of_pw()));
  EXPECT_TRUE(hash_of_pw().starts_with("$argon2id$"));
  EXPECT_TRUE(cs::auth::is_password_hash("$argon2i$v=19$m=4096,t=3,p=1$c2FsdA$aGFzaA"));
  EXPECT_FALSE(cs::auth::is_password_hash("plain"));
  EXPECT_FALSE(cs::auth::is_password_hash(""));
  EXPECT_FALSE(cs::auth::is_password_hash("$argon2d$v=19$..."));
  EXPECT_FALSE(cs::auth::is_password_hash("$2y$10$bcrypt"));
  EXPECT_FALSE(cs::auth::is_password_hash(" $argon2id$"));
}

TEST(PasswordHash, SaltedSoDifferentEachTime) {
  EXPECT_NE(cs::auth::hash_password("x"), cs::auth::hash_password("x"));
}

TEST(PasswordHash, HashedUserVerifies) {
  const std::vector<credential> creds{{"carol", hash_of_pw(), {"ops", "admins"}}};
  const user_store s(creds);
  EXPECT_EQ(s.plaintext_count(), 0u);
  const auto* u = s.verify("carol", "correct horse");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->name, "carol");
  EXPECT_EQ(u->groups, (std::vector<std::string>{"ops", "admins"}));
  EXPECT_EQ(s.verify("carol", "correct horsE"), nullptr);
  EXPECT_EQ(s.verify("carol", "correct horse "), nullptr);
  EXPECT_EQ(s.verify("carol", ""), nullptr);
  EXPECT_EQ(s.verify("carol", hash_of_pw()), nullptr) << "the hash itself is not the password";
  EXPECT_EQ(s.verify("dave", "correct horse"), nullptr) << "unknown user checked against the dummy";
}

TEST(PasswordHash, NeedsSlowCheck) {
  const std::vector<credential> plain{{"a", "pw"}};
  const user_store p(plain);
  EXPECT_FALSE(p.needs_slow_check("a"));
  EXPECT_FALSE(p.needs_slow_check("nobody")) << "no hashes anywhere: nothing is slow";
  EXPECT_EQ(p.plaintext_count(), 1u);

  const std::vector<credential> mixed{{"a", "pw"}, {"h", hash_of_pw()}};
  const user_store m(mixed);
  EXPECT_TRUE(m.needs_slow_check("a")) << "a plain-text user among hashed ones costs as much (its name must not show)";
  EXPECT_TRUE(m.needs_slow_check("h"));
  EXPECT_TRUE(m.needs_slow_check("nobody")) << "unknown names cost as much as hashed ones";
  EXPECT_EQ(m.plaintext_count(), 1u);
  EXPECT_NE(m.verify("a", "pw"), nullptr);
  EXPECT_NE(m.verify("h", "correct horse"), nullptr);
  EXPECT_EQ(m.verify("a", "correct horse"), nullptr);
  EXPECT_EQ(m.verify("h", "pw"), nullptr);
}

TEST(PasswordHash, MalformedHashNeverMatches) {
  const std::vector<credential> creds{{"x", "$argon2id$garbage"}};
  const user_store s(creds);
  EXPECT_EQ(s.verify("x", "$argon2id$garbage"), nullptr);
  EXPECT_EQ(s.verify("x", ""), nullptr);
}

TEST(UserStoreAll, ListsEveryUser) {
  const std::vector<credential> creds{{"a", "1"}, {"b", "2"}, {"c", "3"}};
  const user_store s(creds);
  std::vector<std::string> names;
  for (const auto* u : s.all()) {
    names.push_back(u->name);
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(user_store().all().empty());
}

TEST(CacheKey, EqualOnlyForEqualCredentials) {
  const user_store s;
  const auto k = s.cache_key("ab", "c");
  EXPECT_TRUE(cs::auth::digest_equal(k, s.cache_key("ab", "c")));
  EXPECT_FALSE(cs::auth::digest_equal(k, s.cache_key("a", "bc"))) << "lengths are part of the key";
  EXPECT_FALSE(cs::auth::digest_equal(k, s.cache_key("abc", "")));
  EXPECT_FALSE(cs::auth::digest_equal(k, s.cache_key("ab", "C")));
  const user_store other;
  EXPECT_FALSE(cs::auth::digest_equal(k, other.cache_key("ab", "c"))) << "keys are per store";
}

TEST(VerifyCache, FindInsertAndGenerations) {
  const std::vector<credential> creds{{"u", "p"}};
  const user_store s(creds);
  const auto* u = s.verify("u", "p");
  ASSERT_NE(u, nullptr);
  cs::auth::verify_cache cache;
  const auto key = s.cache_key("u", "p");
  EXPECT_EQ(cache.find(key, 1), nullptr);
  cache.insert(key, u, 1);
  EXPECT_EQ(cache.find(key, 1), u);
  EXPECT_EQ(cache.find(s.cache_key("u", "q"), 1), nullptr);
  EXPECT_EQ(cache.size(), 1u);
  // A reload (new generation) forgets everything.
  EXPECT_EQ(cache.find(key, 2), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerifyCache, CapacityAndExpiry) {
  const user_store s;
  cs::auth::verify_cache small(2);
  const cs::auth::user dummy{"d", {}};
  small.insert(s.cache_key("1", ""), &dummy, 1);
  small.insert(s.cache_key("2", ""), &dummy, 1);
  small.insert(s.cache_key("3", ""), &dummy, 1);
  EXPECT_LE(small.size(), 2u);
  EXPECT_EQ(small.find(s.cache_key("3", ""), 1), &dummy) << "the newest entry is kept";

  cs::auth::verify_cache expired(16, std::chrono::seconds(0));
  expired.insert(s.cache_key("x", ""), &dummy, 1);
  EXPECT_EQ(expired.find(s.cache_key("x", ""), 1), nullptr) << "a zero TTL caches nothing";

  cs::auth::verify_cache none(0);
  none.insert(s.cache_key("x", ""), &dummy, 1);
  EXPECT_EQ(none.size(), 0u);
}

TEST(UsersFile, ParsesLinesCommentsAndErrors) {
  const std::string text =
      "# users\n"
      "alice:secret\n"
      "\n"
      "   # indented comment\n"
      "bob:pa:ss\r\n"
      "nocolon\n"
      ":emptyname\n"
      "carol:" + hash_of_pw() + "\n" +
      std::string(256, 'n') + ":pw\n" +
      "dave:" + std::string(256, 'p') + "\n" +
      "erin:" + std::string(255, 'p') + "\n" +
      "last:nolf";
  std::vector<std::string> errors;
  const auto creds = cs::auth::parse_users_file(text, errors);
  std::vector<std::string> names;
  for (const auto& c : creds) {
    names.push_back(c.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob", "carol", "erin", "last"}));
  ASSERT_EQ(creds.size(), 5u);
  EXPECT_EQ(creds[1].password, "pa:ss") << "CR stripped, split at the first colon";
  EXPECT_EQ(creds[2].password, hash_of_pw());
  EXPECT_EQ(creds[4].password, "nolf");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_TRUE(errors[0].starts_with("6:")) << errors[0];
  EXPECT_TRUE(errors[1].starts_with("7:")) << errors[1];
  EXPECT_TRUE(errors[2].starts_with("9:")) << errors[2];
  EXPECT_TRUE(errors[3].starts_with("10:")) << errors[3];
}

TEST(UsersFile, EmptyInput) {
  std::vector<std::string> errors;
  EXPECT_TRUE(cs::auth::parse_users_file("", errors).empty());
  EXPECT_TRUE(cs::auth::parse_users_file("\n\n# only comments\n", errors).empty());
  EXPECT_TRUE(errors.empty());
}

}  // namespace
