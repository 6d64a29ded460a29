#include "session/handshake.hpp"

#include "obs/log.hpp"
#include "protocol/socks4.hpp"
#include "protocol/socks5.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

namespace cs::session {

namespace asio = boost::asio;
namespace s5 = protocol::socks5;
namespace s4 = protocol::socks4;
using protocol::parse_result;
using protocol::parse_status;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::string_view to_string(client_protocol p) noexcept {
  switch (p) {
    case client_protocol::socks4: return "socks4";
    case client_protocol::socks5: return "socks5";
    case client_protocol::unknown: break;
  }
  return "-";
}

std::string_view to_string(command c) noexcept {
  switch (c) {
    case command::connect: return "connect";
    case command::bind: return "bind";
    case command::udp_associate: return "udp";
  }
  return "-";
}

void handshake_buffer::consume(std::size_t n) noexcept {
  begin += n;
  if (begin >= end) {
    begin = end = 0;
  }
}

core::byte_span handshake_buffer::free_space() noexcept {
  if (begin > 0) {
    std::memmove(data.data(), data.data() + begin, end - begin);
    end -= begin;
    begin = 0;
  }
  return {data.data() + end, capacity - end};
}

namespace {

// Reads until `parse` stops asking for more. Every message has a protocol
// maximum far below the buffer size, so the loop is bounded by it.
template <typename Parse>
asio::awaitable<parse_result> read_message(tcp::socket& sock, handshake_buffer& buf, Parse parse) {
  for (;;) {
    const parse_result r = parse(buf.pending());
    if (r.status != parse_status::need_more) {
      co_return r;
    }
    const auto space = buf.free_space();
    if (space.empty()) {
      co_return parse_result::fail(core::socks_errc::general_failure);  // unreachable with the caps
    }
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(space.data(), space.size()), nothrow);
    if (ec) {
      co_return parse_result{parse_status::error, 0, ec};
    }
    buf.end += n;
  }
}

asio::awaitable<core::error_code> send(tcp::socket& sock, const std::uint8_t* data, std::size_t n) {
  auto [ec, written] = co_await asio::async_write(sock, asio::buffer(data, n), nothrow);
  co_return ec;
}

asio::awaitable<void> socks5(tcp::socket& client, handshake_buffer& buf, authenticator& auth,
                             handshake_result& out) {
  s5::greeting greeting;
  auto r = co_await read_message(client, buf, [&](core::byte_view in) { return s5::parse_greeting(in, greeting); });
  if (!r.is_done()) {
    out.ec = r.ec;
    co_return;
  }
  buf.consume(r.consumed);

  // With users configured, only username/password is acceptable: a client
  // offering only "no auth" is refused, never let through.
  s5::method chosen = s5::method::no_acceptable;
  if (auth.required()) {
    if (greeting.offers(s5::method::user_pass)) {
      chosen = s5::method::user_pass;
    }
  } else if (greeting.offers(s5::method::no_auth)) {
    chosen = s5::method::no_auth;
  }
  std::array<std::uint8_t, 2> sel{};
  const auto sel_len = s5::encode_method_selection(chosen, sel);
  if (auto ec = co_await send(client, sel.data(), sel_len)) {
    out.ec = ec;
    co_return;
  }
  if (chosen == s5::method::no_acceptable) {
    out.ec = core::socks_errc::no_acceptable_method;
    co_return;
  }

  if (chosen == s5::method::user_pass) {
    // Anything but a well-formed RFC 1929 request here (a CONNECT sent
    // instead, say) is an authentication failure.
    s5::auth_request creds;
    r = co_await read_message(client, buf, [&](core::byte_view in) { return s5::parse_auth_request(in, creds); });
    if (r.status == parse_status::error && r.ec.category() != core::socks_category()) {
      out.ec = r.ec;  // the connection failed; nothing to answer
      co_return;
    }
    const auth::user* u = nullptr;
    if (r.is_done()) {
      buf.consume(r.consumed);
      u = co_await auth.authenticate(std::string_view(creds.username.data(), creds.username.size()),
                                     std::string_view(creds.password.data(), creds.password.size()));
    }
    auth.decided(u != nullptr);
    std::array<std::uint8_t, 2> status{};
    const auto status_len = s5::encode_auth_status(u != nullptr, status);
    const auto wec = co_await send(client, status.data(), status_len);
    if (u == nullptr) {
      out.ec = core::socks_errc::auth_failed;
      co_return;
    }
    if (wec) {
      out.ec = wec;
      co_return;
    }
    out.user = u;
  }

  s5::request req;
  r = co_await read_message(client, buf, [&](core::byte_view in) { return s5::parse_request(in, req); });
  if (!r.is_done()) {
    out.ec = r.ec;
    // A malformed request is answered; a dropped connection is not.
    out.reply_due = r.ec.category() == core::socks_category();
    co_return;
  }
  buf.consume(r.consumed);
  out.target = req.dst;
  out.target_known = true;
  switch (req.cmd) {
    case s5::command::connect: out.cmd = command::connect; break;
    case s5::command::bind: out.cmd = command::bind; break;
    case s5::command::udp_associate: out.cmd = command::udp_associate; break;
  }
}

asio::awaitable<void> socks4(tcp::socket& client, handshake_buffer& buf, authenticator& auth,
                             handshake_result& out) {
  s4::request req;
  auto r = co_await read_message(client, buf, [&](core::byte_view in) { return s4::parse_request(in, req); });
  if (!r.is_done()) {
    out.ec = r.ec;
    out.reply_due = r.ec.category() == core::socks_category();
    co_return;
  }
  buf.consume(r.consumed);
  out.target = req.dst;
  out.target_known = true;
  out.cmd = req.cmd == s4::command::bind ? command::bind : command::connect;
  if (auth.required()) {
    // SOCKS4 cannot carry a password: with users configured it is refused.
    out.ec = core::socks_errc::auth_required;
    out.reply_due = true;
  }
}

}  // namespace

asio::awaitable<parse_result> read_proxy_header(tcp::socket& client, handshake_buffer& buf, bool allow_v1,
                                                bool allow_v2, protocol::proxy::header& out) {
  auto r = co_await read_message(client, buf, [&](core::byte_view in) {
    return protocol::proxy::parse(in, out, allow_v1, allow_v2);
  });
  if (r.is_done()) {
    buf.consume(r.consumed);
  }
  co_return r;
}

asio::awaitable<handshake_result> run_handshake(tcp::socket& client, handshake_buffer& buf,
                                                authenticator& auth) {
  handshake_result out;
  if (buf.pending().empty()) {
    const auto space = buf.free_space();
    auto [ec, n] = co_await client.async_read_some(asio::buffer(space.data(), space.size()), nothrow);
    if (ec) {
      out.ec = ec;
      co_return out;
    }
    buf.end += n;
  }
  switch (buf.pending()[0]) {
    case s5::version:
      out.proto = client_protocol::socks5;
      co_await socks5(client, buf, auth, out);
      break;
    case s4::version:
      out.proto = client_protocol::socks4;
      co_await socks4(client, buf, auth, out);
      break;
    default:
      out.ec = core::socks_errc::bad_version;  // not SOCKS: no reply format to answer in
      break;
  }
  co_return out;
}

}  // namespace cs::session
