// Credential checks (src/auth) as the session performs them per RFC 1929
// request (session.cpp authenticate()), without the rate limiter:
//  - a user with an argon2id hash, already verified once: needs_slow_check,
//    cache_key (keyed BLAKE2b of both credentials), verify_cache::find hit;
//  - a user with a plain-text password in a store that holds no hash:
//    needs_slow_check, verify (keyed digest, constant-time compare). In a
//    store that holds any argon2id hash every name takes the first path,
//    plain-text ones too, so that timing does not tell them apart.
// The argon2 verification itself (tens of ms, off the event loop) is not
// measured: the cache exists so that only the first connection pays it.

#include "micro_support.hpp"

#include "auth/user_store.hpp"
#include "auth/verify_cache.hpp"

#include <memory>
#include <string>
#include <vector>

namespace {

using namespace cs::auth;

constexpr std::string_view hashed_user = "alice", hashed_pass = "correct-horse-battery-staple";
constexpr std::string_view plain_user = "bob", plain_pass = "builder-2024";

// 100 users: bob and 98 others with plain-text passwords, and alice, with
// an argon2id hash (computed once: ~0.1 s) in the mixed store only.
std::unique_ptr<user_store> make_store(bool with_hashed_user) {
  std::vector<credential> creds;
  if (with_hashed_user) {
    creds.push_back({std::string(hashed_user), hash_password(hashed_pass), {"staff"}});
  }
  creds.push_back({std::string(plain_user), std::string(plain_pass), {"staff"}});
  for (int i = 0; i < 98; ++i) {
    creds.push_back({"user" + std::to_string(i), "secret-" + std::to_string(i * 7919), {}});
  }
  return std::make_unique<user_store>(creds);
}

const user_store& mixed_store() {
  static const auto s = make_store(true);
  return *s;
}

const user_store& plain_store() {
  static const auto s = make_store(false);
  return *s;
}

void cached_hash(benchmark::State& state) {
  const auto& users = mixed_store();
  constexpr std::uint64_t generation = 1;
  verify_cache cache;
  // Other users' entries, as on a busy worker.
  for (int i = 0; i < 255; ++i) {
    const auto name = "user" + std::to_string(i);
    cache.insert(users.cache_key(name, "pw" + std::to_string(i)), nullptr, generation);
  }
  const user* alice = users.verify(hashed_user, hashed_pass);  // the one slow check
  cache.insert(users.cache_key(hashed_user, hashed_pass), alice, generation);
  if (alice == nullptr || !users.needs_slow_check(hashed_user)) {
    state.SkipWithError("hashed user does not verify");
    return;
  }
  for (auto _ : state) {
    const user* u = nullptr;
    if (users.needs_slow_check(hashed_user)) {
      u = cache.find(users.cache_key(hashed_user, hashed_pass), generation);
    }
    benchmark::DoNotOptimize(u);
  }
  if (cache.find(users.cache_key(hashed_user, hashed_pass), generation) != alice) {
    state.SkipWithError("cache missed");
  }
  cs::bench::count_items(state);
}

void plaintext(benchmark::State& state) {
  const auto& users = plain_store();
  if (users.needs_slow_check(plain_user) || users.verify(plain_user, plain_pass) == nullptr) {
    state.SkipWithError("plain-text user does not verify");
    return;
  }
  for (auto _ : state) {
    const user* u = nullptr;
    if (!users.needs_slow_check(plain_user)) {
      u = users.verify(plain_user, plain_pass);
    }
    benchmark::DoNotOptimize(u);
  }
  cs::bench::count_items(state);
}

[[maybe_unused]] const bool registered = [] {
  benchmark::RegisterBenchmark("auth/verify_hashed_cache_hit", cached_hash);
  benchmark::RegisterBenchmark("auth/verify_plaintext", plaintext);
  return true;
}();

}  // namespace
