#include "protocol/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace cs::protocol::proxy {

namespace {

using core::socks_errc;
constexpr std::array<std::uint8_t, 12> v2_signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";

bool parse_port(std::string_view t, std::uint16_t& out) {
  unsigned v = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || t.size() > 5 || ec != std::errc{} || p != t.data() + t.size() || v > 65535 ||
      (t.size() > 1 && t[0] == '0')) {
    return false;
  }
  out = static_cast<std::uint16_t>(v);
  return true;
}

// An address as inet_ntop writes it: hex digits, '.' and ':'. make_address()
// reads a C string, so a NUL would hide whatever follows it, and it would
// take an IPv6 "%scope", which is no part of the protocol.
bool address_text(std::string_view t) {
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
  });
}

parse_result parse_v1(core::byte_view in, header& out) noexcept {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), std::min(in.size(), max_v1_size));
  const auto crlf = text.find("\r\n");
  if (crlf == std::string_view::npos) {
    return in.size() >= max_v1_size ? parse_result::fail(socks_errc::general_failure) : parse_result::need_more();
  }
  const std::string_view fields = text.substr(v1_prefix.size(), crlf - v1_prefix.size());
  std::string_view line = fields;
  std::string_view parts[5];
  std::size_t n = 0;
  while (!line.empty() && n < 5) {
    const auto sp = line.find(' ');
    parts[n++] = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  }
  out = header{version::v1, std::nullopt, std::nullopt};
  if (n >= 1 && parts[0] == "UNKNOWN") {
    return parse_result::done(crlf + 2);
  }
  // Exactly five fields, one space apart: a trailing space is a sixth, empty one.
  if (n != 5 || !line.empty() || fields.ends_with(' ') || (parts[0] != "TCP4" && parts[0] != "TCP6") ||
      !address_text(parts[1]) || !address_text(parts[2])) {
    return parse_result::fail(socks_errc::general_failure);
  }
  boost::system::error_code e1;
  boost::system::error_code e2;
  const auto src = core::ip::make_address(parts[1], e1);
  const auto dst = core::ip::make_address(parts[2], e2);
  std::uint16_t sp = 0;
  std::uint16_t dp = 0;
  const bool v4 = parts[0] == "TCP4";
  if (e1 || e2 || src.is_v4() != v4 || dst.is_v4() != v4 || !parse_port(parts[3], sp) || !parse_port(parts[4], dp)) {
    return parse_result::fail(socks_errc::general_failure);
  }
  out.source = core::ip::tcp::endpoint(src, sp);
  out.destination = core::ip::tcp::endpoint(dst, dp);
  return parse_result::done(crlf + 2);
}

parse_result parse_v2(core::byte_view in, header& out) noexcept {
  if (in.size() < 16) {
    return parse_result::need_more();
  }
  const std::uint8_t ver_cmd = in[12];
  if ((ver_cmd >> 4) != 2) {
    return parse_result::fail(socks_errc::bad_version);
  }
  const std::uint8_t cmd = ver_cmd & 0x0F;
  const std::uint8_t fam = in[13];
  const std::size_t len = core::load_be16(in.subspan(14, 2));
  if (16 + len > max_v2_size || cmd > 1) {
    return parse_result::fail(socks_errc::general_failure);
  }
  if (in.size() < 16 + len) {
    return parse_result::need_more();
  }
  out = header{version::v2, std::nullopt, std::nullopt};
  const auto body = in.subspan(16, len);
  if (cmd == 0) {  // LOCAL: the balancer's own connection
    return parse_result::done(16 + len);
  }
  if (fam == 0x11) {  // TCP over IPv4
    if (len < 12) {
      return parse_result::fail(socks_errc::general_failure);
    }
    core::ip::address_v4::bytes_type s{};
    core::ip::address_v4::bytes_type d{};
    std::copy_n(body.begin(), 4, s.begin());
    std::copy_n(body.begin() + 4, 4, d.begin());
    out.source = core::ip::tcp::endpoint(core::ip::address_v4(s), core::load_be16(body.subspan(8, 2)));
    out.destination = core::ip::tcp::endpoint(core::ip::address_v4(d), core::load_be16(body.subspan(10, 2)));
  } else if (fam == 0x21) {  // TCP over IPv6
    if (len < 36) {
      return parse_result::fail(socks_errc::general_failure);
    }
    core::ip::address_v6::bytes_type s{};
    core::ip::address_v6::bytes_type d{};
    std::copy_n(body.begin(), 16, s.begin());
    std::copy_n(body.begin() + 16, 16, d.begin());
    out.source = core::ip::tcp::endpoint(core::ip::address_v6(s), core::load_be16(body.subspan(32, 2)));
    out.destination = core::ip::tcp::endpoint(core::ip::address_v6(d), core::load_be16(body.subspan(34, 2)));
  }
  // Other families (UDP, UNIX, UNSPEC) carry no usable TCP source: keep the
  // connection's own address.
  return parse_result::done(16 + len);
}

}  // namespace

parse_result parse(core::byte_view in, header& out, bool allow_v1, bool allow_v2) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  const std::size_t sig = std::min(in.size(), v2_signature.size());
  if (allow_v2 && std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(sig), v2_signature.begin())) {
    return sig < v2_signature.size() ? parse_result::need_more() : parse_v2(in, out);
  }
  const std::size_t pre = std::min(in.size(), v1_prefix.size());
  if (allow_v1 && std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(pre), v1_prefix.begin())) {
    return pre < v1_prefix.size() ? parse_result::need_more() : parse_v1(in, out);
  }
  return parse_result::fail(socks_errc::bad_version);
}

std::size_t encode_v1(const core::ip::tcp::endpoint& src, const core::ip::tcp::endpoint& dst,
                      core::byte_span out) noexcept {
  const auto s = core::unmap(src.address());
  const auto d = core::unmap(dst.address());
  if (s.is_v4() != d.is_v4()) {
    return 0;
  }
  char line[max_v1_size + 1];
  const int n = std::snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n", s.is_v4() ? "TCP4" : "TCP6",
                              s.to_string().c_str(), d.to_string().c_str(), src.port(), dst.port());
  if (n <= 0 || static_cast<std::size_t>(n) > out.size() || static_cast<std::size_t>(n) > max_v1_size) {
    return 0;
  }
  std::memcpy(out.data(), line, static_cast<std::size_t>(n));
  return static_cast<std::size_t>(n);
}

std::size_t encode_v2(const core::ip::tcp::endpoint& src, const core::ip::tcp::endpoint& dst,
                      core::byte_span out) noexcept {
  const auto s = core::unmap(src.address());
  const auto d = core::unmap(dst.address());
  if (s.is_v4() != d.is_v4()) {
    return 0;
  }
  core::byte_writer w(out);
  w.put(v2_signature);
  w.put(0x21);  // version 2, PROXY
  w.put(s.is_v4() ? 0x11 : 0x21);
  w.put_be16(s.is_v4() ? 12 : 36);
  if (s.is_v4()) {
    w.put(s.to_v4().to_bytes());
    w.put(d.to_v4().to_bytes());
  } else {
    w.put(s.to_v6().to_bytes());
    w.put(d.to_v6().to_bytes());
  }
  w.put_be16(src.port());
  w.put_be16(dst.port());
  return w.result();
}

}  // namespace cs::protocol::proxy
