#include "relay/pools.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace cs::relay {

namespace {
bool is_grown(const pipe_pair& p) noexcept { return p.base != 0 && p.capacity != p.base; }

void close_pair(pipe_pair p) noexcept {
  ::close(p.read_fd);
  ::close(p.write_fd);
}
}  // namespace

idle_pipe_caps idle_pipe_caps_for(unsigned workers) noexcept {
  const std::size_t w = std::max(workers, 1u);
  // 256 default pipes (4,096 pages) and 32 grown ones (a further 1,536)
  // across all workers, never fewer than 4 and 1 per worker: at 64 workers
  // that is 7,168 pages, 44 % of the default budget.
  return {std::clamp<std::size_t>(256 / w, 4, 64), std::clamp<std::size_t>(32 / w, 1, 8)};
}

pipe_pool::pipe_pool(std::size_t max_idle, std::size_t grow_to, std::size_t max_idle_grown,
                     std::function<void(std::uint32_t)> on_limited)
    : max_idle_(max_idle),
      max_idle_grown_(max_idle_grown),
      grow_to_(grow_to),
      minimum_(2 * static_cast<std::uint32_t>(::sysconf(_SC_PAGESIZE))),
      on_limited_(std::move(on_limited)) {
  idle_.reserve(max_idle_);  // release() never allocates
}

pipe_pool::~pipe_pool() {
  for (auto p : idle_) {
    close_pair(p);
  }
}

pipe_pair pipe_pool::acquire(core::error_code& ec) noexcept {
  ec.clear();
  if (!idle_.empty()) {
    auto p = idle_.back();
    idle_.pop_back();
    if (is_grown(p)) {
      --idle_grown_;
    }
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    ec.assign(errno, boost::system::system_category());
    return {};
  }
  const int size = ::fcntl(fds[1], F_GETPIPE_SZ);
  bump(created_);
  const auto capacity = static_cast<std::uint32_t>(size > 0 ? size : 4096);
  if (size > 0 && capacity <= minimum_) {
    // The kernel's answer to a user over fs.pipe-user-pages-soft (or an
    // fs.pipe-max-size this small): still correct, but each splice moves
    // at most this much.
    if (limited() == 0 && on_limited_) {
      on_limited_(capacity);
    }
    bump(limited_);
  }
  return {fds[0], fds[1], capacity, size > 0 ? capacity : 0};
}

void pipe_pool::grow(pipe_pair& p) noexcept {
  if (p.base == 0 || p.capacity != p.base || grow_to_ <= p.capacity) {
    return;
  }
  const int size = ::fcntl(p.write_fd, F_SETPIPE_SZ, static_cast<int>(grow_to_));
  if (size > 0) {
    p.capacity = static_cast<std::uint32_t>(size);
    bump(grown_);
  } else {
    p.base = 0;  // refused: do not ask again for this pipe
    bump(grow_refused_);
  }
}

void pipe_pool::release(pipe_pair p, bool empty) noexcept {
  if (!p) {
    return;
  }
  if (empty && is_grown(p) && idle_grown_ >= max_idle_grown_) {
    if (::fcntl(p.write_fd, F_SETPIPE_SZ, static_cast<int>(p.base)) > 0) {
      p.capacity = p.base;
    } else {
      empty = false;  // could not shrink it: do not keep it
    }
  }
  if (p.capacity <= minimum_) {
    // Limited by the kernel: closed, not kept, so its pages go back to the
    // user's budget and a later pipe can have the full size again.
    empty = false;
  }
  if (empty && idle_.size() < max_idle_) {
    idle_grown_ += is_grown(p) ? 1 : 0;
    idle_.push_back(p);
  } else {
    close_pair(p);
  }
}

std::unique_ptr<std::uint8_t[]> buffer_pool::acquire() {
  if (!idle_.empty()) {
    auto b = std::move(idle_.back());
    idle_.pop_back();
    return b;
  }
  return std::make_unique_for_overwrite<std::uint8_t[]>(size_);
}

void buffer_pool::release(std::unique_ptr<std::uint8_t[]> b) noexcept {
  if (b && idle_.size() < max_idle_) {
    idle_.push_back(std::move(b));
  }
}

}  // namespace cs::relay
