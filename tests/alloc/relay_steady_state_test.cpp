// The relay's steady state allocates nothing: once a tunnel has carried
// traffic, more pings and more bulk bytes through it take no heap block on
// the loop's thread, whatever the engine.
//
// This binary replaces malloc and its relatives (glibc supports that; see
// "Replacing malloc" in its manual) to count the calls a marked thread
// makes, which catches Asio's aligned blocks as well as operator new. It is
// not built with the sanitizers, which replace malloc themselves.

#include "net_support.hpp"
#include "relay_modes.hpp"
#include "relay/pools.hpp"
#include "relay/tcp_relay.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <execinfo.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

// ------------------------------------------------------------ counting --
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
thread_local bool counting = false;  // set on the loop's thread for the measured window
std::atomic<std::uint64_t> allocations{0};

// With CS_ALLOC_TRACE=1 in the environment, the stacks of the first
// counted calls are kept (no I/O inside malloc: it would change the timing
// being measured) and printed when a test fails.
const bool trace = std::getenv("CS_ALLOC_TRACE") != nullptr;
constexpr int max_stacks = 32;
constexpr int max_frames = 24;
void* stacks[max_stacks][max_frames];
int depths[max_stacks];
std::atomic<int> kept{0};

inline void count() noexcept {
  if (counting) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (trace) {
      const int i = kept.fetch_add(1);
      if (i < max_stacks) {
        counting = false;
        depths[i] = ::backtrace(stacks[i], max_frames);
        counting = true;
      }
    }
  }
}

void print_stacks() {
  for (int i = 0; i < std::min(kept.load(), max_stacks); ++i) {
    ::backtrace_symbols_fd(stacks[i], depths[i], 2);
    (void)!::write(2, "--\n", 3);
  }
  kept = 0;
}

}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  count();
  return __libc_realloc(p, n);
}
void* memalign(std::size_t align, std::size_t n) {
  count();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  count();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  count();
  if (align % sizeof(void*) != 0 || (align & (align - 1)) != 0) {
    return EINVAL;
  }
  void* p = __libc_memalign(align, n);
  if (p == nullptr) {
    return ENOMEM;
  }
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using cs::relay::relay_mode;
using cs::relay::relay_options;
using cs::relay::relay_result;
using cs::relay::tcp_relay;
using namespace std::chrono_literals;

// Blocking I/O on the test's side, bounded in time: a relay that stops
// moving bytes fails the test instead of hanging it.
bool wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 10'000) == 1;
}

bool write_all(int fd, const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    if (!wait_for(fd, POLLOUT)) {
      return false;
    }
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EAGAIN) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads exactly n bytes; checks each against the pattern the writer used.
bool read_exactly(int fd, std::size_t n, std::uint8_t pattern_seed) {
  std::vector<std::uint8_t> buf(64 * 1024);
  std::size_t got = 0;
  while (got < n) {
    if (!wait_for(fd, POLLIN)) {
      return false;
    }
    const ssize_t r = ::recv(fd, buf.data(), std::min(buf.size(), n - got), MSG_DONTWAIT);
    if (r < 0 && errno == EAGAIN) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    for (ssize_t i = 0; i < r; ++i) {
      if (buf[static_cast<std::size_t>(i)] != static_cast<std::uint8_t>(pattern_seed + got + static_cast<std::size_t>(i))) {
        return false;
      }
    }
    got += static_cast<std::size_t>(r);
  }
  return true;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<std::uint8_t>(seed + i);
  }
  return v;
}

class RelaySteadyState : public ::testing::TestWithParam<relay_mode> {
 protected:
  void SetUp() override {
    std::tie(c, rc) = cs::test::socket_pair(io);
    std::tie(rt, t) = cs::test::socket_pair(io);
  }

