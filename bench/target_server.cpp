// target_server — the loopback peer the benchmark tunnels reach.
//
//   echo   : writes back whatever it reads (sessions, latency, idle tests)
//   source : writes endlessly once a client connects ("down" throughput)
//   sink   : reads and discards, counting bytes ("up" throughput)
//
// Each port is bound on 127.0.0.1 (port 0, so the kernel picks it) and, when
// the host has IPv6 loopback, on [::1] with the same number: a proxy that
// resolves the domain target "localhost" to ::1 must find the target too.
// Every worker thread has its own epoll loop and its own SO_REUSEPORT
// listening sockets, so the kernel spreads connections across threads.
//
// Prints one JSON line with the chosen ports on stdout once every socket
// listens, then serves until SIGINT/SIGTERM, and prints byte and connection
// totals as a second JSON line on exit (a cross-check for the "up" figures).
//
// usage: target_server [-t THREADS] [--bulk zerocopy|copy]
//   --bulk: how source and sink move bytes (net_util.hpp, bulk_mode);
//           zerocopy unless told

#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <array>
#include <atomic>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net_util.hpp"

namespace {

using bench::die;
using bench::unique_fd;

enum class port_kind : std::uint8_t { echo, source, sink };
constexpr int kind_count = 3;

// Bulk reads/writes use one per-thread buffer of this size.
constexpr std::size_t io_chunk = std::size_t{256} * 1024;
constexpr int listen_backlog = 4096;

// epoll user data: bits 0-31 fd, bits 32-39 kind, bit 40 "listening",
// bit 41 "wake-up eventfd". No per-connection allocation is needed: the kind
// says what to do with the fd.
constexpr std::uint64_t listening_bit = 1ULL << 40;
constexpr std::uint64_t wake_bit = 1ULL << 41;

std::uint64_t make_tag(int fd, port_kind kind, bool listening) {
  return static_cast<std::uint32_t>(fd) | (static_cast<std::uint64_t>(kind) << 32) |
         (listening ? listening_bit : 0);
}

struct listener {
  int fd;
  port_kind kind;
};

// Per-thread byte counters, read by the main thread at exit.
struct alignas(64) counters {
  std::atomic<std::uint64_t> echoed{0};
  std::atomic<std::uint64_t> sourced{0};
  std::atomic<std::uint64_t> sunk{0};
  std::atomic<std::uint64_t> accepted{0};
};

// Opens a non-blocking SO_REUSEPORT listener on the loopback address of
// `family`. Returns the fd, or -errno so the caller can decide how to react
// (EADDRINUSE on the IPv6 twin means "pick another port").
int open_listener(int family, std::uint16_t port) {
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  unique_fd guard(fd);
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return -errno;
  }
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    return -errno;
  }
  const bench::sock_addr addr =
      family == AF_INET ? bench::ipv4_addr(INADDR_LOOPBACK, port) : bench::ipv6_loopback_addr(port);
  if (bind(fd, addr.get(), addr.len) != 0 || listen(fd, listen_backlog) != 0) {
    return -errno;
  }
  return guard.release();
}

std::uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    die("getsockname");
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// All listening sockets of one port kind: one per thread and family.
struct port_set {
  std::uint16_t port = 0;
  std::vector<unique_fd> v4;  // index = thread
  std::vector<unique_fd> v6;  // empty when IPv6 loopback is unavailable
};

port_set bind_port_set(int threads, bool& ipv6) {
  // The IPv6 twin may find the kernel's chosen port taken; retry a few times.
  constexpr int max_attempts = 20;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    port_set set;
    int fd = open_listener(AF_INET, 0);
    if (fd < 0) {
      errno = -fd;
      die("listen on 127.0.0.1:0");
    }
    set.v4.emplace_back(fd);
    set.port = local_port(fd);
    bool retry = false;
    for (int t = 0; t < threads && !retry; ++t) {
      if (t > 0) {
        fd = open_listener(AF_INET, set.port);
        if (fd < 0) {
          errno = -fd;
          die("SO_REUSEPORT listener on 127.0.0.1");
        }
        set.v4.emplace_back(fd);
      }
      if (!ipv6) {
        continue;
      }
      fd = open_listener(AF_INET6, set.port);
      if (fd == -EADDRINUSE) {
        retry = true;
      } else if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) {
        std::fprintf(stderr, "target_server: no IPv6 loopback, serving 127.0.0.1 only\n");
        ipv6 = false;
        set.v6.clear();
      } else if (fd < 0) {
        errno = -fd;
        die("listen on [::1]");
      } else {
        set.v6.emplace_back(fd);
      }
    }
    if (!retry) {
      return set;
    }
  }
  bench::die_msg("could not find a port free on both 127.0.0.1 and [::1]");
}

