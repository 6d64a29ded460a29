#include "auth/user_store.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace cs::auth {

namespace {
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    throw std::runtime_error("libsodium initialisation failed");
  }
}
}  // namespace

std::size_t user_store::digest_hash::operator()(const digest& d) const noexcept {
  std::size_t h = 0;
  std::memcpy(&h, d.data(), sizeof h);  // the digest is already uniformly random
  return h;
}

user_store::user_store() {
  ensure_sodium();
  randombytes_buf(key_.data(), key_.size());
  dummy_ = keyed("password", "\x00dummy");
}

user_store::user_store(std::span<const credential> credentials) : user_store() {
  for (const auto& c : credentials) {
    entry e{std::make_unique<user>(user{c.name}), keyed("password", c.password)};
    users_.insert_or_assign(keyed("user", c.name), std::move(e));
  }
}

user_store::digest user_store::keyed(std::string_view domain, std::string_view data) const noexcept {
  // Domain separation keeps a name digest from ever equalling a password digest.
  digest out{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, key_.data(), key_.size(), out.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()), domain.size());
  const unsigned char sep = 0;
  crypto_generichash_update(&st, &sep, 1);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

const user* user_store::verify(std::string_view name, std::string_view password) const noexcept {
  const auto it = users_.find(keyed("user", name));
  const digest& expected = it != users_.end() ? it->second.password : dummy_;
  const digest given = keyed("password", password);
  const bool match = sodium_memcmp(given.data(), expected.data(), given.size()) == 0;
  return (match && it != users_.end()) ? it->second.u.get() : nullptr;
}

bool parse_credential(std::string_view text, credential& out) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  out.name = std::string(text.substr(0, colon));
  out.password = std::string(text.substr(colon + 1));
  return true;
}

}  // namespace cs::auth
