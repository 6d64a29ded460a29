#include "relay/tcp_relay.hpp"

#include "net_support.hpp"
#include "relay_modes.hpp"
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

namespace {

using namespace cs::test;
using namespace boost::asio::experimental::awaitable_operators;
using cs::relay::end_reason;
using cs::relay::relay_mode;
using cs::relay::relay_options;
using cs::relay::relay_result;
using cs::relay::tcp_relay;
using bytevec = std::vector<std::uint8_t>;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

const char* reason_name(end_reason r) {
  switch (r) {
    case end_reason::closed: return "closed";
    case end_reason::idle_timeout: return "idle_timeout";
    case end_reason::error: return "error";
    case end_reason::cancelled: return "cancelled";
  }
  return "?";
}

// client c <-> rc [relay] rt <-> t target
class RelayTest : public ::testing::TestWithParam<relay_mode> {
 protected:
  void SetUp() override {
    std::tie(c, rc) = socket_pair(io);
    std::tie(rt, t) = socket_pair(io);
  }

  relay_options options() const {
    relay_options o;
    o.mode = GetParam();
    return o;
  }

  // Lets every handler that is ready now (and the ones they post) run.
  static asio::awaitable<void> settle() {
    for (int i = 0; i < 20; ++i) {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
  }

  asio::awaitable<void> send_and_close(tcp::socket& s, const bytevec& data) {
    const auto ec = co_await write_all(s, data);
    EXPECT_FALSE(ec) << ec.message();
    s.shutdown(tcp::socket::shutdown_send);
  }

  // Asserts the pools hold every resource the relay ever took, each pipe
  // the size the pool thinks it is.
  void expect_nothing_held() {
    EXPECT_EQ(pipes.idle(), pipes.created()) << "a pipe is still held";
    std::vector<cs::relay::pipe_pair> back;
    cs::core::error_code ec;
    while (pipes.idle() > 0) {
      back.push_back(pipes.acquire(ec));
      EXPECT_EQ(::fcntl(back.back().write_fd, F_GETPIPE_SZ), static_cast<int>(back.back().capacity));
    }
    for (auto p : back) {
      pipes.release(p, true);
    }
    switch (GetParam()) {
      case relay_mode::splice:
        EXPECT_GE(pipes.created(), 1u) << "splice mode must have used a pipe";
        EXPECT_EQ(buffers.idle(), 0u) << "splice mode must not use buffers";
        break;
      case relay_mode::copy:
        EXPECT_EQ(pipes.created(), 0u) << "copy mode must not create pipes";
        EXPECT_GE(buffers.idle(), 1u) << "the copy buffer was not returned";
        break;
      case relay_mode::adaptive:
        EXPECT_GE(buffers.idle(), 1u) << "adaptive mode copies first: the buffer was not returned";
        break;
    }
  }

  asio::io_context io;
  cs::relay::pipe_pool pipes{64, 256 * 1024};  // pipes grow as in the server
  cs::relay::buffer_pool buffers;
  cs::relay::idle_sweeper idle{io.get_executor()};
  tcp::socket c{io}, rc{io}, rt{io}, t{io};
};

TEST_P(RelayTest, BytesBothWaysThenCleanClose) {
  const auto up = random_bytes(3 * 1024 * 1024 + 17, 1);
  const auto down = random_bytes(2 * 1024 * 1024 + 123, 2);
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  bytevec at_target;
  bytevec at_client;

  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto client = [&]() -> asio::awaitable<void> {
      auto r = co_await (send_and_close(c, up) && read_to_eof(c));
      EXPECT_EQ(r.first, asio::error::eof);
      at_client = std::move(r.second);
    };
    auto target = [&]() -> asio::awaitable<void> {
      auto r = co_await (send_and_close(t, down) && read_to_eof(t));
      EXPECT_EQ(r.first, asio::error::eof);
      at_target = std::move(r.second);
    };
    co_await (run_relay() && client() && target());
  }(), std::chrono::seconds(20));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed) << reason_name(result.reason);
  EXPECT_FALSE(result.ec) << result.ec.message();
  EXPECT_EQ(result.bytes_up, up.size());
  EXPECT_EQ(result.bytes_down, down.size());
  EXPECT_EQ(relay.bytes_up(), up.size());
  EXPECT_EQ(relay.bytes_down(), down.size());
  EXPECT_TRUE(at_target == up) << "upstream bytes differ (" << at_target.size() << " vs " << up.size() << ")";
  EXPECT_TRUE(at_client == down) << "downstream bytes differ (" << at_client.size() << " vs " << down.size() << ")";
  if (GetParam() != relay_mode::copy) {
    EXPECT_GE(pipes.grown(), 1u) << "megabytes moved, yet no pipe grew for bulk";
  }
  expect_nothing_held();
  EXPECT_EQ(relay.heap_fallbacks(), 0u) << "a wait did not fit the direction's operation storage";
  EXPECT_TRUE(rc.is_open()) << "the relay leaves the sockets to the caller";
  EXPECT_TRUE(rt.is_open());
}

