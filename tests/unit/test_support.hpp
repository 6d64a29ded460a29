#pragma once
// Helpers shared by the unit tests: byte literals, the "parsegrind" driver
// for the pure parsers (Beast test/beast/http/basic_parser.cpp idea), and a
// bounded runner for coroutine test bodies.

#include "core/bytes.hpp"
#include "protocol/parse_result.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/static_string/static_string.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cs::test {

using bytes = std::vector<std::uint8_t>;

inline bytes b(std::initializer_list<int> v) {
  bytes out;
  out.reserve(v.size());
  for (int x : v) {
    out.push_back(static_cast<std::uint8_t>(x));
  }
  return out;
}

template <std::size_t N>
std::string str(const boost::static_string<N>& s) {
  return std::string(s.data(), s.size());
}

/// Same as b() / cat() without std::initializer_list: GCC 12 rejects a
/// braced list whose backing array lives across a co_await ("array used as
/// initializer"), so coroutine bodies use these.
template <typename... T>
bytes bv(T... v) {
  return bytes{static_cast<std::uint8_t>(v)...};
}
template <typename... P>
bytes catv(const P&... parts) {
  bytes out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}

inline bytes str_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

inline bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

inline core::byte_view view(const bytes& v, std::size_t n) { return {v.data(), n}; }
inline core::byte_view view(const bytes& v) { return {v.data(), v.size()}; }

inline const char* status_name(protocol::parse_status s) {
  switch (s) {
    case protocol::parse_status::need_more: return "need_more";
    case protocol::parse_status::done: return "done";
    case protocol::parse_status::error: return "error";
  }
  return "?";
}

/// Parsegrind: feeds `msg` (one complete, valid message) as every prefix,
/// i.e. split at every byte position. Every proper prefix must say need_more
/// (never error, consumed 0); the whole message must be done with
/// consumed == size; the message followed by trailing bytes must stop at the
/// message end. The output object is reused across calls (dirty), and the
/// final value must equal a parse into a fresh object. Returns that value.
template <typename Out, typename Parse>
Out parsegrind(const bytes& msg, Parse parse) {
  Out reused{};
  for (std::size_t k = 0; k < msg.size(); ++k) {
    const auto r = parse(view(msg, k), reused);
    EXPECT_EQ(r.status, protocol::parse_status::need_more)
        << "prefix of " << k << "/" << msg.size() << " bytes: " << status_name(r.status) << " "
        << r.ec.message();
    EXPECT_EQ(r.consumed, 0u) << "prefix " << k;
  }
  const auto r = parse(view(msg), reused);
  EXPECT_EQ(r.status, protocol::parse_status::done) << status_name(r.status) << " " << r.ec.message();
  EXPECT_EQ(r.consumed, msg.size());
  EXPECT_FALSE(r.ec);

  Out fresh{};
  const auto rf = parse(view(msg), fresh);
  EXPECT_EQ(rf.status, protocol::parse_status::done);
  EXPECT_TRUE(fresh == reused) << "reused output differs from a fresh parse";

  // Trailing bytes (the next pipelined message or payload) are not consumed.
  for (const bytes& trailer : {b({0x00}), b({0x05, 0x01, 0x00}), bytes(300, 0xAB)}) {
    bytes more = msg;
    more.insert(more.end(), trailer.begin(), trailer.end());
    Out t{};
    const auto rt = parse(view(more), t);
    EXPECT_EQ(rt.status, protocol::parse_status::done);
    EXPECT_EQ(rt.consumed, msg.size()) << "trailing " << trailer.size() << " bytes";
    EXPECT_TRUE(t == fresh) << "trailing bytes changed the result";
  }
  return fresh;
}

/// For input `in`, every prefix of length <= `error_at` needs more, and every
/// longer prefix (the byte at index `error_at` is visible) fails with `e`.
template <typename Out, typename Parse>
void expect_error_at(const bytes& in, std::size_t error_at, core::socks_errc e, Parse parse) {
  ASSERT_LT(error_at, in.size());
  for (std::size_t k = 0; k <= in.size(); ++k) {
    Out out{};
    const auto r = parse(view(in, k), out);
    if (k <= error_at) {
      EXPECT_EQ(r.status, protocol::parse_status::need_more)
          << "prefix " << k << " (error byte at " << error_at << "): " << status_name(r.status) << " "
          << r.ec.message();
    } else {
      EXPECT_EQ(r.status, protocol::parse_status::error) << "prefix " << k << ": " << status_name(r.status);
      EXPECT_EQ(r.ec, core::make_error_code(e)) << "prefix " << k << ": " << r.ec.message();
      EXPECT_EQ(r.consumed, 0u);
    }
  }
}

/// Every output buffer smaller than `expected` makes `encode` return 0; a
/// buffer of the exact size, or larger, gets exactly `expected`.
template <typename Encode>
void expect_encodes(const bytes& expected, Encode encode) {
  for (std::size_t n = 0; n < expected.size(); ++n) {
    bytes out(n, 0xEE);
    EXPECT_EQ(encode(core::byte_span(out.data(), out.size())), 0u) << "buffer of " << n << " bytes";
  }
  for (std::size_t extra : {std::size_t{0}, std::size_t{7}}) {
    bytes out(expected.size() + extra, 0xEE);
    const std::size_t n = encode(core::byte_span(out.data(), out.size()));
    ASSERT_EQ(n, expected.size());
    out.resize(n);
    EXPECT_EQ(out, expected);
  }
}

/// Thrown by CO_ASSERT to leave a coroutine test body (gtest's ASSERT_* use
/// `return`, which a coroutine cannot).
struct co_assert_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define CO_ASSERT(cond)                                                         \
  do {                                                                          \
    if (!(cond)) {                                                              \
      ADD_FAILURE() << "CO_ASSERT failed: " #cond;                              \
      throw ::cs::test::co_assert_failure("CO_ASSERT failed: " #cond);          \
    }                                                                           \
  } while (false)

/// Spawns `body` on `io` and runs the loop for at most `timeout` (never
/// longer). Fails the test if the body did not finish in time or threw.
/// Returns true when the body completed normally.
template <typename Awaitable>
bool run_bounded(boost::asio::io_context& io, Awaitable body,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  bool finished = false;
  std::exception_ptr error;
  if (io.stopped()) {
    io.restart();  // an earlier run ran out of work
  }
  boost::asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    finished = true;
    error = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!finished && std::chrono::steady_clock::now() < deadline && !io.stopped()) {
    io.run_one_until(deadline);
  }
  if (!finished) {
    ADD_FAILURE() << "test body did not finish within " << timeout.count() << " ms";
    return false;
  }
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const co_assert_failure&) {
      // already reported
    } catch (const std::exception& e) {
      ADD_FAILURE() << "test body threw: " << e.what();
    }
    return false;
  }
  return true;
}

/// Runs `io` until `done()` is true, for at most `timeout`. Returns done().
template <typename Pred>
bool run_until(boost::asio::io_context& io, Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  if (io.stopped()) {
    io.restart();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) {
      io.restart();
      if (io.poll() == 0 && io.stopped()) {
        break;  // no work left at all: waiting longer cannot help
      }
      continue;
    }
    io.run_one_until(deadline);
  }
  return done();
}

}  // namespace cs::test
