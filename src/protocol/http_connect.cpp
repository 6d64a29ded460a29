#include "protocol/http_connect.hpp"

#include <sodium.h>

#include <algorithm>
#include <string>

namespace cs::protocol::http_connect {

namespace {
using core::socks_errc;

void put_text(core::byte_writer& w, std::string_view s) {
  w.put(core::byte_view(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

bool has_ctl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}
}  // namespace

std::size_t encode_request(const core::target_address& target, bool with_credentials, std::string_view user,
                           std::string_view password, core::byte_span out) noexcept {
  if (const auto* d = target.domain(); d != nullptr && (d->empty() || has_ctl(std::string_view(d->data(), d->size())))) {
    return 0;
  }
  if (user.size() > 255 || password.size() > 255) {
    return 0;
  }
  std::string authority;
  try {
    authority = core::to_string(target);
  } catch (...) {
    return 0;
  }
  core::byte_writer w(out);
  put_text(w, "CONNECT ");
  put_text(w, authority);
  put_text(w, " HTTP/1.1\r\nHost: ");
  put_text(w, authority);
  put_text(w, "\r\n");
  if (with_credentials) {
    // base64(user ":" password), at most 511 bytes → 684 characters.
    unsigned char plain[512];
    std::copy(user.begin(), user.end(), plain);
    plain[user.size()] = ':';
    std::copy(password.begin(), password.end(), plain + user.size() + 1);
    const std::size_t plain_len = user.size() + 1 + password.size();
    char b64[700];
    sodium_bin2base64(b64, sizeof b64, plain, plain_len, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(plain, sizeof plain);
    put_text(w, "Proxy-Authorization: Basic ");
    put_text(w, b64);
    put_text(w, "\r\n");
    sodium_memzero(b64, sizeof b64);
  }
  put_text(w, "\r\n");
  return w.result();
}

parse_result parse_response(core::byte_view in, response& out) noexcept {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), std::min(in.size(), max_response_head));
  // The status line can be checked as soon as it is complete.
  const auto eol = text.find("\r\n");
  if (eol == std::string_view::npos) {
    // Fail early on what can never become "HTTP/1.x" — before the length
    // check, so the verdict does not depend on how much has arrived.
    constexpr std::string_view prefix = "HTTP/1.";
    const auto n = std::min(text.size(), prefix.size());
    if (text.substr(0, n) != prefix.substr(0, n)) {
      return parse_result::fail(socks_errc::general_failure);
    }
    return in.size() >= max_response_head ? parse_result::fail(socks_errc::field_too_long)
                                           : parse_result::need_more();
  }
  const auto status_line = text.substr(0, eol);
  // "HTTP/1.x SSS[ reason]"
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") ||
      (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ') {
    return parse_result::fail(socks_errc::general_failure);
  }
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    const char c = status_line[i];
    if (c < '0' || c > '9') {
      return parse_result::fail(socks_errc::general_failure);
    }
    status = status * 10 + static_cast<unsigned>(c - '0');
  }
  if (status < 100 || status > 599 || (status_line.size() > 12 && status_line[12] != ' ')) {
    return parse_result::fail(socks_errc::general_failure);
  }
  // RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ).
  if (std::any_of(status_line.begin() + 12, status_line.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7F;
      })) {
    return parse_result::fail(socks_errc::general_failure);
  }
  const auto end = text.find("\r\n\r\n", eol);
  if (end == std::string_view::npos) {
    if (in.size() >= max_response_head) {
      return parse_result::fail(socks_errc::field_too_long);
    }
    return parse_result::need_more();
  }
  // Header lines: no NUL and no bare CR/LF inside (header smuggling).
  const auto headers = end > eol ? text.substr(eol + 2, end - eol - 2) : std::string_view{};
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const char c = headers[i];
    if (c == '\0' || (c == '\r' && (i + 1 >= headers.size() || headers[i + 1] != '\n')) ||
        (c == '\n' && (i == 0 || headers[i - 1] != '\r'))) {
      return parse_result::fail(socks_errc::general_failure);
    }
  }
  out.status = status;
  return parse_result::done(end + 4);
}

}  // namespace cs::protocol::http_connect
