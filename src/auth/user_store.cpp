#include "auth/user_store.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace cs::auth {

namespace {

constexpr unsigned long long hash_opslimit = 2;
constexpr std::size_t hash_memlimit = 19u * 1024 * 1024;

/// sodium_init() once per process (it is thread-safe and idempotent).
bool sodium_ready() noexcept {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

void ensure_sodium() {
  if (!sodium_ready()) {
    throw std::runtime_error("libsodium initialisation failed");
  }
}

}  // namespace

bool digest_equal(const digest& a, const digest& b) noexcept {
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_password_hash(std::string_view secret) noexcept {
  return secret.starts_with("$argon2id$") || secret.starts_with("$argon2i$");
}

bool is_valid_password_hash(const std::string& hash) noexcept {
  // needs_rehash() parses the string: -1 means it is not a valid hash.
  return sodium_ready() &&
         crypto_pwhash_str_needs_rehash(hash.c_str(), hash_opslimit, hash_memlimit) != -1;
}

std::string hash_password(std::string_view password) {
  ensure_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), hash_opslimit, hash_memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::runtime_error("argon2id hashing failed (out of memory?)");
  }
  return out;
}

std::size_t user_store::digest_hash::operator()(const digest& d) const noexcept {
  std::size_t h = 0;
  std::memcpy(&h, d.data(), sizeof h);  // the digest is already uniformly random
  return h;
}

user_store::user_store() {
  ensure_sodium();
  randombytes_buf(key_.data(), key_.size());
  dummy_ = keyed("password", "\x01 no such user");
}

user_store::user_store(std::span<const credential> credentials) : user_store() {
  for (const auto& c : credentials) {
    entry e{std::make_unique<user>(user{c.name, c.groups}), {}, {}};
    if (is_password_hash(c.password)) {
      e.hash = c.password;
      if (dummy_hash_.empty()) {
        dummy_hash_ = hash_password("\x01 no such user");
      }
    } else {
      e.password = keyed("password", c.password);
      ++plaintext_;
    }
    users_.insert_or_assign(keyed("user", c.name), std::move(e));
  }
}

digest user_store::keyed(std::string_view domain, std::string_view data) const noexcept {
  return keyed2(domain, data, {});
}

digest user_store::keyed2(std::string_view domain, std::string_view a, std::string_view b) const noexcept {
  // Domain separation keeps a name digest from ever equalling a password
  // digest; lengths are hashed so ("ab","c") and ("a","bc") differ.
  digest out{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, key_.data(), key_.size(), out.size());
  auto put = [&](std::string_view s) {
    const auto len = static_cast<std::uint64_t>(s.size());
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(&len), sizeof len);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  put(domain);
  put(a);
  put(b);
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::vector<const user*> user_store::all() const {
  std::vector<const user*> out;
  out.reserve(users_.size());
  for (const auto& [key, e] : users_) {
    out.push_back(e.u.get());
  }
  return out;
}

bool user_store::needs_slow_check(std::string_view /*name*/) const noexcept { return !dummy_hash_.empty(); }

digest user_store::cache_key(std::string_view name, std::string_view password) const noexcept {
  return keyed2("cache", name, password);
}

const user* user_store::verify(std::string_view name, std::string_view password) const noexcept {
  const auto it = users_.find(keyed("user", name));
  const bool known = it != users_.end();
  const std::string& hash = known ? it->second.hash : dummy_hash_;
  if (!hash.empty()) {
    const bool ok = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    return (ok && known) ? it->second.u.get() : nullptr;
  }
  if (!dummy_hash_.empty()) {
    // A plain-text user among hashed ones: cost what their checks cost.
    // The verdict is the digest's below; GCC does not take (void) as using
    // a warn_unused_result value, a named one it does.
    [[maybe_unused]] const int burned = crypto_pwhash_str_verify(dummy_hash_.c_str(), password.data(), password.size());
  }
  const digest& expected = known ? it->second.password : dummy_;
  const bool match = digest_equal(keyed("password", password), expected);
  return (match && known) ? it->second.u.get() : nullptr;
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

std::vector<credential> parse_users_file(std::string_view text, std::vector<std::string>& errors) {
  std::vector<credential> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') {
      continue;
    }
    credential c;
    if (!parse_credential(line, c) || c.name.empty()) {
      errors.push_back(std::to_string(line_no) + ": expected NAME:PASSWORD or NAME:$argon2id$…");
      continue;
    }
    if (c.name.size() > 255 || (!is_password_hash(c.password) && c.password.size() > 255)) {
      errors.push_back(std::to_string(line_no) + ": SOCKS5 limits names and passwords to 255 bytes");
      continue;
    }
    if (is_password_hash(c.password) && !is_valid_password_hash(c.password)) {
      errors.push_back(std::to_string(line_no) + ": malformed password hash (make one with: cleversocks passwd)");
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace cs::auth