// The target sends with sendfile(2) 2 KiB at a time from two pages in turn,
// so every fragment of the socket's buffers is half a page and none merges
// with the next: a 16-slot (64 KiB) pipe fills its slots with 32 KiB. Such
// a short splice must not pass for an empty socket: the pipe grows as a
// byte-full one does, and every byte arrives in order. (Fragments smaller
// than a page are what data from a NIC brings: one per 1,448 B segment.)
TEST_P(RelayTest, PipeWhoseSlotsFillBeforeItsBytesGrowsAndLosesNothing) {
  if (GetParam() == relay_mode::copy) {
    GTEST_SKIP() << "copy mode has no pipe";
  }
  constexpr std::size_t chunk = 2048;
  constexpr std::size_t chunks = 1024;  // 2 MiB
  const auto page_a = random_bytes(chunk, 11);
  const auto page_b = random_bytes(chunk, 12);
  const int file = ::memfd_create("relay-test", MFD_CLOEXEC);
  ASSERT_GE(file, 0);
  std::vector<std::uint8_t> image(3 * 4096, 0);  // page 0 and page 2 hold the chunks
  std::copy(page_a.begin(), page_a.end(), image.begin());
  std::copy(page_b.begin(), page_b.end(), image.begin() + 2 * 4096);
  ASSERT_EQ(::write(file, image.data(), image.size()), static_cast<ssize_t>(image.size()));
  bytevec expected;
  for (std::size_t i = 0; i < chunks; ++i) {
    const auto& src = i % 2 == 0 ? page_a : page_b;
    expected.insert(expected.end(), src.begin(), src.end());
  }

  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  bytevec at_client;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto target = [&]() -> asio::awaitable<void> {
      t.non_blocking(true);
      for (std::size_t i = 0; i < chunks;) {
        off_t from = i % 2 == 0 ? 0 : 2 * 4096;
        const ssize_t n = ::sendfile(t.native_handle(), file, &from, chunk);
        if (n == static_cast<ssize_t>(chunk)) {
          ++i;
        } else if (n < 0 && errno == EAGAIN) {
          auto [ec] = co_await t.async_wait(tcp::socket::wait_write, nothrow_awaitable);
          EXPECT_FALSE(ec) << ec.message();
        } else {
          ADD_FAILURE() << "sendfile sent " << n << " of " << chunk << ": " << std::strerror(errno);
          break;
        }
      }
      t.shutdown(tcp::socket::shutdown_send);
    };
    auto client = [&]() -> asio::awaitable<void> {
      c.shutdown(tcp::socket::shutdown_send);
      auto r = co_await read_to_eof(c);
      EXPECT_EQ(r.first, asio::error::eof);
      at_client = std::move(r.second);
    };
    co_await (run_relay() && target() && client());
  }(), std::chrono::seconds(20));
  ::close(file);
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed) << reason_name(result.reason);
  EXPECT_EQ(result.bytes_down, expected.size());
  EXPECT_TRUE(at_client == expected) << "downstream bytes differ (" << at_client.size() << " of " << expected.size() << ")";
  EXPECT_GE(pipes.grown(), 1u) << "every splice stopped at the pipe's slots, yet the pipe never grew";
  expect_nothing_held();
}

