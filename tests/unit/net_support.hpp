#pragma once
// Loopback socket helpers for the unit tests that need real sockets.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace cs::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
inline constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

/// A connected loopback pair: `a` connected, `b` accepted. Both on `io`.
inline std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io,
                                                       const asio::ip::address& addr = asio::ip::address_v4::loopback()) {
  tcp::acceptor acc(io, tcp::endpoint(addr, 0));
  tcp::socket a(io);
  a.connect(acc.local_endpoint());  // loopback + backlog: completes at once
  tcp::socket b = acc.accept();
  return {std::move(a), std::move(b)};
}

/// An endpoint on which nothing listens: a socket bound to it that never
/// listens (a SYN gets RST) stays open until the process ends, so no later
/// bind to port 0 can be given the port, as one closed at once could be.
inline tcp::endpoint closed_port(asio::io_context& io, const asio::ip::address& addr = asio::ip::address_v4::loopback()) {
  tcp::socket s(io, tcp::endpoint(addr, 0));  // opened and bound, not listening
  const auto ep = s.local_endpoint();
  (void)s.release();  // the descriptor is kept on purpose (a few per test run)
  return ep;
}

inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) {
    x = static_cast<std::uint8_t>(rng());
  }
  return v;
}

inline asio::awaitable<void> delay(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(nothrow_awaitable);
}

/// Reads until EOF (or an error); returns everything read and the final error.
inline asio::awaitable<std::pair<boost::system::error_code, std::vector<std::uint8_t>>> read_to_eof(tcp::socket& s) {
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 65536> buf{};
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow_awaitable);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(n));
    if (ec) {
      co_return std::make_pair(ec, std::move(out));
    }
  }
}

inline asio::awaitable<std::vector<std::uint8_t>> read_exactly(tcp::socket& s, std::size_t n) {
  std::vector<std::uint8_t> out(n);
  auto [ec, got] = co_await asio::async_read(s, asio::buffer(out), nothrow_awaitable);
  out.resize(got);
  co_return out;
}

inline asio::awaitable<boost::system::error_code> write_all(tcp::socket& s, const std::vector<std::uint8_t>& data) {
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(data), nothrow_awaitable);
  co_return ec;
}

}  // namespace cs::test
