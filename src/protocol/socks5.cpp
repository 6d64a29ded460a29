#include "protocol/socks5.hpp"

#include <algorithm>
#include <cstring>

namespace cs::protocol::socks5 {
namespace {

using core::byte_span;
using core::byte_view;
using core::socks_errc;

// ATYP, DST.ADDR, DST.PORT starting at in[0]. On done, `consumed` is the
// length of those fields.
parse_result parse_address(byte_view in, core::target_address& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  std::size_t addr_len = 0;
  std::size_t addr_off = 1;
  switch (static_cast<atyp>(in[0])) {
    case atyp::ipv4: addr_len = 4; break;
    case atyp::ipv6: addr_len = 16; break;
    case atyp::domain:
      if (in.size() < 2) {
        return parse_result::need_more();
      }
      addr_len = in[1];
      addr_off = 2;
      if (addr_len == 0) {
        return parse_result::fail(socks_errc::bad_domain);
      }
      break;
    default: return parse_result::fail(socks_errc::address_type_not_supported);
  }
  const std::size_t total = addr_off + addr_len + 2;
  if (in.size() < total) {
    // A NUL inside a domain is an error as soon as it is visible.
    if (addr_off == 2) {
      const auto seen = in.subspan(2, std::min(in.size() - 2, addr_len));
      if (std::find(seen.begin(), seen.end(), 0) != seen.end()) {
        return parse_result::fail(socks_errc::bad_domain);
      }
    }
    return parse_result::need_more();
  }
  const auto addr = in.subspan(addr_off, addr_len);
  switch (static_cast<atyp>(in[0])) {
    case atyp::ipv4: {
      core::ip::address_v4::bytes_type b{};
      std::copy(addr.begin(), addr.end(), b.begin());
      out.host = core::ip::address(core::ip::make_address_v4(b));
      break;
    }
    case atyp::ipv6: {
      core::ip::address_v6::bytes_type b{};
      std::copy(addr.begin(), addr.end(), b.begin());
      out.host = core::ip::address(core::ip::make_address_v6(b));
      break;
    }
    default: {
      if (std::find(addr.begin(), addr.end(), 0) != addr.end()) {
        return parse_result::fail(socks_errc::bad_domain);
      }
      out.host = core::domain_name(reinterpret_cast<const char*>(addr.data()), addr.size());
      break;
    }
  }
  out.port = core::load_be16(in.subspan(addr_off + addr_len, 2));
  return parse_result::done(total);
}

// ATYP ADDR PORT for an IP address (IPv4-mapped written as IPv4).
void put_address(core::byte_writer& w, const core::ip::address& a, std::uint16_t port) noexcept {
  const auto plain = core::unmap(a);
  if (plain.is_v4()) {
    w.put(static_cast<std::uint8_t>(atyp::ipv4));
    w.put(plain.to_v4().to_bytes());
  } else {
    w.put(static_cast<std::uint8_t>(atyp::ipv6));
    w.put(plain.to_v6().to_bytes());
  }
  w.put_be16(port);
}

// ATYP ADDR PORT for any target. Returns false for an empty domain.
bool put_target(core::byte_writer& w, const core::target_address& t) noexcept {
  if (const auto* d = t.domain()) {
    if (d->empty()) {
      return false;
    }
    w.put(static_cast<std::uint8_t>(atyp::domain));
    w.put(static_cast<std::uint8_t>(d->size()));
    w.put(byte_view(reinterpret_cast<const std::uint8_t*>(d->data()), d->size()));
    w.put_be16(t.port);
    return true;
  }
  put_address(w, *t.ip_address(), t.port);
  return true;
}

}  // namespace

// ---------------------------------------------------------------- server side

parse_result parse_greeting(byte_view in, greeting& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 2) {
    return parse_result::need_more();
  }
  const std::size_t total = 2 + std::size_t{in[1]};
  if (in.size() < total) {
    return parse_result::need_more();
  }
  out.methods.reset();
  for (auto m : in.subspan(2, in[1])) {
    out.methods.set(m);
  }
  return parse_result::done(total);
}

std::size_t encode_method_selection(method m, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(version);
  w.put(static_cast<std::uint8_t>(m));
  return w.result();
}