  // Runs `fn` on the loop's thread and waits for it.
  template <typename F>
  void on_loop(F fn) {
    std::promise<void> done;
    asio::post(io, [&] {
      fn();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready) << "the loop did not answer";
  }

  // 64 B from the client to the target and back, `rounds` times.
  void pings(int rounds) {
    const auto msg = pattern(64, 7);
    for (int i = 0; i < rounds; ++i) {
      ASSERT_TRUE(write_all(c.native_handle(), msg.data(), msg.size())) << "ping " << i << " not sent";
      ASSERT_TRUE(read_exactly(t.native_handle(), msg.size(), 7)) << "ping " << i << " did not arrive";
      ASSERT_TRUE(write_all(t.native_handle(), msg.data(), msg.size())) << "pong " << i << " not sent";
      ASSERT_TRUE(read_exactly(c.native_handle(), msg.size(), 7)) << "pong " << i << " did not arrive";
    }
  }

  // `bytes` one way, then the other, each written by this thread and read
  // by a second one.
  void bulk(std::size_t bytes) {
    static const auto data = pattern(32 * 1024 * 1024, 3);  // made once: no pause that nears the idle timeout
    ASSERT_LE(bytes, data.size());
    for (auto [from, to] : {std::pair{&c, &t}, std::pair{&t, &c}}) {
      std::atomic<bool> ok{false};
      std::thread reader([&, to = to] { ok = read_exactly(to->native_handle(), bytes, 3); });
      const bool sent = write_all(from->native_handle(), data.data(), bytes);
      reader.join();
      ASSERT_TRUE(sent) << "bulk not sent";
      ASSERT_TRUE(ok) << "bulk did not arrive intact";
    }
  }

  asio::io_context io;
  cs::relay::pipe_pool pipes{64, 256 * 1024};
  cs::relay::buffer_pool buffers;
  cs::relay::idle_sweeper idle{io.get_executor()};
  tcp::socket c{io}, rc{io}, rt{io}, t{io};
};

TEST_P(RelaySteadyState, MorePingsAndBulkThroughAWarmTunnelAllocateNothing) {
  relay_options o;
  o.mode = GetParam();
  o.idle_timeout = 2s;  // the idle sweeper ticks every 500 ms (timeout / 4)
  tcp_relay relay(rc, rt, o, pipes, buffers, idle);
  std::promise<relay_result> finished;
  relay.async_run([&](relay_result r) { finished.set_value(r); });
  std::thread loop([&] { io.run(); });

  // Warm-up: every path once (copy and splice, pipes grown, pools and
  // Asio's per-thread block caches filled).
  bulk(8 * 1024 * 1024);
  pings(200);
  bulk(8 * 1024 * 1024);
  pings(200);

  if (trace) {
    void* warm[1];
    ::backtrace(warm, 1);  // its first call loads libgcc, which allocates
  }
  on_loop([] {
    allocations = 0;
    counting = true;
  });
  const auto since = std::chrono::steady_clock::now();
  bulk(32 * 1024 * 1024);
  pings(2000);
  bulk(32 * 1024 * 1024);
  pings(2000);
  // At least two of the sweeper's 500 ms ticks fall in the window, however
  // fast the machine moved the bytes (its re-armed wait is what allocated).
  while (std::chrono::steady_clock::now() - since < 1200ms) {
    pings(100);
  }
  std::uint64_t counted = 0;
  on_loop([&] {
    counting = false;
    counted = allocations.load();
  });

  ::shutdown(c.native_handle(), SHUT_WR);
  ::shutdown(t.native_handle(), SHUT_WR);
  auto result = finished.get_future();
  const bool ended = result.wait_for(10s) == std::future_status::ready;
  if (!ended) {
    io.stop();
  }
  loop.join();
  ASSERT_TRUE(ended) << "the relay did not end after both half-closes";
  EXPECT_EQ(result.get().reason, cs::relay::end_reason::closed);

  EXPECT_EQ(counted, 0u) << cs::test::relay_mode_name(GetParam()) << ": the loop's thread allocated " << counted
                         << " block(s) while a warm tunnel carried 64 MiB each way and 4,000+ pings";
  EXPECT_EQ(relay.heap_fallbacks(), 0u);
  EXPECT_EQ(idle.heap_fallbacks(), 0u);
  if (counted != 0 && trace) {
    print_stacks();
  }
}

// The counter itself works: a block taken on a marked thread is counted.
void* volatile sink = nullptr;  // keeps the compiler from eliding the blocks

TEST(AllocationCounter, CountsWhatAMarkedThreadAllocates) {
  const auto before = allocations.load();
  counting = true;
  sink = new std::vector<int>(100);
  delete static_cast<std::vector<int>*>(sink);
  sink = std::aligned_alloc(64, 256);
  std::free(sink);
  counting = false;
  EXPECT_GE(allocations.load() - before, 3u);  // the vector, its storage, the aligned block
}

INSTANTIATE_TEST_SUITE_P(Engines, RelaySteadyState,
                         ::testing::Values(relay_mode::adaptive, relay_mode::splice, relay_mode::copy),
                         cs::test::relay_mode_param_name);

}  // namespace