TEST_P(RelayTest, ClientHalfCloseTargetKeepsSending) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  bool relay_done = false;
  const auto reply = random_bytes(512 * 1024, 3);
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> {
      result = co_await relay.async_run(asio::use_awaitable);
      relay_done = true;
    };
    auto script = [&]() -> asio::awaitable<void> {
      const bytevec ping(4, 'p');  // (no braced list across co_await: GCC 12 bug)
      co_await send_and_close(c, ping);
      auto [ec, got] = co_await read_to_eof(t);
      EXPECT_EQ(ec, asio::error::eof) << "client EOF must reach the target as a shutdown";
      EXPECT_EQ(got, ping);
      EXPECT_FALSE(relay_done) << "half-close must not end the relay";
      // The other direction keeps flowing after the half-close.
      auto r = co_await (send_and_close(t, reply) && read_to_eof(c));
      EXPECT_EQ(r.first, asio::error::eof);
      EXPECT_TRUE(r.second == reply) << r.second.size();
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed) << reason_name(result.reason);
  EXPECT_EQ(result.bytes_up, 4u);
  EXPECT_EQ(result.bytes_down, reply.size());
  expect_nothing_held();
}

TEST_P(RelayTest, TargetHalfCloseClientKeepsSending) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  bool relay_done = false;
  const auto upload = random_bytes(700 * 1024 + 1, 4);
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> {
      result = co_await relay.async_run(asio::use_awaitable);
      relay_done = true;
    };
    auto script = [&]() -> asio::awaitable<void> {
      const bytevec bye(3, 'b');
      co_await send_and_close(t, bye);
      auto [ec, got] = co_await read_to_eof(c);
      EXPECT_EQ(ec, asio::error::eof);
      EXPECT_EQ(got, bye);
      EXPECT_FALSE(relay_done);
      auto r = co_await (send_and_close(c, upload) && read_to_eof(t));
      EXPECT_EQ(r.first, asio::error::eof);
      EXPECT_TRUE(r.second == upload) << r.second.size();
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_EQ(result.bytes_up, upload.size());
  EXPECT_EQ(result.bytes_down, 3u);
}

void reset_close(tcp::socket& s) {
  s.set_option(tcp::socket::linger(true, 0));
  s.close();  // RST
}

TEST_P(RelayTest, ClientResetEndsBothDirections) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      EXPECT_FALSE(co_await write_all(c, bytevec(100, 'x')));
      auto got = co_await read_exactly(t, 100);
      EXPECT_EQ(got.size(), 100u);
      reset_close(c);
      // The target direction is idle (t never sends): the relay must still
      // end, because an error on one side ends both.
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::error) << reason_name(result.reason);
  EXPECT_EQ(result.ec, asio::error::connection_reset) << result.ec.message();
  EXPECT_EQ(result.bytes_up, 100u);
  EXPECT_EQ(result.bytes_down, 0u);
  expect_nothing_held();
}

TEST_P(RelayTest, TargetResetEndsBothDirections) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      EXPECT_FALSE(co_await write_all(t, bytevec(10, 'y')));
      auto got = co_await read_exactly(c, 10);
      EXPECT_EQ(got.size(), 10u);
      reset_close(t);
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::error) << reason_name(result.reason);
  EXPECT_TRUE(result.ec);
  EXPECT_EQ(result.bytes_down, 10u);
}

TEST_P(RelayTest, IdleTimeout) {
  auto o = options();
  o.idle_timeout = milliseconds(150);
  tcp_relay relay(rc, rt, o, pipes, buffers, idle);
  relay_result result;
  const auto start = clock_type::now();
  clock_type::time_point end;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    result = co_await relay.async_run(asio::use_awaitable);
    end = clock_type::now();
  }(), std::chrono::seconds(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::idle_timeout) << reason_name(result.reason);
  EXPECT_FALSE(result.ec);
  EXPECT_GE(end - start, milliseconds(150));
  EXPECT_LT(end - start, milliseconds(150 + 150 / 4 + 500)) << "ended long after a sweep tick";
  EXPECT_EQ(idle.watched(), 0u) << "an ended relay is still watched";
}

TEST_P(RelayTest, OneSweeperEndsOnlyTheIdleTunnel) {
  // Two tunnels on one sweeper with different timeouts: the short one ends
  // by itself; the other is still open and carries data afterwards.
  auto p1 = socket_pair(io);
  auto p2 = socket_pair(io);
  auto short_o = options();
  short_o.idle_timeout = milliseconds(100);
  auto long_o = options();
  long_o.idle_timeout = std::chrono::hours(1);
  tcp_relay r_short(rc, rt, short_o, pipes, buffers, idle);
  tcp_relay r_long(p1.second, p2.first, long_o, pipes, buffers, idle);
  relay_result short_result;
  relay_result long_result;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_short = [&]() -> asio::awaitable<void> { short_result = co_await r_short.async_run(asio::use_awaitable); };
    auto run_long = [&]() -> asio::awaitable<void> { long_result = co_await r_long.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      co_await run_short();
      EXPECT_EQ(short_result.reason, end_reason::idle_timeout);
      EXPECT_EQ(idle.watched(), 1u);
      co_await (write_all(p1.first, bytevec(100, 7)) && read_exactly(p2.second, 100));
      p1.first.shutdown(tcp::socket::shutdown_send);
      p2.second.shutdown(tcp::socket::shutdown_send);
    };
    co_await (run_long() && script());
  }(), std::chrono::seconds(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(long_result.reason, end_reason::closed);
  EXPECT_EQ(long_result.bytes_up, 100u);
  EXPECT_EQ(idle.watched(), 0u);
}