class worker {
 public:
  worker(std::vector<listener> listeners, counters& stats, bench::bulk_mode bulk)
      : epfd_(epoll_create1(EPOLL_CLOEXEC)),
        wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        listeners_(std::move(listeners)),
        stats_(stats),
        buf_(io_chunk, std::byte{'x'}),
        bulk_(bulk, io_chunk) {
    if (epfd_.get() < 0) {
      die("epoll_create1");
    }
    if (wake_.get() < 0) {
      die("eventfd");
    }
    add(wake_.get(), EPOLLIN, wake_bit);
    for (const auto& l : listeners_) {
      add(l.fd, EPOLLIN, make_tag(l.fd, l.kind, true));
    }
  }

  // Called from the main thread to end run().
  void wake() {
    const std::uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof one) != sizeof one) {
      die("eventfd write");
    }
  }

  void run() {
    std::array<epoll_event, 256> events{};
    for (;;) {
      const int n = epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        if (tag & wake_bit) {
          return;  // connections close when the process exits
        }
        const int fd = static_cast<int>(tag & 0xffffffffU);
        const auto kind = static_cast<port_kind>((tag >> 32) & 0xff);
        if (tag & listening_bit) {
          accept_all(fd, kind);
        } else {
          serve(fd, kind, events[i].events);
        }
      }
    }
  }

 private:
  void add(int fd, std::uint32_t events, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      die("epoll_ctl(ADD)");
    }
  }

  void accept_all(int lfd, port_kind kind) {
    for (;;) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
          return;
        }
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: leave the connection in the backlog. The
          // level-triggered listener keeps reporting it, so this thread
          // polls until a client closes. The benchmark stays far below the
          // limit, so say it once: it means the host is misconfigured.
          if (!warned_no_fds_) {
            std::fprintf(stderr, "target_server: accept: %s\n", std::strerror(errno));
            warned_no_fds_ = true;
          }
          return;
        }
        die("accept4");
      }
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
      const int one = 1;
      if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        die("setsockopt(TCP_NODELAY)");
      }
      // Edge-triggered: each handler works until EAGAIN. The socket is
      // writable already, so the source starts on the EPOLLOUT that
      // registration itself reports.
      add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, make_tag(fd, kind, false));
    }
  }

  void serve(int fd, port_kind kind, std::uint32_t events) {
    bool open = true;
    switch (kind) {
      case port_kind::echo:
        open = echo(fd);
        break;
      case port_kind::source:
        open = source(fd, events);
        break;
      case port_kind::sink:
        open = sink(fd);
        break;
    }
    if (!open) {
      close_conn(fd);
    }
  }

  // Returns false when the connection is finished. Echoed bytes that the
  // socket does not take at once wait in pending_ and reading pauses until
  // they are flushed, so a client that stops reading cannot grow memory.
  bool echo(int fd) {
    if (auto it = pending_.find(fd); it != pending_.end()) {
      auto& p = it->second;
      const ssize_t w = send(fd, p.data(), p.size(), MSG_NOSIGNAL);
      if (w < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      stats_.echoed.fetch_add(static_cast<std::uint64_t>(w), std::memory_order_relaxed);
      p.erase(p.begin(), p.begin() + w);
      if (!p.empty()) {
        return true;
      }
      pending_.erase(it);
    }
    for (;;) {
      const ssize_t r = recv(fd, buf_.data(), buf_.size(), 0);
      if (r == 0) {
        return false;
      }
      if (r < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      ssize_t w = send(fd, buf_.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno != EAGAIN) {
          return false;
        }
        w = 0;
      }
      stats_.echoed.fetch_add(static_cast<std::uint64_t>(w), std::memory_order_relaxed);
      if (w < r) {
        pending_.emplace(fd, std::vector<std::byte>(buf_.begin() + w, buf_.begin() + r));
        return true;
      }
    }
  }

  // A client that half-closes still gets data: only an error ends it.
  bool source(int fd, std::uint32_t events) {
    if (events & (EPOLLHUP | EPOLLERR)) {
      return false;
    }
    for (;;) {
      const ssize_t w = bulk_.send_chunk(fd);
      if (w < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      stats_.sourced.fetch_add(static_cast<std::uint64_t>(w), std::memory_order_relaxed);
    }
  }

  bool sink(int fd) {
    for (;;) {
      const ssize_t r = bulk_.recv_chunk(fd);
      if (r == 0) {
        return false;
      }
      if (r < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      stats_.sunk.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
    }
  }

  void close_conn(int fd) {
    pending_.erase(fd);
    ::close(fd);  // also removes it from the epoll set
  }

  unique_fd epfd_;
  unique_fd wake_;
  std::vector<listener> listeners_;
  counters& stats_;
  std::vector<std::byte> buf_;  // echo
  bench::bulk_io bulk_;         // source and sink
  std::unordered_map<int, std::vector<std::byte>> pending_;
  bool warned_no_fds_ = false;
};

struct cli {
  int threads = 1;
  bench::bulk_mode bulk = bench::bulk_mode::zerocopy;
};

cli parse_cli(int argc, char** argv) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  cli c;
  c.threads = hw > 0 ? hw : 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "-t" || arg == "--threads") && i + 1 < argc) {
      c.threads = std::atoi(argv[++i]);
    } else if (arg == "--bulk" && i + 1 < argc) {
      const auto m = bench::parse_bulk_mode(argv[++i]);
      if (!m) {
        bench::die_msg("--bulk is zerocopy or copy");
      }
      c.bulk = *m;
    } else {
      bench::die_msg("usage: target_server [-t THREADS] [--bulk zerocopy|copy]");
    }
  }
  if (c.threads < 1 || c.threads > 256) {
    bench::die_msg("-t must be 1..256");
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const cli opts = parse_cli(argc, argv);
  const int threads = opts.threads;
  const rlim_t nofile = bench::raise_nofile_limit();

  // Block the stop signals in every thread; main collects them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    die("pthread_sigmask");
  }

  bool ipv6 = true;
  std::array<port_set, kind_count> ports;
  for (int k = 0; k < kind_count; ++k) {
    ports[static_cast<std::size_t>(k)] = bind_port_set(threads, ipv6);
  }
  if (!ipv6) {
    for (auto& p : ports) {
      p.v6.clear();
    }
  }

  std::vector<counters> stats(static_cast<std::size_t>(threads));
  std::vector<std::unique_ptr<worker>> workers;
  for (int t = 0; t < threads; ++t) {
    std::vector<listener> ls;
    for (int k = 0; k < kind_count; ++k) {
      const auto& p = ports[static_cast<std::size_t>(k)];
      const auto kind = static_cast<port_kind>(k);
      ls.push_back({p.v4[static_cast<std::size_t>(t)].get(), kind});
      if (!p.v6.empty()) {
        ls.push_back({p.v6[static_cast<std::size_t>(t)].get(), kind});
      }
    }
    workers.push_back(std::make_unique<worker>(std::move(ls), stats[static_cast<std::size_t>(t)], opts.bulk));
  }
  std::vector<std::thread> pool;
  pool.reserve(workers.size());
  for (auto& w : workers) {
    pool.emplace_back([&w] { w->run(); });
  }

  std::printf(
      "{\"echo\":%u,\"source\":%u,\"sink\":%u,\"ipv6\":%s,\"threads\":%d,\"nofile\":%llu,\"bulk\":\"%s\"}\n",
      unsigned{ports[0].port}, unsigned{ports[1].port}, unsigned{ports[2].port},
      ipv6 ? "true" : "false", threads, static_cast<unsigned long long>(nofile), bench::to_string(opts.bulk));
  if (std::fflush(stdout) != 0) {
    die("fflush(stdout)");
  }
  std::fprintf(stderr, "target_server: echo %u, source %u, sink %u on 127.0.0.1%s, %d threads, %s bulk I/O\n",
               unsigned{ports[0].port}, unsigned{ports[1].port}, unsigned{ports[2].port},
               ipv6 ? " and [::1]" : "", threads, bench::to_string(opts.bulk));

  int sig = 0;
  if (sigwait(&stop_signals, &sig) != 0) {
    die("sigwait");
  }
  for (auto& w : workers) {
    w->wake();
  }
  for (auto& t : pool) {
    t.join();
  }

  std::uint64_t echoed = 0;
  std::uint64_t sourced = 0;
  std::uint64_t sunk = 0;
  std::uint64_t accepted = 0;
  for (const auto& s : stats) {
    echoed += s.echoed.load();
    sourced += s.sourced.load();
    sunk += s.sunk.load();
    accepted += s.accepted.load();
  }
  std::printf(
      "{\"event\":\"totals\",\"accepted\":%llu,\"echo_bytes\":%llu,\"source_bytes\":%llu,"
      "\"sink_bytes\":%llu}\n",
      static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(echoed),
      static_cast<unsigned long long>(sourced), static_cast<unsigned long long>(sunk));
  return 0;
}
