#include "upstream/proxy_client.hpp"

#include "protocol/http_connect.hpp"
#include "protocol/socks4.hpp"
#include "protocol/socks5.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

namespace cs::upstream {

namespace asio = boost::asio;
namespace s5 = protocol::socks5;
namespace s4 = protocol::socks4;
using tcp = asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

hop_result hop_error(core::error_code ec) { return {ec, true, {}}; }

asio::awaitable<core::error_code> send(tcp::socket& sock, const std::uint8_t* data, std::size_t n) {
  auto [ec, written] = co_await asio::async_write(sock, asio::buffer(data, n), nothrow);
  co_return ec;
}

// Reads exactly n more bytes onto `buf` (at `have`).
asio::awaitable<core::error_code> read_exact(tcp::socket& sock, std::uint8_t* buf, std::size_t n) {
  auto [ec, got] = co_await asio::async_read(sock, asio::buffer(buf, n), nothrow);
  if (!ec && got != n) {
    ec = asio::error::eof;
  }
  co_return ec;
}

// A truncated reply (EOF mid-message) is the hop's protocol failure.
core::error_code truncated(core::error_code ec) {
  return ec == asio::error::eof ? core::error_code(core::socks_errc::upstream_failure) : ec;
}

// Greeting and (when offered) RFC 1929 authentication.
asio::awaitable<hop_result> socks5_negotiate(tcp::socket& sock, const proxy_url& hop) {
  std::array<std::uint8_t, s5::max_auth_request_size> out{};
  std::size_t n = s5::encode_greeting(true, hop.has_credentials, out);
  if (auto ec = co_await send(sock, out.data(), n)) {
    co_return hop_error(ec);
  }
  std::array<std::uint8_t, s5::max_reply_size> in{};
  if (auto ec = co_await read_exact(sock, in.data(), 2)) {
    co_return hop_error(truncated(ec));
  }
  s5::method m{};
  if (!s5::parse_method_selection({in.data(), 2}, m).is_done()) {
    co_return hop_error(core::socks_errc::upstream_failure);
  }
  if (m == s5::method::user_pass && hop.has_credentials) {
    n = s5::encode_auth_request(hop.username, hop.password, out);
    if (n == 0) {
      co_return hop_error(core::socks_errc::upstream_failure);  // over-long credentials: never truncated
    }
    if (auto ec = co_await send(sock, out.data(), n)) {
      co_return hop_error(ec);
    }
    if (auto ec = co_await read_exact(sock, in.data(), 2)) {
      co_return hop_error(truncated(ec));
    }
    if (!s5::parse_auth_status({in.data(), 2}).is_done()) {
      co_return hop_error(core::socks_errc::upstream_failure);
    }
  } else if (m != s5::method::no_auth) {
    co_return hop_error(core::socks_errc::upstream_failure);  // 0xFF, or a method we did not offer
  }
  co_return hop_result{};
}

// A request (CONNECT or UDP ASSOCIATE) and its reply, read with exact lengths.
asio::awaitable<hop_result> socks5_request(tcp::socket& sock, s5::command cmd, const core::target_address& next,
                                           s5::reply& rep) {
  std::array<std::uint8_t, s5::max_request_size> out{};
  std::size_t n = s5::encode_request(cmd, next, out);
  if (n == 0) {
    co_return hop_error(core::socks_errc::general_failure);
  }
  if (auto ec = co_await send(sock, out.data(), n)) {
    co_return hop_error(ec);
  }
  // VER REP RSV ATYP, then the first address byte, then exactly the rest.
  std::array<std::uint8_t, s5::max_reply_size> in{};
  if (auto ec = co_await read_exact(sock, in.data(), 5)) {
    co_return hop_error(truncated(ec));
  }
  auto r = s5::parse_reply({in.data(), 5}, rep);
  std::size_t have = 5;
  if (r.status == protocol::parse_status::need_more) {
    std::size_t total = 0;
    switch (in[3]) {
      case 0x01: total = 4 + 4 + 2; break;
      case 0x04: total = 4 + 16 + 2; break;
      case 0x03: total = 4 + 1 + std::size_t{in[4]} + 2; break;
      default: break;  // parse_reply already failed on an unknown ATYP
    }
    if (total > have) {
      if (auto ec = co_await read_exact(sock, in.data() + have, total - have)) {
        co_return hop_error(truncated(ec));
      }
      have = total;
    }
    r = s5::parse_reply({in.data(), have}, rep);
  }
  if (!r.is_done() || r.consumed != have) {
    co_return hop_error(core::socks_errc::upstream_failure);
  }
  if (rep.rep != core::reply_code::succeeded) {
    const auto ec = error_for_upstream_reply(static_cast<std::uint8_t>(rep.rep));
    co_return hop_result{ec, ec == core::socks_errc::upstream_failure, {}};
  }
  co_return hop_result{};
}

asio::awaitable<hop_result> socks5(tcp::socket& sock, const proxy_url& hop, const core::target_address& next) {
  if (auto r = co_await socks5_negotiate(sock, hop); r.ec) {
    co_return r;
  }
  s5::reply rep;
  co_return co_await socks5_request(sock, s5::command::connect, next, rep);
}

asio::awaitable<hop_result> socks4(tcp::socket& sock, const proxy_url& hop, const core::target_address& next) {
  std::array<std::uint8_t, s4::max_request_size> out{};
  const std::size_t n = s4::encode_request(s4::command::connect, next, hop.username, out);
  if (n == 0) {
    co_return hop_error(core::socks_errc::address_type_not_supported);
  }
  if (auto ec = co_await send(sock, out.data(), n)) {
    co_return hop_error(ec);
  }
  std::array<std::uint8_t, s4::reply_size> in{};
  if (auto ec = co_await read_exact(sock, in.data(), in.size())) {
    co_return hop_error(truncated(ec));
  }
  s4::reply rep;
  if (!s4::parse_reply(in, rep).is_done()) {
    co_return hop_error(core::socks_errc::upstream_failure);
  }
  if (!rep.granted) {
    // SOCKS4 has one failure code: it does not say whose fault it was.
    co_return hop_result{core::socks_errc::upstream_failure, false, {}};
  }
  co_return hop_result{};
}

asio::awaitable<hop_result> http(tcp::socket& sock, const proxy_url& hop, const core::target_address& next) {
  std::array<std::uint8_t, protocol::http_connect::max_request_size> out{};
  const std::size_t n =
      protocol::http_connect::encode_request(next, hop.has_credentials, hop.username, hop.password, out);
  if (n == 0) {
    co_return hop_error(core::socks_errc::general_failure);
  }
  if (auto ec = co_await send(sock, out.data(), n)) {
    co_return hop_error(ec);
  }
  std::vector<std::uint8_t> in(protocol::http_connect::max_response_head);
  std::size_t have = 0;
  protocol::http_connect::response res;
  for (;;) {
    const auto r = protocol::http_connect::parse_response({in.data(), have}, res);
    if (r.is_error()) {
      co_return hop_error(core::socks_errc::upstream_failure);
    }
    if (r.is_done()) {
      if (res.status / 100 != 2) {
        const auto ec = error_for_http_status(res.status);
        co_return hop_result{ec, ec == core::socks_errc::upstream_failure, {}};
      }
      hop_result ok;
      ok.early.assign(in.begin() + static_cast<std::ptrdiff_t>(r.consumed),
                      in.begin() + static_cast<std::ptrdiff_t>(have));
      co_return ok;
    }
    auto [ec, got] = co_await sock.async_read_some(asio::buffer(in.data() + have, in.size() - have), nothrow);
    if (ec) {
      co_return hop_error(truncated(ec));
    }
    have += got;
  }
}

}  // namespace