TEST_P(RelayTest, TrafficPostponesIdleTimeout) {
  auto o = options();
  o.idle_timeout = milliseconds(500);
  tcp_relay relay(rc, rt, o, pipes, buffers, idle);
  relay_result result;
  bool relay_done = false;
  clock_type::time_point last_byte;
  clock_type::time_point end;
  const auto start = clock_type::now();
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> {
      result = co_await relay.async_run(asio::use_awaitable);
      relay_done = true;
      end = clock_type::now();
    };
    auto script = [&]() -> asio::awaitable<void> {
      // One byte every 100 ms for well over the idle timeout.
      for (int i = 0; i < 12; ++i) {
        co_await delay(milliseconds(100));
        CO_ASSERT(!relay_done);
        const bytevec one(1, static_cast<std::uint8_t>(i));
        EXPECT_FALSE(co_await write_all(c, one));
        auto got = co_await read_exactly(t, 1);
        CO_ASSERT(got.size() == 1);
        last_byte = clock_type::now();
      }
    };
    co_await (run_relay() && script());
  }(), std::chrono::seconds(10));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::idle_timeout) << reason_name(result.reason);
  EXPECT_EQ(result.bytes_up, 12u);
  EXPECT_GE(last_byte - start, milliseconds(1200));
  EXPECT_GE(end - last_byte, milliseconds(450)) << "timeout counted from the last byte moved";
}

TEST_P(RelayTest, CancellationEndsWithCancelled) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  asio::cancellation_signal stop;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> {
      result = co_await relay.async_run(asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
    };
    auto script = [&]() -> asio::awaitable<void> {
      EXPECT_FALSE(co_await write_all(c, bytevec(1000, 'a')));
      EXPECT_EQ((co_await read_exactly(t, 1000)).size(), 1000u);
      EXPECT_FALSE(co_await write_all(t, bytevec(333, 'b')));
      EXPECT_EQ((co_await read_exactly(c, 333)).size(), 333u);
      EXPECT_EQ(relay.bytes_up(), 1000u) << "live counter";
      EXPECT_EQ(relay.bytes_down(), 333u) << "live counter";
      stop.emit(asio::cancellation_type::terminal);
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::cancelled) << reason_name(result.reason);
  EXPECT_EQ(result.ec, asio::error::operation_aborted);
  EXPECT_EQ(result.bytes_up, 1000u);
  EXPECT_EQ(result.bytes_down, 333u);
  expect_nothing_held();
}

TEST_P(RelayTest, CancelMethodEndsWithCancelled) {
  // What a worker does to its tunnels at shutdown: no cancellation slot,
  // a direct call; the completion still arrives once, posted.
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  int completions = 0;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> {
      result = co_await relay.async_run(asio::use_awaitable);
      ++completions;
    };
    auto script = [&]() -> asio::awaitable<void> {
      EXPECT_FALSE(co_await write_all(c, bytevec(500, 'a')));
      EXPECT_EQ((co_await read_exactly(t, 500)).size(), 500u);
      relay.cancel();
      relay.cancel();  // a second call is a no-op
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(result.reason, end_reason::cancelled) << reason_name(result.reason);
  EXPECT_EQ(result.ec, asio::error::operation_aborted);
  EXPECT_EQ(result.bytes_up, 500u);
  EXPECT_EQ(relay.heap_fallbacks(), 0u);
  expect_nothing_held();
}

TEST_P(RelayTest, BytesQueuedBeforeStartAreRelayed) {
  asio::write(c, asio::buffer(std::string("early")));
  asio::write(t, asio::buffer(std::string("late")));
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      auto a = co_await read_exactly(t, 5);
      auto b2 = co_await read_exactly(c, 4);
      EXPECT_EQ(std::string(a.begin(), a.end()), "early");
      EXPECT_EQ(std::string(b2.begin(), b2.end()), "late");
      c.shutdown(tcp::socket::shutdown_send);
      t.shutdown(tcp::socket::shutdown_send);
    };
    co_await (run_relay() && script());
  }(), std::chrono::seconds(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_EQ(result.bytes_up, 5u);
  EXPECT_EQ(result.bytes_down, 4u);
}

