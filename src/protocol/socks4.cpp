#include "protocol/socks4.hpp"

#include <algorithm>

namespace cs::protocol::socks4 {
namespace {

using core::byte_view;
using core::socks_errc;

// Finds the NUL terminating a field that starts at in[0]. Returns the field
// length, or npos when more bytes are needed, or max_field + 1 when the cap
// is exceeded.
std::size_t field_length(byte_view in) noexcept {
  const auto window = in.first(std::min(in.size(), max_field + 1));
  const auto nul = std::find(window.begin(), window.end(), 0);
  if (nul != window.end()) {
    return static_cast<std::size_t>(nul - window.begin());
  }
  return in.size() > max_field ? max_field + 1 : byte_view::extent;
}

}  // namespace

parse_result parse_request(byte_view in, request& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 2) {
    return parse_result::need_more();
  }
  if (in[1] != 0x01 && in[1] != 0x02) {
    return parse_result::fail(socks_errc::command_not_supported);
  }
  if (in.size() < 8) {
    return parse_result::need_more();
  }
  const std::uint16_t port = core::load_be16(in.subspan(2, 2));
  core::ip::address_v4::bytes_type ip{};
  std::copy_n(in.begin() + 4, 4, ip.begin());

  const std::size_t ulen = field_length(in.subspan(8));
  if (ulen == max_field + 1) {
    return parse_result::fail(socks_errc::field_too_long);
  }
  if (ulen == byte_view::extent) {
    return parse_result::need_more();
  }
  std::size_t total = 8 + ulen + 1;

  // 0.0.0.x with x != 0 announces a SOCKS4a hostname after USERID.
  const bool is_4a = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;
  if (is_4a) {
    const std::size_t hlen = field_length(in.subspan(total));
    if (hlen == max_field + 1) {
      return parse_result::fail(socks_errc::field_too_long);
    }
    if (hlen == byte_view::extent) {
      return parse_result::need_more();
    }
    if (hlen == 0) {
      return parse_result::fail(socks_errc::bad_domain);
    }
    out.dst.host = core::domain_name(reinterpret_cast<const char*>(in.data() + total), hlen);
    total += hlen + 1;
  } else {
    out.dst.host = core::ip::address(core::ip::make_address_v4(ip));
  }
  out.dst.port = port;
  out.cmd = static_cast<command>(in[1]);
  out.userid.assign(reinterpret_cast<const char*>(in.data() + 8), ulen);
  out.socks4a = is_4a;
  return parse_result::done(total);
}

std::size_t encode_reply(core::socks4_reply cd, const core::ip::address_v4& addr,
                         std::uint16_t port, core::byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(reply_version);
  w.put(static_cast<std::uint8_t>(cd));
  w.put_be16(port);
  w.put(addr.to_bytes());
  return w.result();
}

std::size_t encode_request(command cmd, const core::target_address& dst, std::string_view userid,
                           core::byte_span out) noexcept {
  if (userid.size() > max_field || userid.find('\0') != std::string_view::npos) {
    return 0;
  }
  core::byte_writer w(out);
  w.put(version);
  w.put(static_cast<std::uint8_t>(cmd));
  w.put_be16(dst.port);
  const auto* domain = dst.domain();
  if (domain != nullptr) {
    if (domain->empty()) {
      return 0;
    }
    w.put(core::ip::address_v4::bytes_type{0, 0, 0, 1});
  } else {
    const auto plain = core::unmap(*dst.ip_address());
    if (!plain.is_v4()) {
      return 0;
    }
    w.put(plain.to_v4().to_bytes());
  }
  w.put(core::byte_view(reinterpret_cast<const std::uint8_t*>(userid.data()), userid.size()));
  w.put(0x00);
  if (domain != nullptr) {
    w.put(core::byte_view(reinterpret_cast<const std::uint8_t*>(domain->data()), domain->size()));
    w.put(0x00);
  }
  return w.result();
}

parse_result parse_reply(byte_view in, reply& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != reply_version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < reply_size) {
    return parse_result::need_more();
  }
  out.code = in[1];
  out.granted = in[1] == static_cast<std::uint8_t>(core::socks4_reply::granted);
  out.port = core::load_be16(in.subspan(2, 2));
  core::ip::address_v4::bytes_type ip{};
  std::copy_n(in.begin() + 4, 4, ip.begin());
  out.addr = core::ip::make_address_v4(ip);
  return parse_result::done(reply_size);
}

}  // namespace cs::protocol::socks4
