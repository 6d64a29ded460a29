// Small helpers shared by the benchmark tools (loadgen, target_server).
// Plain POSIX/Linux calls only: the tools must cost as little CPU as possible
// so that the proxy under test, not the harness, is the bottleneck.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// Fatal error for conditions the tools cannot work around (bad arguments,
// epoll failures): the run is worthless, so stop loudly.
[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "fatal: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] inline void die_msg(const std::string& msg) {
  std::fprintf(stderr, "fatal: %s\n", msg.c_str());
  std::exit(2);
}

inline std::uint64_t now_ns() {
  timespec ts{};
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    die("clock_gettime");
  }
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Owns one file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~unique_fd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);  // close(2) errors on a socket carry no actionable info
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Raises the soft open-files limit to the hard limit; returns the new soft
// limit. Tens of thousands of sockets are needed for the idle-tunnel test.
inline rlim_t raise_nofile_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    die("getrlimit(RLIMIT_NOFILE)");
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      die("setrlimit(RLIMIT_NOFILE)");
    }
  }
  return rl.rlim_cur;
}

// How the tools move bulk bytes (the throughput streams; echo traffic is
// always copied, as it is checked).
//   zerocopy: the sender splices page references to one chunk's bytes
//     (tee(2) from a pipe that holds them) and the receiver discards with
//     recv(MSG_TRUNC): neither end copies a byte. The generator and the
//     target then cost little per byte, so they are not what bounds a
//     server on the other CPUs (bench/README, "Bulk I/O of the tools").
//   copy: send()/recv() through a user buffer, as most clients do; what
//     the tools did before zerocopy existed.
enum class bulk_mode : std::uint8_t { zerocopy, copy };

inline std::optional<bulk_mode> parse_bulk_mode(std::string_view s) {
  if (s == "zerocopy") {
    return bulk_mode::zerocopy;
  }
  if (s == "copy") {
    return bulk_mode::copy;
  }
  return std::nullopt;
}

inline const char* to_string(bulk_mode m) { return m == bulk_mode::zerocopy ? "zerocopy" : "copy"; }

// One thread's bulk sender and receiver: send_chunk()/recv_chunk() move at
// most one chunk on a non-blocking socket and return what send(2)/recv(2)
// would (bytes, 0 at EOF, -1 with errno).
class bulk_io {
 public:
  bulk_io(bulk_mode mode, std::size_t chunk) : mode_(mode), buf_(chunk, std::byte{'x'}) {
    if (mode_ != bulk_mode::zerocopy) {
      return;
    }
    // splice(2) to a socket has no MSG_NOSIGNAL: a peer gone must be an EPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    // The chunk's bytes are written once into `master_`, which is never
    // read. Each send tee(2)s them (page references, no bytes) into
    // `work_` and splices `work_` into the socket, which takes the page
    // references in turn. sendfile(2) from a memfd did the same with a
    // page-cache lookup per page; on the generator's CPU that lookup was
    // ~14 % of all its time in eight streams down.
    master_ = make_pipe(chunk);
    work_ = make_pipe(chunk);
    std::size_t done = 0;
    while (done < chunk) {
      const ssize_t w = ::write(master_[1].get(), buf_.data() + done, chunk - done);
      if (w <= 0) {
        die("write(pipe)");
      }
      done += static_cast<std::size_t>(w);
    }
  }

  ssize_t send_chunk(int fd) {
    if (mode_ == bulk_mode::copy) {
      return ::send(fd, buf_.data(), buf_.size(), MSG_NOSIGNAL);
    }
    if (queued_ < buf_.size()) {
      // What a short splice left in `work_` goes to the next socket: every
      // byte is an 'x', and each call counts what reached its own socket.
      const ssize_t t = ::tee(master_[0].get(), work_[1].get(), buf_.size() - queued_, SPLICE_F_NONBLOCK);
      if (t > 0) {
        queued_ += static_cast<std::size_t>(t);
      } else if (queued_ == 0) {
        return -1;  // cannot happen with an empty pipe of the chunk's size; errno says why
      }
    }
    const ssize_t n = ::splice(work_[0].get(), nullptr, fd, nullptr, queued_, SPLICE_F_NONBLOCK);
    if (n > 0) {
      queued_ -= static_cast<std::size_t>(n);
    }
    return n;
  }

  ssize_t recv_chunk(int fd) {
    // With MSG_TRUNC, TCP drops the bytes instead of copying them into
    // the buffer (tcp(7)); the count is the same.
    return ::recv(fd, buf_.data(), buf_.size(), mode_ == bulk_mode::zerocopy ? MSG_TRUNC : 0);
  }

 private:
  // A pipe that holds `bytes`: {read end, write end}.
  static std::array<unique_fd, 2> make_pipe(std::size_t bytes) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      die("pipe2");
    }
    std::array<unique_fd, 2> p{unique_fd(fds[0]), unique_fd(fds[1])};
    if (::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(bytes)) < static_cast<int>(bytes)) {
      die("fcntl(F_SETPIPE_SZ) (see /proc/sys/fs/pipe-max-size)");
    }
    return p;
  }

  bulk_mode mode_;
  std::vector<std::byte> buf_;
  std::array<unique_fd, 2> master_;  // the chunk, never consumed
  std::array<unique_fd, 2> work_;    // what the next splice sends
  std::size_t queued_ = 0;           // bytes in work_
};

// A numeric socket address ("127.0.0.1:1080" or "[::1]:1080").
struct sock_addr {
  sockaddr_storage storage{};
  socklen_t len = 0;

  [[nodiscard]] const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  [[nodiscard]] int family() const { return storage.ss_family; }
};

// 127.0.0.1-style address from a host-order IPv4 value (0x7f000001 = 127.0.0.1).
inline sock_addr ipv4_addr(std::uint32_t host_order_ip, std::uint16_t port) {
  sock_addr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  v4->sin_family = AF_INET;
  v4->sin_addr.s_addr = htonl(host_order_ip);
  v4->sin_port = htons(port);
  a.len = sizeof(sockaddr_in);
  return a;
}

inline sock_addr ipv6_loopback_addr(std::uint16_t port) {
  sock_addr a;
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  v6->sin6_family = AF_INET6;
  v6->sin6_addr = in6addr_loopback;
  v6->sin6_port = htons(port);
  a.len = sizeof(sockaddr_in6);
  return a;
}

inline std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v == 0 || v > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(v);
}

// Splits "host:port" or "[v6]:port"; the host keeps no brackets.
inline std::optional<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view s) {
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  const auto p = parse_port(port);
  if (host.empty() || !p) {
    return std::nullopt;
  }
  return std::make_pair(std::string(host), *p);
}

// Numeric IPv4/IPv6 literal + port to a socket address; nullopt for names.
inline std::optional<sock_addr> numeric_addr(const std::string& host, std::uint16_t port) {
  sock_addr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

}  // namespace bench