TEST_P(RelayTest, TinyChunksAndBurstOfOne) {
  auto o = options();
  o.chunk = 7;
  o.burst = 1;
  const auto up = random_bytes(50'000, 5);
  const auto down = random_bytes(40'001, 6);
  tcp_relay relay(rc, rt, o, pipes, buffers, idle);
  relay_result result;
  bytevec at_t;
  bytevec at_c;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto client = [&]() -> asio::awaitable<void> {
      auto r = co_await (send_and_close(c, up) && read_to_eof(c));
      at_c = std::move(r.second);
    };
    auto target = [&]() -> asio::awaitable<void> {
      auto r = co_await (send_and_close(t, down) && read_to_eof(t));
      at_t = std::move(r.second);
    };
    co_await (run_relay() && client() && target());
  }(), std::chrono::seconds(20));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_TRUE(at_t == up);
  EXPECT_TRUE(at_c == down);
  EXPECT_EQ(result.bytes_up, up.size());
  EXPECT_EQ(result.bytes_down, down.size());
}

TEST_P(RelayTest, SlowReaderBackpressure) {
  // The target does not read for a while: the relay's writes hit EAGAIN and
  // must resume on writability without losing or reordering bytes.
  const auto up = random_bytes(8 * 1024 * 1024, 7);
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  bytevec at_t;
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto client = [&]() -> asio::awaitable<void> { co_await send_and_close(c, up); };
    auto target = [&]() -> asio::awaitable<void> {
      co_await delay(milliseconds(200));
      auto [ec, got] = co_await read_to_eof(t);
      EXPECT_EQ(ec, asio::error::eof);
      at_t = std::move(got);
      t.shutdown(tcp::socket::shutdown_send);
    };
    co_await (run_relay() && client() && target());
  }(), std::chrono::seconds(30));
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_EQ(result.bytes_up, up.size());
  EXPECT_TRUE(at_t == up) << at_t.size();
  EXPECT_EQ(relay.heap_fallbacks(), 0u) << "a write wait did not fit the direction's operation storage";
}

int notsent_lowat(tcp::socket& s) {
  int v = -1;
  socklen_t len = sizeof v;
  EXPECT_EQ(::getsockopt(s.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len), 0);
  return v;  // 0: not set on this socket (the sysctl applies)
}

TEST_P(RelayTest, BulkDirectionBoundsUnsentBytesOnlyOnTheSocketItWritesTo) {
  for (const std::size_t lowat : {std::size_t{64 * 1024}, std::size_t{0}}) {
    SCOPED_TRACE(lowat);
    SetUp();  // fresh sockets: the option stays set on a socket
    auto o = options();
    o.notsent_lowat = lowat;
    const auto up = random_bytes(1024 * 1024, 10);
    tcp_relay relay(rc, rt, o, pipes, buffers, idle);
    relay_result result;
    bytevec at_t;
    const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
      auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
      auto client = [&]() -> asio::awaitable<void> {
        auto r = co_await (send_and_close(c, up) && read_to_eof(c));
        EXPECT_EQ(r.second.size(), 10u);
      };
      auto target = [&]() -> asio::awaitable<void> {
        auto r = co_await (send_and_close(t, bytevec(10, 'x')) && read_to_eof(t));
        at_t = std::move(r.second);
      };
      co_await (run_relay() && client() && target());
    }(), std::chrono::seconds(20));
    ASSERT_TRUE(ok);
    EXPECT_EQ(result.reason, end_reason::closed);
    EXPECT_TRUE(at_t == up) << at_t.size();
    EXPECT_EQ(notsent_lowat(rt), static_cast<int>(lowat)) << "the bulk direction writes to the target's socket";
    EXPECT_EQ(notsent_lowat(rc), 0) << "10 bytes down are no bulk transfer: the client's socket keeps the default";
  }
}

