#pragma once
// Per-thread pools of the resources a tunnel needs only while data is in
// flight: pipe pairs for splice(2) and buffers for the copy relay. An idle
// tunnel holds neither. Not thread-safe: one pool per event-loop thread.

#include "core/error.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace cs::relay {

struct pipe_pair {
  int read_fd = -1;
  int write_fd = -1;
  std::uint32_t capacity = 0;  ///< bytes the pipe holds now (F_GETPIPE_SZ)
  std::uint32_t base = 0;      ///< its capacity when created; 0: must not be resized
  explicit operator bool() const noexcept { return read_fd >= 0; }
};

/// How many idle pipes each of `workers` pools keeps (and how many of those
/// stay grown). An unprivileged user's pipes share one budget across the
/// machine, fs.pipe-user-pages-soft (16,384 pages by default); beyond it the
/// kernel creates every new pipe at 2 pages and refuses to grow it. Idle
/// pipes count against it too, so the caps shrink as workers are added: up
/// to 64 workers, idle pipes stay under half of the default budget (64 KiB
/// pipes, 256 KiB grown ones); beyond, each worker keeps at least 4 (1 grown).
struct idle_pipe_caps {
  std::size_t max_idle;
  std::size_t max_idle_grown;
};
idle_pipe_caps idle_pipe_caps_for(unsigned workers) noexcept;

class pipe_pool {
 public:
  /// Pipes are created at the kernel's default size (64 KiB); grow() takes
  /// one to `grow_to` bytes (0: never). At most `max_idle` pipes are kept
  /// for reuse, last released first out, so a bulk transfer that pauses
  /// gets its grown pipe back. Of those, at most `max_idle_grown` stay
  /// grown; release() shrinks the others, which bounds what idle pipes
  /// count against the user's pipe pages (pipe-user-pages-soft).
  /// `on_limited` runs (on the pool's thread) for the first pipe the kernel
  /// creates at its minimum size, the sign that the user's pipe budget is
  /// spent.
  explicit pipe_pool(std::size_t max_idle = 64, std::size_t grow_to = 0, std::size_t max_idle_grown = 8,
                     std::function<void(std::uint32_t capacity)> on_limited = {});
  ~pipe_pool();
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;

  /// A non-blocking, close-on-exec pipe; an empty pair and `ec` on failure
  /// (e.g. EMFILE).
  pipe_pair acquire(core::error_code& ec) noexcept;
  /// Best effort: enlarges `p` (bytes may be in it) to `grow_to`. Tried once
  /// per pipe; when the kernel refuses (pipe-max-size, pipe-user-pages-soft)
  /// the pipe keeps its size.
  void grow(pipe_pair& p) noexcept;
  /// Returns a pipe. `empty` says no bytes are left in it; a pipe that may
  /// hold data is closed, never reused, and so is one the kernel limited.
  /// A grown pipe beyond max_idle_grown is shrunk first (or closed when
  /// that fails).
  void release(pipe_pair p, bool empty) noexcept;

  std::size_t idle() const noexcept { return idle_.size(); }
  std::size_t idle_grown() const noexcept { return idle_grown_; }
  // Counters: written by the pool's thread only, readable from any thread
  // (the metrics scrape).
  std::uint64_t created() const noexcept { return created_.load(std::memory_order_relaxed); }
  std::uint64_t grown() const noexcept { return grown_.load(std::memory_order_relaxed); }
  /// Pipes created at the kernel's minimum (2 pages) instead of its default.
  std::uint64_t limited() const noexcept { return limited_.load(std::memory_order_relaxed); }
  /// grow() calls the kernel refused.
  std::uint64_t grow_refused() const noexcept { return grow_refused_.load(std::memory_order_relaxed); }

 private:
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::vector<pipe_pair> idle_;
  std::size_t max_idle_;
  std::size_t max_idle_grown_;
  std::size_t idle_grown_ = 0;
  std::size_t grow_to_;
  std::uint32_t minimum_;  ///< the kernel's minimum pipe size: 2 pages
  std::function<void(std::uint32_t)> on_limited_;
  std::atomic<std::uint64_t> created_{0};
  std::atomic<std::uint64_t> grown_{0};
  std::atomic<std::uint64_t> limited_{0};
  std::atomic<std::uint64_t> grow_refused_{0};
};

class buffer_pool {
 public:
  explicit buffer_pool(std::size_t buffer_size = 16 * 1024, std::size_t max_idle = 64)
      : size_(buffer_size), max_idle_(max_idle) {
    idle_.reserve(max_idle_);
  }

  std::unique_ptr<std::uint8_t[]> acquire();
  void release(std::unique_ptr<std::uint8_t[]> b) noexcept;
  std::size_t buffer_size() const noexcept { return size_; }
  std::size_t idle() const noexcept { return idle_.size(); }

 private:
  std::vector<std::unique_ptr<std::uint8_t[]>> idle_;
  std::size_t size_;
  std::size_t max_idle_;
};

}  // namespace cs::relay
