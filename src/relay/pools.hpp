#pragma once
// Per-thread pools of the resources a tunnel needs only while data is in
// flight: pipe pairs for splice(2) and buffers for the copy relay. An idle
// tunnel holds neither. Not thread-safe: one pool per event-loop thread.

#include "core/error.hpp"

#include <cstddef>
#include <cstdint>
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

class pipe_pool {
 public:
  /// Pipes are created at the kernel's default size (64 KiB); grow() takes
  /// one to `grow_to` bytes (0: never). At most `max_idle` pipes are kept
  /// for reuse, last released first out, so a bulk transfer that pauses
  /// gets its grown pipe back. Of those, at most `max_idle_grown` stay
  /// grown; release() shrinks the others, which bounds what idle pipes
  /// count against the user's pipe pages (pipe-user-pages-soft).
  explicit pipe_pool(std::size_t max_idle = 64, std::size_t grow_to = 0, std::size_t max_idle_grown = 8)
      : max_idle_(max_idle), max_idle_grown_(max_idle_grown), grow_to_(grow_to) {
    idle_.reserve(max_idle_);  // release() never allocates
  }
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
  /// hold data is closed, never reused. A grown pipe beyond max_idle_grown
  /// is shrunk first (or closed when that fails).
  void release(pipe_pair p, bool empty) noexcept;

  std::size_t idle() const noexcept { return idle_.size(); }
  std::size_t created() const noexcept { return created_; }
  std::size_t grown() const noexcept { return grown_; }
  std::size_t idle_grown() const noexcept { return idle_grown_; }

 private:
  std::vector<pipe_pair> idle_;
  std::size_t max_idle_;
  std::size_t max_idle_grown_;
  std::size_t idle_grown_ = 0;
  std::size_t grow_to_;
  std::size_t created_ = 0;
  std::size_t grown_ = 0;
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