TEST_P(RelayTest, IdleTunnelHoldsNoPipeOrBuffer) {
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  const auto up = random_bytes(300'000, 8);
  const auto down = random_bytes(200'000, 9);
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      EXPECT_EQ(pipes.created(), 0u);
      co_await (write_all(c, up) && write_all(t, down) && read_exactly(t, up.size()) &&
                read_exactly(c, down.size()));
      co_await settle();
      // Data moved both ways and the tunnel is now idle but open.
      expect_nothing_held();
      const auto created = pipes.created();
      // A second burst reuses pooled resources rather than creating more.
      co_await (write_all(c, up) && read_exactly(t, up.size()));
      co_await settle();
      expect_nothing_held();
      EXPECT_EQ(pipes.created(), created) << "pooled pipe reused";
      c.shutdown(tcp::socket::shutdown_send);
      t.shutdown(tcp::socket::shutdown_send);
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_EQ(result.bytes_up, 2 * up.size());
  EXPECT_EQ(result.bytes_down, down.size());
}

TEST_P(RelayTest, SmallMessagesAreCopiedBulkIsSpliced) {
  // Which engine moves what: adaptive copies 64 B messages (no pipe) and
  // splices once a read fills its buffer; splice and copy never switch.
  tcp_relay relay(rc, rt, options(), pipes, buffers, idle);
  relay_result result;
  const auto bulk = random_bytes(2 * 1024 * 1024, 11);
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run_relay = [&]() -> asio::awaitable<void> { result = co_await relay.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 3; ++i) {  // request / response
        co_await (write_all(c, bytevec(64, 'q')) && read_exactly(t, 64));
        co_await (write_all(t, bytevec(64, 'r')) && read_exactly(c, 64));
      }
      co_await settle();
      const auto after_small = pipes.created();
      auto r = co_await (write_all(c, bulk) && read_exactly(t, bulk.size()));
      EXPECT_TRUE(std::get<1>(r) == bulk) << "bulk bytes differ";
      co_await (write_all(t, bytevec(64, 'r')) && read_exactly(c, 64));  // and a reply after it
      co_await settle();
      switch (GetParam()) {
        case relay_mode::adaptive:
          EXPECT_EQ(after_small, 0u) << "64 B messages were spliced";
          EXPECT_GE(pipes.created(), 1u) << "2 MiB were not spliced";
          break;
        case relay_mode::splice:
          EXPECT_GE(after_small, 1u);
          break;
        case relay_mode::copy:
          EXPECT_EQ(pipes.created(), 0u);
          break;
      }
      expect_nothing_held();
      c.shutdown(tcp::socket::shutdown_send);
      t.shutdown(tcp::socket::shutdown_send);
    };
    co_await (run_relay() && script());
  }());
  ASSERT_TRUE(ok);
  EXPECT_EQ(result.reason, end_reason::closed);
  EXPECT_EQ(result.bytes_up, 3 * 64 + bulk.size());
  EXPECT_EQ(result.bytes_down, 4 * 64u);
}

TEST_P(RelayTest, TwoIdleTunnelsShareNothing) {
  // Many idle tunnels on one thread must not each pin a pipe: after traffic
  // stops, the pool gets everything back.
  auto p1 = socket_pair(io);
  auto p2 = socket_pair(io);
  tcp::socket& c2 = p1.first;
  tcp::socket& rc2 = p1.second;
  tcp::socket& rt2 = p2.first;
  tcp::socket& t2 = p2.second;
  tcp_relay r1(rc, rt, options(), pipes, buffers, idle);
  tcp_relay r2(rc2, rt2, options(), pipes, buffers, idle);
  const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
    auto run1 = [&]() -> asio::awaitable<void> { co_await r1.async_run(asio::use_awaitable); };
    auto run2 = [&]() -> asio::awaitable<void> { co_await r2.async_run(asio::use_awaitable); };
    auto script = [&]() -> asio::awaitable<void> {
      co_await (write_all(c, bytevec(5000, 1)) && write_all(c2, bytevec(5000, 2)) && read_exactly(t, 5000) &&
                read_exactly(t2, 5000));
      co_await settle();
      expect_nothing_held();
      for (auto* s : {&c, &t, &c2, &t2}) {
        s->shutdown(tcp::socket::shutdown_send);
      }
    };
    co_await (run1() && run2() && script());
  }());
  ASSERT_TRUE(ok);
}

INSTANTIATE_TEST_SUITE_P(Modes, RelayTest,
                         ::testing::Values(relay_mode::adaptive, relay_mode::splice, relay_mode::copy),
                         relay_mode_param_name);

}  // namespace
