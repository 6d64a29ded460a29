#include "relay/pools.hpp"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

using cs::relay::buffer_pool;
using cs::relay::pipe_pair;
using cs::relay::pipe_pool;

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(PipePool, AcquireCreatesNonBlockingCloexecPipe) {
  pipe_pool pool;
  EXPECT_EQ(pool.created(), 0u);
  EXPECT_EQ(pool.idle(), 0u);
  cs::core::error_code ec;
  const pipe_pair p = pool.acquire(ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p);
  EXPECT_EQ(pool.created(), 1u);
  EXPECT_EQ(pool.idle(), 0u);
  for (int fd : {p.read_fd, p.write_fd}) {
    EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
  // It is a working pipe.
  ASSERT_EQ(::write(p.write_fd, "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p.read_fd, &c, 1), 1);
  EXPECT_EQ(c, 'x');
  pool.release(p, true);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(PipePool, EmptyPipeIsReused) {
  pipe_pool pool;
  cs::core::error_code ec;
  const pipe_pair p1 = pool.acquire(ec);
  pool.release(p1, true);
  const pipe_pair p2 = pool.acquire(ec);
  EXPECT_EQ(p2.read_fd, p1.read_fd);
  EXPECT_EQ(p2.write_fd, p1.write_fd);
  EXPECT_EQ(pool.created(), 1u);
  EXPECT_EQ(pool.idle(), 0u);
  pool.release(p2, true);
}

TEST(PipePool, PipeThatMayHoldDataIsClosedNotReused) {
  pipe_pool pool;
  cs::core::error_code ec;
  const pipe_pair p = pool.acquire(ec);
  ASSERT_EQ(::write(p.write_fd, "left", 4), 4);
  pool.release(p, false);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_FALSE(fd_open(p.read_fd));
  EXPECT_FALSE(fd_open(p.write_fd));
  const pipe_pair q = pool.acquire(ec);
  EXPECT_EQ(pool.created(), 2u);
  pool.release(q, true);
}

TEST(PipePool, KeepsAtMostMaxIdle) {
  pipe_pool pool(2);
  cs::core::error_code ec;
  pipe_pair ps[3] = {pool.acquire(ec), pool.acquire(ec), pool.acquire(ec)};
  EXPECT_EQ(pool.created(), 3u);
  for (const auto& p : ps) {
    pool.release(p, true);
  }
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_FALSE(fd_open(ps[2].read_fd)) << "the third is closed";
}

TEST(PipePool, ReleasingAnEmptyPairIsANoOp) {
  pipe_pool pool;
  pool.release(pipe_pair{}, true);
  EXPECT_EQ(pool.idle(), 0u);
}

TEST(PipePool, DestructorClosesIdlePipes) {
  pipe_pair p;
  {
    pipe_pool pool;
    cs::core::error_code ec;
    p = pool.acquire(ec);
    pool.release(p, true);
    ASSERT_TRUE(fd_open(p.read_fd));
  }
  EXPECT_FALSE(fd_open(p.read_fd));
  EXPECT_FALSE(fd_open(p.write_fd));
}

TEST(PipePool, CreatedAtTheKernelDefaultSize) {
  pipe_pool pool(4, 256 * 1024);
  cs::core::error_code ec;
  const pipe_pair p = pool.acquire(ec);
  ASSERT_TRUE(p);
  EXPECT_EQ(::fcntl(p.write_fd, F_GETPIPE_SZ), static_cast<int>(p.capacity));
  EXPECT_EQ(p.capacity, p.base);
  EXPECT_EQ(pool.grown(), 0u);
  pool.release(p, true);
}

// Fills a pipe to its capacity, grows it, reads the bytes back in order.
void fill_grow_drain(pipe_pool& pool, pipe_pair& p) {
  const std::string data(p.capacity, 'x');
  ASSERT_EQ(::write(p.write_fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  pool.grow(p);
  // pipe-max-size (1 MiB by default) allows 256 KiB; root ignores the user
  // page limits.
  ASSERT_EQ(p.capacity, 256u * 1024);
  EXPECT_EQ(::fcntl(p.write_fd, F_GETPIPE_SZ), 256 * 1024);
  std::string out(data.size(), '\0');
  ASSERT_EQ(::read(p.read_fd, out.data(), out.size()), static_cast<ssize_t>(out.size()));
  EXPECT_EQ(out, data) << "growing lost or reordered bytes";
}

TEST(PipePool, GrowsWithDataInsideKeepsAFewGrownAndShrinksTheRest) {
  pipe_pool pool(4, 256 * 1024, 1);
  cs::core::error_code ec;
  pipe_pair p = pool.acquire(ec);
  pipe_pair q = pool.acquire(ec);
  ASSERT_TRUE(p && q);
  const auto base = p.capacity;
  ASSERT_LT(base, 256u * 1024) << "the kernel default is already as large as the test's target";
  fill_grow_drain(pool, p);
  fill_grow_drain(pool, q);
  EXPECT_EQ(pool.grown(), 2u);
  pool.grow(p);  // already grown: nothing to do
  EXPECT_EQ(pool.grown(), 2u);

  pool.release(p, true);  // kept grown (the one allowed)
  pool.release(q, true);  // shrunk: one grown pipe is already idle
  ASSERT_EQ(pool.idle(), 2u);
  EXPECT_EQ(pool.idle_grown(), 1u);
  const pipe_pair q2 = pool.acquire(ec);  // last released first
  EXPECT_EQ(q2.write_fd, q.write_fd);
  EXPECT_EQ(q2.capacity, base);
  EXPECT_EQ(::fcntl(q2.write_fd, F_GETPIPE_SZ), static_cast<int>(base)) << "back at its created size";
  const pipe_pair p2 = pool.acquire(ec);
  EXPECT_EQ(p2.write_fd, p.write_fd);
  EXPECT_EQ(p2.capacity, 256u * 1024) << "a paused bulk transfer gets its grown pipe back";
  EXPECT_EQ(pool.idle_grown(), 0u);
  pool.release(q2, true);
  pool.release(p2, true);
}

TEST(PipePool, NoGrowthWhenNotAsked) {
  pipe_pool pool(4);
  cs::core::error_code ec;
  pipe_pair p = pool.acquire(ec);
  const auto base = p.capacity;
  pool.grow(p);
  EXPECT_EQ(pool.grown(), 0u);
  EXPECT_EQ(p.capacity, base);
  pool.release(p, true);
}

TEST(IdlePipeCaps, ShrinkWithWorkersSoIdlePipesStayUnderHalfTheDefaultBudget) {
  using cs::relay::idle_pipe_caps_for;
  EXPECT_EQ(idle_pipe_caps_for(0).max_idle, 64u);  // 0 is treated as 1
  EXPECT_EQ(idle_pipe_caps_for(1).max_idle, 64u);
  EXPECT_EQ(idle_pipe_caps_for(1).max_idle_grown, 8u);
  EXPECT_EQ(idle_pipe_caps_for(16).max_idle, 16u);
  EXPECT_EQ(idle_pipe_caps_for(16).max_idle_grown, 2u);
  EXPECT_EQ(idle_pipe_caps_for(1000).max_idle, 4u);
  EXPECT_EQ(idle_pipe_caps_for(1000).max_idle_grown, 1u);
  // Pages held by idle pipes across all workers, 4 KiB pages: a default
  // pipe is 16, a grown one (256 KiB) 64. The default soft budget is 16,384.
  for (unsigned w = 1; w <= 64; ++w) {
    const auto c = idle_pipe_caps_for(w);
    EXPECT_GE(c.max_idle, c.max_idle_grown) << w;
    EXPECT_LE(w * (c.max_idle * 16 + c.max_idle_grown * 48), 16384u / 2) << w << " workers";
  }
}

long read_long(const char* path) {
  std::ifstream f(path);
  long v = -1;
  f >> v;
  return v;
}

// The kernel's answer to an unprivileged user whose pipes exceed
// fs.pipe-user-pages-soft: new pipes of 2 pages that cannot grow. A child
// process becomes an unused user and creates pipes through a pool until
// that happens. Root is never limited, so this needs root to change user.
// The budget is per user: the uid is not nobody's, which the integration
// test (ops/test_pipe_budget.py) spends, perhaps at the same time.
TEST(PipePool, CountsAndReportsPipesTheKernelLimitsForAnUnprivilegedUser) {
  const long soft = read_long("/proc/sys/fs/pipe-user-pages-soft");
  if (soft <= 0) {
    GTEST_SKIP() << "fs.pipe-user-pages-soft is 0 (no limit) here";
  }
  const long needed = soft / 16 + 64;  // default pipes are 16 pages
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (::geteuid() != 0 || nofile.rlim_max < static_cast<rlim_t>(2 * needed + 64)) {
    GTEST_SKIP() << "needs root (to change user) and " << 2 * needed + 64 << " descriptors";
  }
  constexpr unsigned unused_id = 64999;  // no account needed: the kernel budgets by uid
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit codes name the step that failed (the parent reports them).
    nofile.rlim_cur = nofile.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0 || ::setgroups(0, nullptr) != 0 || ::setgid(unused_id) != 0 ||
        ::setuid(unused_id) != 0) {
      ::_exit(10);
    }
    std::vector<std::uint32_t> reported;
    pipe_pool pool(64, 256 * 1024, 8, [&](std::uint32_t capacity) { reported.push_back(capacity); });
    std::vector<pipe_pair> held;
    cs::core::error_code ec;
    const auto minimum = static_cast<std::uint32_t>(2 * ::sysconf(_SC_PAGESIZE));
    for (long i = 0; i < needed && pool.limited() == 0; ++i) {
      held.push_back(pool.acquire(ec));
      if (ec) {
        ::_exit(11);
      }
    }
    if (pool.limited() != 1 || held.back().capacity != minimum) {
      ::_exit(12);  // never limited, or the limited pipe is not 2 pages
    }
    if (held.front().capacity <= minimum) {
      ::_exit(13);  // the first pipe was already limited: the budget was spent before we began
    }
    if (reported.size() != 1 || reported[0] != minimum) {
      ::_exit(14);  // on_limited: once, with the size
    }
    pool.grow(held.back());
    if (pool.grow_refused() != 1 || held.back().capacity != minimum) {
      ::_exit(15);  // grow must be refused and leave the pipe as it is
    }
    held.push_back(pool.acquire(ec));
    if (ec || pool.limited() != 2 || reported.size() != 1) {
      ::_exit(16);  // counted again, reported once
    }
    // A limited pipe still relays: 2 pages in, the same 2 pages out.
    std::vector<char> in(minimum, 'x');
    std::vector<char> out(minimum);
    if (::write(held.back().write_fd, in.data(), in.size()) != static_cast<ssize_t>(in.size()) ||
        ::read(held.back().read_fd, out.data(), out.size()) != static_cast<ssize_t>(out.size()) || in != out) {
      ::_exit(17);
    }
    // Returned empty, a limited pipe is closed (its pages go back to the
    // budget); a full-size one is kept for reuse.
    const pipe_pair limited_pipe = held.back();
    held.pop_back();
    pool.release(limited_pipe, true);
    if (pool.idle() != 0 || fd_open(limited_pipe.read_fd)) {
      ::_exit(18);
    }
    const pipe_pair full = held.front();
    held.erase(held.begin());
    pool.release(full, true);
    if (pool.idle() != 1) {
      ::_exit(19);
    }
    for (auto p : held) {
      pool.release(p, false);  // closes them: the budget is the machine's
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed step (see the child's exit codes)";
}

TEST(BufferPool, ReusesAndCaps) {
  buffer_pool pool(1024, 1);
  EXPECT_EQ(pool.buffer_size(), 1024u);
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(a.get(), b.get());
  const auto* raw = a.get();
  pool.release(std::move(a));
  pool.release(std::move(b));
  EXPECT_EQ(pool.idle(), 1u) << "max_idle 1";
  auto c = pool.acquire();
  EXPECT_EQ(c.get(), raw);
  EXPECT_EQ(pool.idle(), 0u);
  pool.release(nullptr);
  EXPECT_EQ(pool.idle(), 0u);
}

}  // namespace