parse_result parse_auth_request(byte_view in, auth_request& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != auth_version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 2) {
    return parse_result::need_more();
  }
  const std::size_t ulen = in[1];
  if (in.size() < 3 + ulen) {
    return parse_result::need_more();
  }
  const std::size_t plen = in[2 + ulen];
  const std::size_t total = 3 + ulen + plen;
  if (in.size() < total) {
    return parse_result::need_more();
  }
  out.username.assign(reinterpret_cast<const char*>(in.data() + 2), ulen);
  out.password.assign(reinterpret_cast<const char*>(in.data() + 3 + ulen), plen);
  return parse_result::done(total);
}

std::size_t encode_auth_status(bool success, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(auth_version);
  w.put(success ? 0x00 : 0x01);
  return w.result();
}

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
  if (in[1] < 0x01 || in[1] > 0x03) {
    return parse_result::fail(socks_errc::command_not_supported);
  }
  if (in.size() < 4) {
    return parse_result::need_more();
  }
  auto addr = parse_address(in.subspan(3), out.dst);
  if (!addr.is_done()) {
    return addr;
  }
  out.cmd = static_cast<command>(in[1]);
  return parse_result::done(3 + addr.consumed);
}

std::size_t encode_reply(core::reply_code rep, const core::ip::address& bnd_addr,
                         std::uint16_t bnd_port, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(version);
  w.put(static_cast<std::uint8_t>(rep));
  w.put(0x00);
  put_address(w, bnd_addr, bnd_port);
  return w.result();
}

parse_result parse_udp_header(byte_view in, udp_header& out) noexcept {
  if (in.size() < 4) {
    return parse_result::need_more();
  }
  auto addr = parse_address(in.subspan(3), out.dst);
  if (!addr.is_done()) {
    return addr;
  }
  out.frag = in[2];
  return parse_result::done(3 + addr.consumed);
}

std::size_t encode_udp_header(const core::target_address& dst, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(0x00);
  w.put(0x00);
  w.put(0x00);  // FRAG: we never fragment
  return put_target(w, dst) ? w.result() : 0;
}

// ---------------------------------------------------------------- client side

std::size_t encode_greeting(bool offer_no_auth, bool offer_user_pass, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(version);
  w.put(static_cast<std::uint8_t>((offer_no_auth ? 1 : 0) + (offer_user_pass ? 1 : 0)));
  if (offer_no_auth) {
    w.put(static_cast<std::uint8_t>(method::no_auth));
  }
  if (offer_user_pass) {
    w.put(static_cast<std::uint8_t>(method::user_pass));
  }
  return (offer_no_auth || offer_user_pass) ? w.result() : 0;
}

parse_result parse_method_selection(byte_view in, method& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 2) {
    return parse_result::need_more();
  }
  out = static_cast<method>(in[1]);
  return parse_result::done(2);
}

std::size_t encode_auth_request(std::string_view username, std::string_view password,
                                byte_span out) noexcept {
  if (username.size() > 255 || password.size() > 255) {
    return 0;
  }
  core::byte_writer w(out);
  w.put(auth_version);
  w.put(static_cast<std::uint8_t>(username.size()));
  w.put(byte_view(reinterpret_cast<const std::uint8_t*>(username.data()), username.size()));
  w.put(static_cast<std::uint8_t>(password.size()));
  w.put(byte_view(reinterpret_cast<const std::uint8_t*>(password.data()), password.size()));
  return w.result();
}

parse_result parse_auth_status(byte_view in) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != auth_version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 2) {
    return parse_result::need_more();
  }
  if (in[1] != 0x00) {
    return parse_result::fail(socks_errc::auth_failed);
  }
  return parse_result::done(2);
}

std::size_t encode_request(command cmd, const core::target_address& dst, byte_span out) noexcept {
  core::byte_writer w(out);
  w.put(version);
  w.put(static_cast<std::uint8_t>(cmd));
  w.put(0x00);
  return put_target(w, dst) ? w.result() : 0;
}

parse_result parse_reply(byte_view in, reply& out) noexcept {
  if (in.empty()) {
    return parse_result::need_more();
  }
  if (in[0] != version) {
    return parse_result::fail(socks_errc::bad_version);
  }
  if (in.size() < 4) {
    return parse_result::need_more();
  }
  auto addr = parse_address(in.subspan(3), out.bnd);
  if (!addr.is_done()) {
    return addr;
  }
  out.rep = static_cast<core::reply_code>(in[1]);
  return parse_result::done(3 + addr.consumed);
}

}  // namespace cs::protocol::socks5