core::error_code error_for_upstream_reply(std::uint8_t rep) noexcept {
  switch (rep) {
    case 0x02: return core::socks_errc::not_allowed;
    case 0x03: return asio::error::network_unreachable;
    case 0x04: return asio::error::host_unreachable;
    case 0x05: return asio::error::connection_refused;
    case 0x06: return core::socks_errc::ttl_expired;
    case 0x07: return core::socks_errc::command_not_supported;
    case 0x08: return core::socks_errc::address_type_not_supported;
    default: return core::socks_errc::upstream_failure;
  }
}

core::error_code error_for_http_status(unsigned status) noexcept {
  switch (status) {
    case 403:
    case 405: return core::socks_errc::not_allowed;
    case 502:
    case 504: return asio::error::host_unreachable;
    default: return core::socks_errc::upstream_failure;
  }
}

asio::awaitable<udp_hop_result> open_udp_associate(tcp::socket& sock, const proxy_url& hop) {
  udp_hop_result out;
  if (hop.scheme != proxy_scheme::socks5) {
    out.result = hop_error(core::socks_errc::command_not_supported);
    out.result.hop_failed = false;
    co_return out;
  }
  if (auto r = co_await socks5_negotiate(sock, hop); r.ec) {
    out.result = std::move(r);
    co_return out;
  }
  // DST 0.0.0.0:0: we do not know which address we will send from yet.
  s5::reply rep;
  core::target_address any{core::ip::address(core::ip::address_v4::any()), 0};
  out.result = co_await socks5_request(sock, s5::command::udp_associate, any, rep);
  if (out.result.ec) {
    co_return out;
  }
  const auto* bnd = rep.bnd.ip_address();
  if (bnd == nullptr) {
    out.result = hop_error(core::socks_errc::upstream_failure);  // a relay we would have to resolve: refuse
    co_return out;
  }
  core::error_code ec;
  const auto peer = sock.remote_endpoint(ec);
  const auto addr = bnd->is_unspecified() && !ec ? peer.address() : *bnd;
  out.relay = asio::ip::udp::endpoint(core::unmap(addr), rep.bnd.port);
  co_return out;
}

asio::awaitable<hop_result> open_tunnel(tcp::socket& sock, const proxy_url& hop, const core::target_address& next) {
  switch (hop.scheme) {
    case proxy_scheme::socks5: co_return co_await socks5(sock, hop, next);
    case proxy_scheme::socks4:
    case proxy_scheme::socks4a: co_return co_await socks4(sock, hop, next);
    case proxy_scheme::http: co_return co_await http(sock, hop, next);
    case proxy_scheme::direct: break;
  }
  co_return hop_result{};  // direct: the socket already leads to `next`
}

}  // namespace cs::upstream
