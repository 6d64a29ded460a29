#pragma once
// Users and credential checks.
//
// Timing: nothing compares a secret byte by byte with an early exit.
// - Usernames are looked up by a keyed BLAKE2b digest (random key per
//   store), so hash-table timing reveals nothing an attacker can aim at.
// - Plain-text passwords are stored only as keyed digests and compared as
//   fixed-size digests with sodium_memcmp: neither content nor length leaks.
// - argon2id hashes are verified with libsodium. An unknown user is checked
//   against a dummy hash with the same cost, so "no such user" takes as long
//   as "wrong password" (when the store holds any hashes at all). In such a
//   store a plain-text user's check runs the dummy hash too: a fast answer
//   would tell which names have plain-text passwords.
//
// argon2id verification is slow on purpose (tens of milliseconds): callers
// on an event loop must use needs_slow_check() and run verify() elsewhere.
//
// Thread-safety: immutable after construction; every const member is safe
// from any thread.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cs::auth {

struct user {
  std::string name;
  std::vector<std::string> groups;  ///< for ACL rules that name "@group"
};

struct credential {
  std::string name;
  /// A plain-text password, or an argon2id/argon2i hash in libsodium's
  /// "$argon2id$v=19$m=…,t=…,p=…$salt$hash" form.
  std::string password;
  std::vector<std::string> groups{};
};

using digest = std::array<std::uint8_t, 32>;

class user_store {
 public:
  user_store();  ///< no users: authentication is not required
  explicit user_store(std::span<const credential> credentials);

  bool empty() const noexcept { return users_.empty(); }
  std::size_t size() const noexcept { return users_.size(); }
  std::size_t plaintext_count() const noexcept { return plaintext_; }
  /// Every user (pointers live as long as the store).
  std::vector<const user*> all() const;

  /// The user if `name` exists and `password` matches; nullptr otherwise.
  /// May take tens of milliseconds when argon2 hashes are involved.
  const user* verify(std::string_view name, std::string_view password) const noexcept;

  /// Whether verify(name, …) runs an argon2 computation: for every name in
  /// a store that holds any hash, for none in one that holds none.
  bool needs_slow_check(std::string_view name) const noexcept;

  /// A keyed digest of both credentials, for caching successful slow checks.
  /// Equal digests mean equal credentials (for this store); compare them
  /// with digest_equal().
  digest cache_key(std::string_view name, std::string_view password) const noexcept;

 private:
  struct digest_hash {
    std::size_t operator()(const digest& d) const noexcept;
  };
  struct entry {
    std::unique_ptr<user> u;
    digest password{};  ///< keyed digest, for plain-text secrets
    std::string hash;   ///< argon2 hash string, or empty
  };

  digest keyed(std::string_view domain, std::string_view data) const noexcept;
  digest keyed2(std::string_view domain, std::string_view a, std::string_view b) const noexcept;

  std::array<std::uint8_t, 32> key_{};
  digest dummy_{};
  std::string dummy_hash_;  ///< set when any user has a hash
  std::size_t plaintext_ = 0;
  std::unordered_map<digest, entry, digest_hash> users_;
};

/// Constant-time equality of two digests.
bool digest_equal(const digest& a, const digest& b) noexcept;

/// Whether `secret` is an argon2 hash string (rather than a plain password).
bool is_password_hash(std::string_view secret) noexcept;

/// Whether an argon2 hash string is well-formed (libsodium can verify it).
bool is_valid_password_hash(const std::string& hash) noexcept;

/// argon2id hash of `password` with libsodium (t=2, m=19 MiB: OWASP's
/// recommended minimum). Throws std::runtime_error when out of memory.
std::string hash_password(std::string_view password);

/// Splits "NAME:PASSWORD" at the first colon. Returns false without a colon.
bool parse_credential(std::string_view text, credential& out);

/// Parses a users file: one "NAME:SECRET" per line (SECRET a plain password
/// or an argon2 hash), '#' comments and blank lines ignored. Each problem is
/// appended to `errors` as "LINE: message"; returns what parsed.
std::vector<credential> parse_users_file(std::string_view text, std::vector<std::string>& errors);

}  // namespace cs::auth
