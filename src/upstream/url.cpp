#include "upstream/url.hpp"

#include <cctype>

namespace cs::upstream {

std::string_view to_string(proxy_scheme s) noexcept {
  switch (s) {
    case proxy_scheme::direct: return "direct";
    case proxy_scheme::socks5: return "socks5";
    case proxy_scheme::socks4: return "socks4";
    case proxy_scheme::socks4a: return "socks4a";
    case proxy_scheme::http: return "http";
  }
  return "?";
}

namespace {

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || std::isxdigit(static_cast<unsigned char>(in[i + 1])) == 0 ||
        std::isxdigit(static_cast<unsigned char>(in[i + 2])) == 0) {
      return false;
    }
    out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return true;
}

}  // namespace

std::string proxy_url::redacted() const {
  if (scheme == proxy_scheme::direct) {
    return "direct://";
  }
  std::string out(to_string(scheme));
  out += "://";
  if (has_credentials) {
    out += username;
    out += ":***@";
  }
  out += core::to_string(server);
  return out;
}

bool parse_proxy_url(std::string_view text, proxy_url& out, std::string* error) {
  auto fail = [&](const char* why) {
    if (error != nullptr) {
      *error = why;
    }
    return false;
  };
  out = proxy_url{};
  std::string_view rest = text;
  const auto sep = text.find("://");
  if (sep != std::string_view::npos) {
    const auto scheme = text.substr(0, sep);
    rest = text.substr(sep + 3);
    if (scheme == "socks5" || scheme == "socks5h") {
      out.scheme = proxy_scheme::socks5;
    } else if (scheme == "socks4") {
      out.scheme = proxy_scheme::socks4;
    } else if (scheme == "socks4a") {
      out.scheme = proxy_scheme::socks4a;
    } else if (scheme == "http") {
      out.scheme = proxy_scheme::http;
    } else if (scheme == "direct") {
      if (!rest.empty()) {
        return fail("direct:// takes no address");
      }
      return true;
    } else {
      return fail("unknown scheme (socks5, socks4, socks4a, http, direct)");
    }
  } else {
    out.scheme = proxy_scheme::socks5;
  }
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  const auto at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const auto creds = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = creds.find(':');
    if (!percent_decode(creds.substr(0, colon), out.username) ||
        (colon != std::string_view::npos && !percent_decode(creds.substr(colon + 1), out.password))) {
      return fail("bad percent-encoding in credentials");
    }
    if (out.username.size() > 255 || out.password.size() > 255) {
      return fail("username and password are limited to 255 bytes");
    }
    out.has_credentials = true;
  }
  if (!core::parse_target(rest, out.server) || out.server.port == 0) {
    return fail("expected HOST:PORT");
  }
  return true;
}

}  // namespace cs::upstream
