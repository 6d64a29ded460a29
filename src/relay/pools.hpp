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
  explicit operator bool() const noexcept { return read_fd >= 0; }
};

class pipe_pool {
 public:
  /// `pipe_size` 0 keeps the kernel default (64 KiB); otherwise F_SETPIPE_SZ
  /// is attempted (best effort). At most `max_idle` pipes are kept for reuse.
  explicit pipe_pool(std::size_t max_idle = 64, int pipe_size = 0)
      : max_idle_(max_idle), pipe_size_(pipe_size) {
    idle_.reserve(max_idle_);  // release() never allocates
  }
  ~pipe_pool();
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;

  /// A non-blocking, close-on-exec pipe; an empty pair and `ec` on failure
  /// (e.g. EMFILE).
  pipe_pair acquire(core::error_code& ec) noexcept;
  /// Returns a pipe. `empty` says no bytes are left in it; a pipe that may
  /// hold data is closed, never reused.
  void release(pipe_pair p, bool empty) noexcept;

  std::size_t idle() const noexcept { return idle_.size(); }
  std::size_t created() const noexcept { return created_; }

 private:
  std::vector<pipe_pair> idle_;
  std::size_t max_idle_;
  int pipe_size_;
  std::size_t created_ = 0;
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
