#pragma once
// Users and credential checks.
//
// Timing: a lookup never compares a secret byte-by-byte with early exit.
// Usernames are looked up by a keyed BLAKE2b digest (the key is random per
// process, so an attacker cannot aim at hash-table timing), and the password
// check always runs — against a dummy when the name is unknown — as a
// constant-time comparison of fixed-size keyed digests, so neither content
// nor length of the stored password leaks.
//
// Thread-safety: immutable after construction; verify() may be called from
// any thread concurrently.

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
};

struct credential {
  std::string name;
  std::string password;  ///< plain text (argon2id hashes come with the users file)
};

class user_store {
 public:
  user_store();  ///< no users: authentication is not required
  explicit user_store(std::span<const credential> credentials);

  bool empty() const noexcept { return users_.empty(); }
  std::size_t size() const noexcept { return users_.size(); }

  /// The user if `name` exists and `password` matches; nullptr otherwise.
  /// The returned pointer lives as long as this store.
  const user* verify(std::string_view name, std::string_view password) const noexcept;

 private:
  using digest = std::array<std::uint8_t, 32>;
  struct digest_hash {
    std::size_t operator()(const digest& d) const noexcept;
  };
  struct entry {
    std::unique_ptr<user> u;
    digest password;
  };

  digest keyed(std::string_view domain, std::string_view data) const noexcept;

  std::array<std::uint8_t, 32> key_{};
  digest dummy_{};
  std::unordered_map<digest, entry, digest_hash> users_;
};

/// Splits "NAME:PASSWORD" at the first colon. Returns false without a colon.
bool parse_credential(std::string_view text, credential& out);

}  // namespace cs::auth
