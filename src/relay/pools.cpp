#include "relay/pools.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace cs::relay {

namespace {
void close_pair(pipe_pair p) noexcept {
  ::close(p.read_fd);
  ::close(p.write_fd);
}
}  // namespace

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
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    ec.assign(errno, boost::system::system_category());
    return {};
  }
  if (pipe_size_ > 0) {
    (void)::fcntl(fds[1], F_SETPIPE_SZ, pipe_size_);  // best effort: limits may refuse
  }
  ++created_;
  return {fds[0], fds[1]};
}

void pipe_pool::release(pipe_pair p, bool empty) noexcept {
  if (!p) {
    return;
  }
  if (empty && idle_.size() < max_idle_) {
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
