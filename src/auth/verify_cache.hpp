#pragma once
// Remembers successful slow (argon2) verifications so that a user opening
// many connections pays the hash once, not per connection. Keyed by the
// store's keyed digest of both credentials (never the password itself);
// entries expire and are bound to one configuration generation.
//
// Thread-safety: none — one cache per event-loop thread.

#include "auth/user_store.hpp"

#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace cs::auth {

class verify_cache {
 public:
  explicit verify_cache(std::size_t capacity = 4096,
                        std::chrono::seconds ttl = std::chrono::seconds(300)) noexcept
      : capacity_(capacity), ttl_(ttl) {}

  /// The cached user for `key`, or nullptr. Entries from another
  /// `generation` (a reloaded user store) are dropped first.
  const user* find(const digest& key, std::uint64_t generation);
  void insert(const digest& key, const user* u, std::uint64_t generation);
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  using clock = std::chrono::steady_clock;
  struct key_hash {
    std::size_t operator()(const digest& d) const noexcept;
  };
  struct key_equal {
    bool operator()(const digest& a, const digest& b) const noexcept { return digest_equal(a, b); }
  };
  struct entry {
    const user* u;
    clock::time_point expires;
  };
  void switch_generation(std::uint64_t generation);

  std::size_t capacity_;
  std::chrono::seconds ttl_;
  std::uint64_t generation_ = 0;
  std::unordered_map<digest, entry, key_hash, key_equal> entries_;
};

}  // namespace cs::auth
