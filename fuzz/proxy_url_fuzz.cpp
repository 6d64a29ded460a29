// Upstream proxy URLs: upstream::parse_proxy_url over arbitrary text.
//
// Invariants:
//  - failure always says why; success gives a server with a non-zero port
//    (except direct://, which has none) and credentials of at most 255
//    bytes each, only when the text has an '@';
//  - encode(parse(x)) re-parses to the same value (IPv4-mapped servers as
//    IPv4), where encode is the
//    canonical URL: scheme://pct(user):pct(password)@HOST:PORT with every
//    byte of the credentials other than [A-Za-z0-9] percent-encoded;
//  - redacted() is scheme://user:***@HOST:PORT (the password never shows);
//  - a parse into a dirty output object gives the same result.
#include "fuzz_common.hpp"
#include "upstream/url.hpp"

#include <string>
#include <string_view>

namespace up = cs::upstream;
namespace core = cs::core;

namespace {

std::string pct(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string encode(const up::proxy_url& u) {
  std::string out(up::to_string(u.scheme));
  out += "://";
  if (u.scheme == up::proxy_scheme::direct) {
    return out;
  }
  if (u.has_credentials) {
    out += pct(u.username);
    out += ':';
    out += pct(u.password);
    out += '@';
  }
  out += core::to_string(u.server);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  up::proxy_url u;
  std::string error;
  const bool ok = up::parse_proxy_url(text, u, &error);

  up::proxy_url dirty;
  dirty.scheme = up::proxy_scheme::http;
  dirty.username = "dirty";
  dirty.password = "dirty";
  dirty.has_credentials = true;
  dirty.server.port = 1;
  FUZZ_CHECK(up::parse_proxy_url(text, dirty) == ok);
  if (!ok) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(dirty == u);

  if (u.scheme == up::proxy_scheme::direct) {
    FUZZ_CHECK(text == "direct://");
    FUZZ_CHECK(!u.has_credentials && u.username.empty() && u.password.empty());
    FUZZ_CHECK(u.redacted() == "direct://");
  } else {
    FUZZ_CHECK(u.server.port != 0);
    FUZZ_CHECK(text.find('\0') == std::string_view::npos || u.has_credentials);
    if (const auto* d = u.server.domain()) {
      FUZZ_CHECK(!d->empty() && d->find('@') == core::domain_name::npos && d->find('\0') == core::domain_name::npos);
    }
  }
  FUZZ_CHECK(u.username.size() <= 255 && u.password.size() <= 255);
  if (u.has_credentials) {
    FUZZ_CHECK(text.find('@') != std::string_view::npos);
  } else {
    FUZZ_CHECK(u.username.empty() && u.password.empty());
  }

  const std::string canonical = encode(u);
  up::proxy_url again;
  std::string error2;
  FUZZ_CHECK(up::parse_proxy_url(canonical, again, &error2));
  // IPv4-mapped server addresses print (and so re-parse) as IPv4.
  FUZZ_CHECK(again.scheme == u.scheme && cs::fuzz::same_target(again.server, u.server));
  FUZZ_CHECK(again.has_credentials == u.has_credentials && again.username == u.username &&
             again.password == u.password);
  FUZZ_CHECK(encode(again) == canonical);

  if (u.scheme != up::proxy_scheme::direct) {
    const std::string red = u.redacted();
    std::string expect(up::to_string(u.scheme));
    expect += "://";
    if (u.has_credentials) {
      expect += u.username + ":***@";
    }
    expect += core::to_string(u.server);
    FUZZ_CHECK(red == expect);
  }
  return 0;
}
