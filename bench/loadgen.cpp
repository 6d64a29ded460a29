// loadgen — the CleverSocks benchmark's load generator.
//
// Speaks the SOCKS5 client side itself (no-auth or RFC 1929, IPv4 / IPv6 /
// DOMAIN targets) over non-blocking sockets, one epoll loop per thread, so it
// costs a few syscalls per operation and is never the bottleneck; --direct
// skips the proxy and shows the ceiling of the machine with this generator.
//
// Modes (one JSON line per measurement on stdout, human text on stderr):
//   throughput  S streams for D seconds, --dir up (to the sink) or down
//               (from the source); Gbit/s of payload.
//   sessions    C clients, each looping connect → greeting (→ auth) →
//               CONNECT → 64 B echo → close; sessions/s and errors.
//   latency     one tunnel, 64 B ping-pong N times after a warm-up;
//               p50 / p99 / max round trip in µs.
//   idle        opens tunnels (one echo each proves them) up to each level
//               of --levels as fast as a window of C handshakes in flight
//               allows; open rate, and with --pid the RSS growth of that
//               process tree in KiB per tunnel; then holds them.
// With --pid, throughput and sessions also report the CPU time that process
// tree used over the measured window.
//
// Run `loadgen --help` for the options.

#include <dirent.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net_util.hpp"

namespace {

using bench::die;
using bench::die_msg;
using bench::now_ns;
using bench::unique_fd;

// ---------------------------------------------------------------- options --

enum class run_mode : std::uint8_t { throughput, sessions, latency, idle };
enum class direction : std::uint8_t { up, down };
enum class target_type : std::uint8_t { ipv4, ipv6, domain };

struct options {
  run_mode mode = run_mode::sessions;
  bool direct = false;
  std::optional<bench::sock_addr> proxy;
  std::string target_host;
  std::uint16_t target_port = 0;
  target_type ttype = target_type::ipv4;
  std::optional<std::pair<std::string, std::string>> auth;  // user, password
  bool pipeline = false;
  int threads = 1;
  double duration_s = 5;
  double warmup_s = 1;
  int streams = 1;
  direction dir = direction::up;
  int clients = 64;
  int pings = 10000;
  int warmup_pings = 1000;
  std::vector<int> levels{1000, 5000, 10000};
  pid_t pid = 0;
  double hold_s = -1;  // < 0: until SIGINT/SIGTERM
  double timeout_s = 5;
  std::size_t msg_size = 64;
  bench::bulk_mode bulk = bench::bulk_mode::zerocopy;
};

constexpr const char* usage_text =
    R"(usage: loadgen MODE (--proxy HOST:PORT | --direct) --target HOST:PORT [options]
MODE: throughput | sessions | latency | idle
  --proxy ADDR:PORT   SOCKS5 server (numeric address)
  --direct            connect straight to the target (baseline)
  --target HOST:PORT  IPv4 literal, [IPv6] literal, or a name sent as DOMAIN
  --auth USER:PASS    RFC 1929 username/password
  --pipeline          send greeting, auth and CONNECT in one write
  -t, --threads N     generator threads, each with its own epoll loop (1)
  -d, --duration S    measured seconds, throughput/sessions (5)
  --warmup S          unmeasured seconds first (1)
  -s, --streams N     throughput streams (1)
  --dir up|down       throughput direction (up)
  --bulk MODE         throughput: zerocopy (tee and splice from a pipe, recv
                      with MSG_TRUNC: no byte copied) or copy (send/recv through a
                      buffer) (zerocopy)
  -c, --clients N     sessions: concurrent clients; idle: handshakes in flight (64)
  -n, --count N       latency round trips measured (10000)
  --warmup-count N    latency round trips discarded first (1000)
  --levels A,B,...    idle: tunnel counts to measure at (1000,5000,10000)
  --pid PID           proxy process: idle measures its tree's RSS, throughput and
                      sessions its tree's CPU time over the measured window
  --hold S            idle: seconds to hold the tunnels at the end (until signal)
  --timeout S         a connect/handshake/echo step stalled this long fails (5)
  --size BYTES        echo message size, 1..512 (64)
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "loadgen: %s\n%s", msg.c_str(), usage_text);
  std::exit(2);
}

double parse_double(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || v < 0) {
    usage_error(std::string("bad ") + what + ": " + s);
  }
  return v;
}

int parse_int(const char* s, const char* what, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    usage_error(std::string("bad ") + what + ": " + s);
  }
  return static_cast<int>(v);
}

options parse_options(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    std::fputs(usage_text, stdout);
    std::exit(argc < 2 ? 2 : 0);
  }
  options o;
  const std::string_view mode = argv[1];
  if (mode == "throughput") {
    o.mode = run_mode::throughput;
  } else if (mode == "sessions") {
    o.mode = run_mode::sessions;
  } else if (mode == "latency") {
    o.mode = run_mode::latency;
  } else if (mode == "idle") {
    o.mode = run_mode::idle;
  } else {
    usage_error("unknown mode " + std::string(mode));
  }

  enum long_only : int {
    opt_proxy = 256,
    opt_direct,
    opt_target,
    opt_auth,
    opt_pipeline,
    opt_warmup,
    opt_dir,
    opt_warmup_count,
    opt_levels,
    opt_pid,
    opt_hold,
    opt_timeout,
    opt_size,
    opt_bulk
  };
  const std::array<option, 21> longopts{{
      {"proxy", required_argument, nullptr, opt_proxy},
      {"direct", no_argument, nullptr, opt_direct},
      {"target", required_argument, nullptr, opt_target},
      {"auth", required_argument, nullptr, opt_auth},
      {"pipeline", no_argument, nullptr, opt_pipeline},
      {"threads", required_argument, nullptr, 't'},
      {"duration", required_argument, nullptr, 'd'},
      {"warmup", required_argument, nullptr, opt_warmup},
      {"streams", required_argument, nullptr, 's'},
      {"dir", required_argument, nullptr, opt_dir},
      {"clients", required_argument, nullptr, 'c'},
      {"count", required_argument, nullptr, 'n'},
      {"warmup-count", required_argument, nullptr, opt_warmup_count},
      {"levels", required_argument, nullptr, opt_levels},
      {"pid", required_argument, nullptr, opt_pid},
      {"hold", required_argument, nullptr, opt_hold},
      {"timeout", required_argument, nullptr, opt_timeout},
      {"size", required_argument, nullptr, opt_size},
      {"bulk", required_argument, nullptr, opt_bulk},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  }};
  optind = 2;
  std::optional<std::pair<std::string, std::uint16_t>> target;
  for (;;) {
    const int c = getopt_long(argc, argv, "t:d:s:c:n:h", longopts.data(), nullptr);
    if (c == -1) {
      break;
    }
    switch (c) {
      case opt_proxy: {
        const auto hp = bench::split_host_port(optarg);
        if (!hp || !(o.proxy = bench::numeric_addr(hp->first, hp->second))) {
          usage_error(std::string("--proxy needs a numeric ADDR:PORT, got ") + optarg);
        }
        break;
      }
      case opt_direct:
        o.direct = true;
        break;
      case opt_target:
        if (!(target = bench::split_host_port(optarg))) {
          usage_error(std::string("bad --target: ") + optarg);
        }
        break;
      case opt_auth: {
        const std::string_view a = optarg;
        const auto colon = a.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon > 255 ||
            a.size() - colon - 1 > 255 || colon + 1 == a.size()) {
          usage_error("--auth needs USER:PASS, each 1..255 bytes");
        }
        o.auth.emplace(std::string(a.substr(0, colon)), std::string(a.substr(colon + 1)));
        break;
      }
      case opt_pipeline:
        o.pipeline = true;
        break;
      case 't':
        o.threads = parse_int(optarg, "--threads", 1, 256);
        break;
      case 'd':
        o.duration_s = parse_double(optarg, "--duration");
        break;
      case opt_warmup:
        o.warmup_s = parse_double(optarg, "--warmup");
        break;
      case 's':
        o.streams = parse_int(optarg, "--streams", 1, 10000);
        break;
      case opt_dir:
        if (std::string_view(optarg) == "up") {
          o.dir = direction::up;
        } else if (std::string_view(optarg) == "down") {
          o.dir = direction::down;
        } else {
          usage_error("--dir is up or down");
        }
        break;
      case 'c':
        o.clients = parse_int(optarg, "--clients", 1, 100000);
        break;
      case 'n':
        o.pings = parse_int(optarg, "--count", 1, 100'000'000);
        break;
      case opt_warmup_count:
        o.warmup_pings = parse_int(optarg, "--warmup-count", 0, 100'000'000);
        break;
      case opt_levels: {
        o.levels.clear();
        std::stringstream ss(optarg);
        std::string item;
        while (std::getline(ss, item, ',')) {
          o.levels.push_back(parse_int(item.c_str(), "--levels", 1, 1'000'000));
        }
        if (o.levels.empty()) {
          usage_error("--levels is empty");
        }
        std::sort(o.levels.begin(), o.levels.end());
        break;
      }
      case opt_pid:
        o.pid = parse_int(optarg, "--pid", 1, 1 << 30);
        break;
      case opt_hold:
        o.hold_s = parse_double(optarg, "--hold");
        break;
      case opt_timeout:
        o.timeout_s = parse_double(optarg, "--timeout");
        break;
      case opt_size:
        o.msg_size = static_cast<std::size_t>(parse_int(optarg, "--size", 1, 512));
        break;
      case opt_bulk: {
        const auto m = bench::parse_bulk_mode(optarg);
        if (!m) {
          usage_error("--bulk is zerocopy or copy");
        }
        o.bulk = *m;
        break;
      }
      case 'h':
        std::fputs(usage_text, stdout);
        std::exit(0);
      default:
        usage_error("bad option");
    }
  }
  if (optind != argc) {
    usage_error(std::string("unexpected argument ") + argv[optind]);
  }
  if (!target) {
    usage_error("--target is required");
  }
  if (o.direct == o.proxy.has_value()) {
    usage_error("give exactly one of --proxy and --direct");
  }
  if (o.duration_s <= 0 || o.timeout_s <= 0) {
    usage_error("--duration and --timeout must be positive");
  }
  if (o.direct && (o.auth || o.pipeline)) {
    usage_error("--auth and --pipeline need --proxy");
  }
  o.target_host = target->first;
  o.target_port = target->second;
  if (const auto a = bench::numeric_addr(o.target_host, o.target_port)) {
    o.ttype = a->family() == AF_INET ? target_type::ipv4 : target_type::ipv6;
  } else if (o.target_host.size() > 255) {
    usage_error("a DOMAIN target is at most 255 bytes");
  } else {
    o.ttype = target_type::domain;
  }
  return o;
}

// ------------------------------------------------------------ JSON output --

// One flat JSON object printed as a line; keys and string values here are
// ours or host names, so escaping quotes, backslashes and controls suffices.
class json_line {
 public:
  json_line& str(std::string_view key, std::string_view v) {
    key_(key);
    out_ += '"';
    for (const char ch : v) {
      if (ch == '"' || ch == '\\') {
        out_ += '\\';
        out_ += ch;
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        std::array<char, 8> esc{};
        std::snprintf(esc.data(), esc.size(), "\\u%04x", ch);
        out_ += esc.data();
      } else {
        out_ += ch;
      }
    }
    out_ += '"';
    return *this;
  }
  json_line& num(std::string_view key, double v, int decimals = 3) {
    key_(key);
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "%.*f", decimals, v);
    out_ += buf.data();
    return *this;
  }
  json_line& num(std::string_view key, std::uint64_t v) {
    key_(key);
    out_ += std::to_string(v);
    return *this;
  }
  json_line& boolean(std::string_view key, bool v) {
    key_(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  json_line& null(std::string_view key) {
    key_(key);
    out_ += "null";
    return *this;
  }
  json_line& raw(std::string_view key, const std::string& json) {
    key_(key);
    out_ += json;
    return *this;
  }
  void print() {
    out_ += "}\n";
    if (std::fputs(out_.c_str(), stdout) < 0 || std::fflush(stdout) != 0) {
      die("write to stdout");
    }
  }

 private:
  void key_(std::string_view key) {
    out_ += out_.size() > 1 ? ",\"" : "\"";
    out_ += key;
    out_ += "\":";
  }
  std::string out_ = "{";
};

// ------------------------------------------------------- shared run state --

enum class err_kind : std::uint8_t { connect, socks, closed, timeout, mismatch };
constexpr std::array<const char*, 5> err_names{"connect", "socks", "closed", "timeout", "mismatch"};
constexpr std::size_t err_count = err_names.size();

// Counters one worker publishes to the main thread (relaxed atomics: they
// are sampled, not used to synchronise anything).
struct alignas(64) thread_stats {
  std::atomic<std::uint64_t> bytes{0};     // throughput payload bytes
  std::atomic<std::uint64_t> sessions{0};  // completed sessions
  std::array<std::atomic<std::uint64_t>, err_count> errors{};
  std::atomic<std::uint64_t> open{0};     // idle: established tunnels now
  std::atomic<std::uint64_t> dropped{0};  // idle: tunnels the peer closed
  std::atomic<std::uint64_t> last_open_ns{0};
  std::atomic<bool> exhausted{false};         // idle: gave up opening more
  std::atomic<std::uint64_t> first_error{0};  // see error_code(); 0: none yet
};

// The SOCKS5 messages a client sends, built once and shared read-only.
struct handshake_bytes {
  std::vector<std::uint8_t> greeting;
  std::vector<std::uint8_t> auth;  // empty without --auth
  std::vector<std::uint8_t> request;
  std::vector<std::uint8_t> pipelined;  // greeting + auth + request
};

handshake_bytes build_handshake(const options& o) {
  handshake_bytes h;
  // Offer exactly one method, as a client configured for it would.
  h.greeting = {0x05, 0x01, static_cast<std::uint8_t>(o.auth ? 0x02 : 0x00)};
  if (o.auth) {
    const auto& [user, pass] = *o.auth;
    h.auth.push_back(0x01);
    h.auth.push_back(static_cast<std::uint8_t>(user.size()));
    h.auth.insert(h.auth.end(), user.begin(), user.end());
    h.auth.push_back(static_cast<std::uint8_t>(pass.size()));
    h.auth.insert(h.auth.end(), pass.begin(), pass.end());
  }
  h.request = {0x05, 0x01, 0x00};  // CONNECT
  if (const auto a = bench::numeric_addr(o.target_host, o.target_port)) {
    if (a->family() == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a->storage);
      const auto* b = reinterpret_cast<const std::uint8_t*>(&v4->sin_addr);
      h.request.push_back(0x01);
      h.request.insert(h.request.end(), b, b + 4);
    } else {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a->storage);
      const auto* b = reinterpret_cast<const std::uint8_t*>(&v6->sin6_addr);
      h.request.push_back(0x04);
      h.request.insert(h.request.end(), b, b + 16);
    }
  } else {
    h.request.push_back(0x03);
    h.request.push_back(static_cast<std::uint8_t>(o.target_host.size()));
    h.request.insert(h.request.end(), o.target_host.begin(), o.target_host.end());
  }
  h.request.push_back(static_cast<std::uint8_t>(o.target_port >> 8));
  h.request.push_back(static_cast<std::uint8_t>(o.target_port & 0xff));
  h.pipelined = h.greeting;
  h.pipelined.insert(h.pipelined.end(), h.auth.begin(), h.auth.end());
  h.pipelined.insert(h.pipelined.end(), h.request.begin(), h.request.end());
  return h;
}

// The address the generator's sockets connect to: the proxy, or with
// --direct the target (a name is resolved once, here, not per session).
bench::sock_addr connect_address(const options& o) {
  if (!o.direct) {
    return *o.proxy;
  }
  if (const auto a = bench::numeric_addr(o.target_host, o.target_port)) {
    return *a;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(o.target_port);
  if (const int rc = getaddrinfo(o.target_host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    die_msg("resolve " + o.target_host + ": " + gai_strerror(rc));
  }
  bench::sock_addr a;
  std::memcpy(&a.storage, res->ai_addr, res->ai_addrlen);
  a.len = res->ai_addrlen;
  freeaddrinfo(res);
  return a;
}

struct shared_state {
  options opt;
  bench::sock_addr dest;
  handshake_bytes hs;
  std::vector<std::uint8_t> payload;  // the echo message
  std::uint64_t timeout_ns = 0;
  std::atomic<bool> stop{false};
  // Source address for new sockets: 0 lets the kernel choose (127.0.0.1);
  // k > 0 binds 127.0.0.(k+1), used once ephemeral ports run out.
  std::atomic<std::uint32_t> src_index{0};
  std::atomic<std::uint64_t> idle_level{0};  // idle: tunnels wanted in total
  unique_fd done_fd;  // eventfd: a worker finished its part (idle level, latency)
};

void notify_done(shared_state& s) {
  const std::uint64_t one = 1;
  if (write(s.done_fd.get(), &one, sizeof one) != sizeof one) {
    die("eventfd write");
  }
}

// ----------------------------------------------------------------- worker --

enum class stage : std::uint8_t {
  closed,      // no socket
  connecting,  // waiting for the TCP connect to complete
  greeting,    // waiting for the method selection reply
  auth,        // waiting for the RFC 1929 status
  request,     // waiting for the CONNECT reply
  echo,        // the echo message is in flight
  streaming,   // throughput
  holding,     // idle tunnel, established and proven
};

constexpr std::array<const char*, 8> stage_names{"closed",  "connecting", "greeting",  "auth",
                                                 "CONNECT", "echo",       "streaming", "holding"};

// The first error a thread saw, packed in one atomic word so the main thread
// can read it at any time: bit 63 "set", kind, stage, detail (an errno; for
// SOCKS errors the reply's first two bytes).
std::uint64_t error_code(err_kind kind, stage st, std::uint32_t detail) {
  return (1ULL << 63) | (static_cast<std::uint64_t>(kind) << 40) |
         (static_cast<std::uint64_t>(st) << 32) | detail;
}

std::string error_text(std::uint64_t code) {
  const auto kind = static_cast<std::size_t>((code >> 40) & 0xff);
  const auto st = static_cast<std::size_t>((code >> 32) & 0xff);
  const auto detail = static_cast<std::uint32_t>(code & 0xffffffffU);
  std::string out = std::string(err_names[kind]) + " in " + stage_names[st];
  if (static_cast<err_kind>(kind) == err_kind::socks && detail != 0) {
    std::array<char, 32> hex{};
    std::snprintf(hex.data(), hex.size(), ": reply %02x %02x", detail >> 8, detail & 0xff);
    out += hex.data();
  } else if (static_cast<err_kind>(kind) == err_kind::closed && detail == 0) {
    out += ": end of stream";
  } else if (detail != 0) {
    out += std::string(": ") + std::strerror(static_cast<int>(detail));
  }
  return out;
}

constexpr std::size_t rx_capacity = 512;  // > largest SOCKS5 reply (262 B)
constexpr std::size_t io_chunk = std::size_t{256} * 1024;
// Reads/writes one stream may do before yielding to the thread's others.
constexpr int io_budget = 16;
constexpr std::uint64_t wake_tag = ~0ULL;

struct conn {
  int fd = -1;
  std::uint32_t gen = 0;  // bumped per socket; stale epoll events are dropped
  stage st = stage::closed;
  const std::uint8_t* tx = nullptr;  // message being sent (shared bytes)
  std::uint16_t tx_len = 0;
  std::uint16_t tx_off = 0;
  std::uint16_t rx_len = 0;
  std::uint16_t echo_got = 0;
  std::uint64_t deadline_ns = 0;  // 0: no deadline
  std::uint64_t started_ns = 0;   // echo send time (latency)
  std::array<std::uint8_t, rx_capacity> rx{};
};

class worker {
 public:
  worker(shared_state& s, thread_stats& stats, int index, int nthreads, std::size_t slots)
      : s_(s),
        stats_(stats),
        index_(index),
        nthreads_(nthreads),
        epfd_(epoll_create1(EPOLL_CLOEXEC)),
        wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        conns_(slots),
        buf_(io_chunk, std::byte{'x'}),
        bulk_(s.opt.bulk, io_chunk) {
    if (epfd_.get() < 0) {
      die("epoll_create1");
    }
    if (wake_.get() < 0) {
      die("eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_tag;
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
      die("epoll_ctl(ADD eventfd)");
    }
    if (s_.opt.mode == run_mode::idle) {
      window_ = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(s_.opt.clients / nthreads));
      for (std::size_t i = slots; i > 0; --i) {
        free_slots_.push_back(static_cast<std::uint32_t>(i - 1));
      }
    }
    if (s_.opt.mode == run_mode::latency) {
      samples_.reserve(static_cast<std::size_t>(s_.opt.pings));
    }
  }

  // Main thread → worker: re-read shared state (new idle level, or stop).
  void kick() {
    const std::uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof one) != sizeof one) {
      die("eventfd write");
    }
  }

  [[nodiscard]] const std::vector<std::uint32_t>& samples() const { return samples_; }

  void run() {
    if (s_.opt.mode != run_mode::idle) {
      for (std::uint32_t i = 0; i < conns_.size(); ++i) {
        open(i);
      }
    }
    std::array<epoll_event, 256> events{};
    std::uint64_t next_sweep = now_ns() + sweep_interval_ns;
    while (!s_.stop.load(std::memory_order_relaxed) && !finished_) {
      const int wait_ms = runnable_.empty() ? 100 : 0;
      const int n =
          epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()), wait_ms);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        if (tag == wake_tag) {
          on_kick();
          continue;
        }
        const auto slot = static_cast<std::uint32_t>(tag & 0xffffffffU);
        conn& c = conns_[slot];
        if (c.fd >= 0 && c.gen == static_cast<std::uint32_t>(tag >> 32)) {
          on_event(slot, events[i].events);
        }
      }
      run_runnable();
      const std::uint64_t now = now_ns();
      if (now >= next_sweep) {
        sweep_timeouts(now);
        next_sweep = now + sweep_interval_ns;
      }
    }
    for (auto& c : conns_) {
      if (c.fd >= 0) {
        ::close(c.fd);
        c.fd = -1;
      }
    }
  }

 private:
  static constexpr std::uint64_t sweep_interval_ns = 100'000'000;

  // ---- socket lifecycle

  // Starts a connection in `slot`. Failures go through fail(), which never
  // re-opens synchronously, so a refusing peer cannot recurse.
  void open(std::uint32_t slot) {
    conn& c = conns_[slot];
    c.gen++;
    c.st = stage::connecting;
    c.rx_len = 0;
    c.tx_len = 0;
    c.tx_off = 0;
    c.deadline_ns = now_ns() + s_.timeout_ns;
    const int family = s_.dest.family();
    for (;;) {
      const std::uint32_t src = s_.src_index.load(std::memory_order_relaxed);
      c.fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) {
        const int err = errno;
        if (err != EMFILE && err != ENFILE) {
          die("socket");
        }
        note_once(no_fds_noted_, "loadgen: out of file descriptors; cannot open more sockets");
        if (s_.opt.mode == run_mode::idle) {
          set_exhausted();
        }
        fail(slot, err_kind::connect, err);
        return;
      }
      const int one = 1;
      if (setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        die("setsockopt(TCP_NODELAY)");
      }
      if (src > 0) {
        // Port chosen at connect time, per destination: a source address
        // then has the whole ephemeral range for each destination.
        const auto addr = bench::ipv4_addr(INADDR_LOOPBACK + src, 0);
        if (setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
            bind(c.fd, addr.get(), addr.len) != 0) {
          die("bind source address");
        }
      }
      if (connect(c.fd, s_.dest.get(), s_.dest.len) == 0 || errno == EINPROGRESS) {
        break;
      }
      const int err = errno;
      ::close(c.fd);
      c.fd = -1;
      if (err == EADDRNOTAVAIL && family == AF_INET && src < 253) {
        rotate_source(src);
        continue;
      }
      fail(slot, err_kind::connect, err);
      return;
    }
    epoll_event ev{};
    // Edge-triggered: every handler works until EAGAIN (or its budget).
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (static_cast<std::uint64_t>(c.gen) << 32) | slot;
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      die("epoll_ctl(ADD)");
    }
  }

  // Ephemeral ports towards the destination are used up: move every thread
  // to the next 127.0.0.x source address (the first to notice does it).
  void rotate_source(std::uint32_t seen) {
    if (s_.src_index.compare_exchange_strong(seen, seen + 1)) {
      std::fprintf(stderr, "loadgen: ephemeral ports exhausted, binding source 127.0.0.%u\n",
                   seen + 2);
    }
  }

  void close_conn(conn& c) {
    if (c.fd >= 0) {
      ::close(c.fd);  // also removes it from the epoll set
      c.fd = -1;
    }
    c.st = stage::closed;
    c.deadline_ns = 0;
  }

  // Ends a connection that went wrong. `detail`: errno for connect/closed
  // (0: the peer ended the stream), the reply's first two bytes for socks.
  void fail(std::uint32_t slot, err_kind kind, int detail = 0) {
    conn& c = conns_[slot];
    const stage was = c.st;
    close_conn(c);
    if (s_.stop.load(std::memory_order_relaxed)) {
      return;  // connections torn down at the end are not errors
    }
    std::uint64_t none = 0;
    stats_.first_error.compare_exchange_strong(
        none, error_code(kind, was, static_cast<std::uint32_t>(detail)), std::memory_order_relaxed);
    switch (s_.opt.mode) {
      case run_mode::sessions:
        count_error(kind);
        runnable_.push_back({slot, c.gen});  // re-opened after this batch
        break;
      case run_mode::throughput:
        count_error(kind);
        note_once(stream_lost_noted_, "loadgen: a stream failed; throughput is from the rest");
        break;
      case run_mode::latency:
        count_error(kind);
        finished_ = true;
        notify_done(s_);
        break;
      case run_mode::idle:
        idle_failed(slot, was, kind);
        break;
    }
  }

  void count_error(err_kind kind) {
    stats_.errors[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
  }

  static void note_once(bool& flag, const char* msg) {
    if (!flag) {
      std::fprintf(stderr, "%s\n", msg);
      flag = true;
    }
  }

  // ---- events

  void on_event(std::uint32_t slot, std::uint32_t events) {
    conn& c = conns_[slot];
    if (c.st == stage::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        die("getsockopt(SO_ERROR)");
      }
      if (err != 0) {
        fail(slot, err_kind::connect, err);
        return;
      }
      if (!(events & EPOLLOUT)) {
        return;  // not connected yet
      }
      on_connected(slot);
      return;
    }
    drive(slot, events);
  }

  void on_connected(std::uint32_t slot) {
    conn& c = conns_[slot];
    c.deadline_ns = now_ns() + s_.timeout_ns;
    if (s_.opt.direct) {
      established(slot);
      return;
    }
    c.st = stage::greeting;
    send_msg(slot, s_.opt.pipeline ? s_.hs.pipelined : s_.hs.greeting);
  }

  // Sends a handshake or echo message; what the socket does not take now
  // goes out on the next EPOLLOUT. It only writes: the reply arrives as a
  // new EPOLLIN edge, and not reading here keeps callers free of re-entry.
  void send_msg(std::uint32_t slot, const std::vector<std::uint8_t>& msg) {
    conn& c = conns_[slot];
    c.tx = msg.data();
    c.tx_len = static_cast<std::uint16_t>(msg.size());
    c.tx_off = 0;
    flush(slot);
  }

  // Flushes any pending message; false if the connection failed.
  bool flush(std::uint32_t slot) {
    conn& c = conns_[slot];
    while (c.tx_off < c.tx_len) {
      const ssize_t w = send(c.fd, c.tx + c.tx_off, c.tx_len - c.tx_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          return true;
        }
        fail(slot, err_kind::closed, errno);
        return false;
      }
      c.tx_off = static_cast<std::uint16_t>(c.tx_off + w);
    }
    return true;
  }

  void drive(std::uint32_t slot, std::uint32_t events) {
    conn& c = conns_[slot];
    if (!flush(slot)) {
      return;
    }
    switch (c.st) {
      case stage::greeting:
      case stage::auth:
      case stage::request:
        read_handshake(slot);
        break;
      case stage::echo:
        read_echo(slot);
        break;
      case stage::streaming:
        stream(slot, events);
        break;
      case stage::holding:
        check_held(slot, events);
        break;
      case stage::closed:
      case stage::connecting:
        break;
    }
  }

  // ---- SOCKS5 handshake

  // Length of the complete reply for stage `st` at the start of `p`, 0 if
  // more bytes are needed, -1 if the server refused or broke the protocol.
  [[nodiscard]] int reply_length(stage st, const std::uint8_t* p, std::size_t n) const {
    switch (st) {
      case stage::greeting:
        if (n < 2) {
          return 0;
        }
        return p[0] == 0x05 && p[1] == (s_.opt.auth ? 0x02 : 0x00) ? 2 : -1;
      case stage::auth:
        if (n < 2) {
          return 0;
        }
        return p[0] == 0x01 && p[1] == 0x00 ? 2 : -1;
      case stage::request: {
        if (n < 5) {
          return 0;
        }
        if (p[0] != 0x05 || p[1] != 0x00) {
          return -1;
        }
        int len = 0;
        switch (p[3]) {
          case 0x01:
            len = 4 + 4 + 2;
            break;
          case 0x04:
            len = 4 + 16 + 2;
            break;
          case 0x03:
            len = 4 + 1 + p[4] + 2;
            break;
          default:
            return -1;
        }
        return n < static_cast<std::size_t>(len) ? 0 : len;
      }
      default:
        return -1;
    }
  }

  void read_handshake(std::uint32_t slot) {
    conn& c = conns_[slot];
    for (;;) {
      const ssize_t r = recv(c.fd, c.rx.data() + c.rx_len, c.rx.size() - c.rx_len, 0);
      if (r == 0) {
        fail(slot, err_kind::closed);
        return;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          return;
        }
        fail(slot, err_kind::closed, errno);
        return;
      }
      c.rx_len = static_cast<std::uint16_t>(c.rx_len + r);
      // Several replies can be buffered when the handshake is pipelined.
      while (c.st == stage::greeting || c.st == stage::auth || c.st == stage::request) {
        const int len = reply_length(c.st, c.rx.data(), c.rx_len);
        if (len < 0) {
          fail(slot, err_kind::socks, c.rx[0] << 8 | c.rx[1]);
          return;
        }
        if (len == 0) {
          if (c.rx_len == c.rx.size()) {
            fail(slot, err_kind::socks);  // no valid reply is this long
            return;
          }
          break;
        }
        std::memmove(c.rx.data(), c.rx.data() + len, c.rx_len - static_cast<std::size_t>(len));
        c.rx_len = static_cast<std::uint16_t>(c.rx_len - len);
        c.deadline_ns = now_ns() + s_.timeout_ns;
        if (!next_handshake_step(slot)) {
          return;  // established (and handed over) or failed
        }
      }
    }
  }

  // Advances after a good reply; false once the handshake is over.
  bool next_handshake_step(std::uint32_t slot) {
    conn& c = conns_[slot];
    const bool send_next = !s_.opt.pipeline;
    if (c.st == stage::greeting && s_.opt.auth) {
      c.st = stage::auth;
      if (send_next) {
        send_msg(slot, s_.hs.auth);
      }
      return c.fd >= 0;
    }
    if (c.st == stage::greeting || c.st == stage::auth) {
      c.st = stage::request;
      if (send_next) {
        send_msg(slot, s_.hs.request);
      }
      return c.fd >= 0;
    }
    established(slot);
    return false;
  }

  // ---- established tunnels

  void established(std::uint32_t slot) {
    conn& c = conns_[slot];
    if (s_.opt.mode == run_mode::throughput) {
      // In "down" mode the source may already have sent data behind the
      // CONNECT reply; it is payload.
      stats_.bytes.fetch_add(c.rx_len, std::memory_order_relaxed);
      c.rx_len = 0;
      c.st = stage::streaming;
      c.deadline_ns = 0;
      stream(slot, 0);
      return;
    }
    if (c.rx_len != 0) {
      fail(slot, err_kind::socks);  // the echo target never speaks first
      return;
    }
    start_echo(slot);
  }

  void start_echo(std::uint32_t slot) {
    conn& c = conns_[slot];
    c.st = stage::echo;
    c.echo_got = 0;
    c.started_ns = now_ns();
    c.deadline_ns = c.started_ns + s_.timeout_ns;
    send_msg(slot, s_.payload);
  }

  void read_echo(std::uint32_t slot) {
    conn& c = conns_[slot];
    const std::size_t size = s_.payload.size();
    for (;;) {
      const ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
      if (r == 0) {
        fail(slot, err_kind::closed);
        return;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          return;
        }
        fail(slot, err_kind::closed, errno);
        return;
      }
      const auto n = static_cast<std::size_t>(r);
      if (c.echo_got + n > size ||
          std::memcmp(buf_.data(), s_.payload.data() + c.echo_got, n) != 0) {
        fail(slot, err_kind::mismatch);
        return;
      }
      c.echo_got = static_cast<std::uint16_t>(c.echo_got + n);
      if (c.echo_got == size) {
        echo_done(slot);
        return;
      }
    }
  }

  void echo_done(std::uint32_t slot) {
    conn& c = conns_[slot];
    switch (s_.opt.mode) {
      case run_mode::sessions:
        stats_.sessions.fetch_add(1, std::memory_order_relaxed);
        close_conn(c);
        runnable_.push_back({slot, c.gen});
        break;
      case run_mode::latency: {
        const std::uint64_t rtt = now_ns() - c.started_ns;
        if (pings_done_++ >= static_cast<std::uint64_t>(s_.opt.warmup_pings)) {
          samples_.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(rtt, UINT32_MAX)));
        }
        if (samples_.size() == static_cast<std::size_t>(s_.opt.pings)) {
          finished_ = true;
          notify_done(s_);
        } else {
          start_echo(slot);
        }
        break;
      }
      case run_mode::idle:
        idle_established(slot);
        break;
      case run_mode::throughput:
        break;  // streams never echo
    }
  }

  void stream(std::uint32_t slot, std::uint32_t events) {
    conn& c = conns_[slot];
    if (events & (EPOLLHUP | EPOLLERR)) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        die("getsockopt(SO_ERROR)");
      }
      fail(slot, err_kind::closed, err);
      return;
    }
    const bool up = s_.opt.dir == direction::up;
    for (int i = 0; i < io_budget; ++i) {
      const ssize_t n = up ? bulk_.send_chunk(c.fd) : bulk_.recv_chunk(c.fd);
      if (n == 0 && !up) {
        fail(slot, err_kind::closed);
        return;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          return;  // the next edge resumes it
        }
        fail(slot, err_kind::closed, errno);
        return;
      }
      stats_.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    }
    // Budget spent without reaching EAGAIN: no edge will come, so resume it
    // after the other streams of this thread had their turn.
    runnable_.push_back({slot, c.gen});
  }

  // An idle tunnel only ever reports that the far end went away.
  void check_held(std::uint32_t slot, std::uint32_t events) {
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
      return;
    }
    conn& c = conns_[slot];
    const ssize_t r = recv(c.fd, buf_.data(), buf_.size(), 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      return;
    }
    fail(slot, r > 0 ? err_kind::mismatch : err_kind::closed, r < 0 ? errno : 0);
  }

  // ---- idle mode

  void on_kick() {
    std::uint64_t v = 0;
    if (read(wake_.get(), &v, sizeof v) != sizeof v && errno != EAGAIN) {
      die("eventfd read");
    }
    if (s_.opt.mode != run_mode::idle || s_.stop.load()) {
      return;
    }
    // This thread's share of the level.
    const std::uint64_t total = s_.idle_level.load();
    const auto n = static_cast<std::uint64_t>(nthreads_);
    idle_target_ = total / n + (static_cast<std::uint64_t>(index_) < total % n ? 1 : 0);
    level_reported_ = false;
    pump_idle();
  }

  // Keeps `window_` handshakes in flight until this thread's share is open.
  void pump_idle() {
    while (!exhausted_ && in_flight_ < window_ && open_ + in_flight_ < idle_target_ &&
           !free_slots_.empty()) {
      const std::uint32_t slot = free_slots_.back();
      free_slots_.pop_back();
      ++in_flight_;
      open(slot);
    }
    if (!level_reported_ && in_flight_ == 0 && (open_ >= idle_target_ || exhausted_)) {
      level_reported_ = true;
      notify_done(s_);
    }
  }

  void idle_established(std::uint32_t slot) {
    conn& c = conns_[slot];
    c.st = stage::holding;
    c.deadline_ns = 0;
    --in_flight_;
    ++open_;
    consecutive_failures_ = 0;
    stats_.open.store(open_, std::memory_order_relaxed);
    stats_.last_open_ns.store(now_ns(), std::memory_order_relaxed);
    pump_idle();
  }

  void idle_failed(std::uint32_t slot, stage was, err_kind kind) {
    count_error(kind);
    free_slots_.push_back(slot);
    if (was == stage::holding) {
      --open_;
      stats_.open.store(open_, std::memory_order_relaxed);
      stats_.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    --in_flight_;
    // A run of failures with no success means the peer hit a limit (most
    // often its open-files limit): stop instead of hammering it.
    if (++consecutive_failures_ >= std::min<std::uint32_t>(8, window_)) {
      set_exhausted();
    }
    pump_idle();
  }

  void set_exhausted() {
    exhausted_ = true;
    stats_.exhausted.store(true, std::memory_order_relaxed);
  }

  // ---- housekeeping

  void run_runnable() {
    // Entries may add new entries (a re-opened session failing at once), so
    // work on a snapshot.
    pending_.swap(runnable_);
    for (const auto& [slot, gen] : pending_) {
      conn& c = conns_[slot];
      if (c.gen != gen || s_.stop.load(std::memory_order_relaxed)) {
        continue;
      }
      if (c.fd < 0) {
        open(slot);
      } else {
        drive(slot, 0);
      }
    }
    pending_.clear();
  }

  void sweep_timeouts(std::uint64_t now) {
    for (std::uint32_t i = 0; i < conns_.size(); ++i) {
      const conn& c = conns_[i];
      if (c.fd >= 0 && c.deadline_ns != 0 && c.deadline_ns < now) {
        fail(i, err_kind::timeout);
      }
    }
  }

  struct slot_ref {
    std::uint32_t slot;
    std::uint32_t gen;
  };

  shared_state& s_;
  thread_stats& stats_;
  const int index_;
  const int nthreads_;
  unique_fd epfd_;
  unique_fd wake_;
  std::vector<conn> conns_;
  std::vector<std::byte> buf_;  // scratch reads (echo, idle checks)
  bench::bulk_io bulk_;         // throughput streams
  std::vector<slot_ref> runnable_;
  std::vector<slot_ref> pending_;
  bool finished_ = false;
  bool no_fds_noted_ = false;
  bool stream_lost_noted_ = false;
  // latency
  std::uint64_t pings_done_ = 0;
  std::vector<std::uint32_t> samples_;
  // idle
  std::uint32_t window_ = 0;
  std::uint64_t idle_target_ = 0;
  std::uint64_t open_ = 0;
  std::uint32_t in_flight_ = 0;
  std::uint32_t consecutive_failures_ = 0;
  bool exhausted_ = false;
  bool level_reported_ = true;
  std::vector<std::uint32_t> free_slots_;
};

// ------------------------------------------------------------ main thread --

// How the main thread waits: for a stop signal (SIGINT/SIGTERM, through a
// signalfd) or for workers' "done" notes (shared_state::done_fd).
class main_waiter {
 public:
  explicit main_waiter(shared_state& s) : s_(s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    // Blocked before any thread starts, so every thread inherits the mask
    // and only the signalfd sees the signals.
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
      die("pthread_sigmask");
    }
    sig_.reset(signalfd(-1, &set, SFD_CLOEXEC));
    if (sig_.get() < 0) {
      die("signalfd");
    }
  }

  // Waits up to timeout_ms (-1: no limit) for a signal or done notes.
  // Returns false if a stop signal arrived; adds the notes read to `done`.
  bool wait(int timeout_ms, std::uint64_t& done) {
    std::array<pollfd, 2> fds{{{sig_.get(), POLLIN, 0}, {s_.done_fd.get(), POLLIN, 0}}};
    const std::uint64_t deadline = timeout_ms < 0 ? 0 : now_ns() + ms(timeout_ms);
    for (;;) {
      int left = -1;
      if (timeout_ms >= 0) {
        const std::uint64_t now = now_ns();
        left = now >= deadline ? 0 : static_cast<int>((deadline - now + 999'999) / 1'000'000);
      }
      const int n = poll(fds.data(), fds.size(), left);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        die("poll");
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo info{};
        if (read(sig_.get(), &info, sizeof info) != sizeof info) {
          die("signalfd read");
        }
        signo_ = static_cast<int>(info.ssi_signo);
        return false;
      }
      if (fds[1].revents & POLLIN) {
        std::uint64_t v = 0;
        if (read(s_.done_fd.get(), &v, sizeof v) != sizeof v) {
          die("eventfd read");
        }
        done += v;
        return true;
      }
      if (n == 0) {
        return true;  // timed out
      }
    }
  }

  // Ends the process by the signal that interrupted the run: a shell running
  // loadgen stops its script only if the program died of the SIGINT.
  [[noreturn]] void reraise() const {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo_);
    // Pending while blocked (the disposition was never changed from the
    // default), delivered as soon as it is unblocked.
    if (raise(signo_) != 0 || pthread_sigmask(SIG_UNBLOCK, &set, nullptr) != 0) {
      die("re-raise the stop signal");
    }
    std::_Exit(128 + signo_);  // not reached
  }

  // Sleeps for `seconds` of wall time; false if interrupted by a signal.
  bool sleep(double seconds) {
    const std::uint64_t end = now_ns() + static_cast<std::uint64_t>(seconds * 1e9);
    std::uint64_t ignored = 0;
    for (std::uint64_t now = now_ns(); now < end; now = now_ns()) {
      if (!wait(static_cast<int>((end - now + 999'999) / 1'000'000), ignored)) {
        return false;
      }
    }
    return true;
  }

 private:
  static std::uint64_t ms(int v) { return static_cast<std::uint64_t>(v) * 1'000'000; }
  shared_state& s_;
  unique_fd sig_;
  int signo_ = SIGINT;  // the stop signal that arrived
};

class run_context {
 public:
  run_context(shared_state& s, int nthreads, std::size_t units) : s_(s), stats_(nthreads) {
    // Spread `units` (streams, clients, tunnels) over the threads.
    const auto n = static_cast<std::size_t>(nthreads);
    for (int t = 0; t < nthreads; ++t) {
      const std::size_t share = units / n + (static_cast<std::size_t>(t) < units % n ? 1 : 0);
      workers_.push_back(
          std::make_unique<worker>(s, stats_[static_cast<std::size_t>(t)], t, nthreads, share));
    }
  }
  run_context(const run_context&) = delete;
  run_context& operator=(const run_context&) = delete;
  ~run_context() { stop(); }

  void start() {
    for (auto& w : workers_) {
      threads_.emplace_back([&w] { w->run(); });
    }
  }

  void stop() {
    s_.stop.store(true);
    for (auto& w : workers_) {
      w->kick();
    }
    for (auto& t : threads_) {
      t.join();
    }
    threads_.clear();
  }

  void kick_all() {
    for (auto& w : workers_) {
      w->kick();
    }
  }

  [[nodiscard]] std::size_t size() const { return workers_.size(); }
  [[nodiscard]] const worker& at(std::size_t i) const { return *workers_[i]; }

  template <typename F>
  std::uint64_t sum(F field) const {
    std::uint64_t total = 0;
    for (const auto& st : stats_) {
      total += field(st).load(std::memory_order_relaxed);
    }
    return total;
  }

  [[nodiscard]] std::array<std::uint64_t, err_count> errors() const {
    std::array<std::uint64_t, err_count> e{};
    for (const auto& st : stats_) {
      for (std::size_t k = 0; k < err_count; ++k) {
        e[k] += st.errors[k].load(std::memory_order_relaxed);
      }
    }
    return e;
  }

  [[nodiscard]] std::uint64_t last_open_ns() const {
    std::uint64_t latest = 0;
    for (const auto& st : stats_) {
      latest = std::max(latest, st.last_open_ns.load(std::memory_order_relaxed));
    }
    return latest;
  }

  // One thread's first error, as text; empty if none failed.
  [[nodiscard]] std::string first_error() const {
    for (const auto& st : stats_) {
      if (const std::uint64_t code = st.first_error.load(std::memory_order_relaxed); code != 0) {
        return error_text(code);
      }
    }
    return {};
  }

  [[nodiscard]] bool any_exhausted() const {
    return std::any_of(stats_.begin(), stats_.end(),
                       [](const thread_stats& st) { return st.exhausted.load(); });
  }

 private:
  shared_state& s_;
  std::vector<thread_stats> stats_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
};

// Fields every record carries.
json_line record(const shared_state& s, const char* mode, int threads) {
  const auto& o = s.opt;
  json_line j;
  j.str("mode", mode)
      .str("via", o.direct ? "direct" : "socks5")
      .str("target", (o.ttype == target_type::ipv6 ? "[" + o.target_host + "]" : o.target_host) +
                         ":" + std::to_string(o.target_port))
      .str("target_type", o.ttype == target_type::ipv4   ? "ipv4"
                          : o.ttype == target_type::ipv6 ? "ipv6"
                                                         : "domain")
      .boolean("auth", o.auth.has_value())
      .boolean("pipeline", o.pipeline)
      .num("threads", static_cast<std::uint64_t>(threads));
  return j;
}

std::string errors_json(const std::array<std::uint64_t, err_count>& e, std::uint64_t& total) {
  std::string out = "{";
  total = 0;
  for (std::size_t k = 0; k < err_count; ++k) {
    out += (k ? ",\"" : "\"") + std::string(err_names[k]) + "\":" + std::to_string(e[k]);
    total += e[k];
  }
  return out + "}";
}

int clamp_threads(const options& o, std::size_t units) {
  return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(o.threads), units));
}

// Returned by a run cut short by SIGINT/SIGTERM; main then re-raises it.
constexpr int exit_interrupted = 130;

std::optional<double> tree_cpu_seconds(pid_t root);

int run_timed(shared_state& s, main_waiter& waiter) {
  const auto& o = s.opt;
  const bool thr = o.mode == run_mode::throughput;
  const auto units = static_cast<std::size_t>(thr ? o.streams : o.clients);
  const int threads = clamp_threads(o, units);
  run_context ctx(s, threads, units);
  ctx.start();
  auto snapshot = [&] {
    return thr ? ctx.sum([](const thread_stats& t) -> auto& { return t.bytes; })
               : ctx.sum([](const thread_stats& t) -> auto& { return t.sessions; });
  };
  if (!waiter.sleep(o.warmup_s)) {
    return exit_interrupted;
  }
  // The server's CPU time over the measured window (--pid): what a figure
  // costs the server, whichever side of the machine is the bottleneck.
  // Missing if there is no --pid or the process is gone (the record then
  // still carries the run's figures and errors).
  const auto server_cpu = [&]() -> std::optional<double> {
    return o.pid == 0 ? std::nullopt : tree_cpu_seconds(o.pid);
  };
  const auto cpu0 = server_cpu();
  if (o.pid != 0 && !cpu0) {
    die_msg("--pid " + std::to_string(o.pid) + ": no such process");
  }
  const std::uint64_t v0 = snapshot();
  const std::uint64_t t0 = now_ns();
  if (!waiter.sleep(o.duration_s)) {
    return exit_interrupted;
  }
  const std::uint64_t v1 = snapshot();
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  const auto cpu1 = server_cpu();
  ctx.stop();

  std::uint64_t nerr = 0;
  const std::string errs = errors_json(ctx.errors(), nerr);
  const auto delta = static_cast<double>(v1 - v0);
  json_line j = record(s, thr ? "throughput" : "sessions", threads);
  if (thr) {
    const double gbit = delta * 8 / secs / 1e9;
    j.str("dir", o.dir == direction::up ? "up" : "down")
        .num("streams", static_cast<std::uint64_t>(o.streams))
        .str("bulk", bench::to_string(o.bulk))
        .num("seconds", secs)
        .num("bytes", v1 - v0)
        .num("gbit_s", gbit);
    std::fprintf(stderr, "throughput %s, %d stream(s), %s: %.2f Gbit/s over %.1f s, %llu errors\n",
                 o.dir == direction::up ? "up" : "down", o.streams, bench::to_string(o.bulk), gbit, secs,
                 static_cast<unsigned long long>(nerr));
  } else {
    const double rate = delta / secs;
    j.num("clients", static_cast<std::uint64_t>(o.clients))
        .num("seconds", secs)
        .num("sessions", v1 - v0)
        .num("sessions_per_s", rate, 1);
    std::fprintf(stderr, "sessions (%s%s): %.0f /s over %.1f s, %llu errors\n",
                 o.ttype == target_type::domain ? "domain" : "address", o.auth ? ", auth" : "",
                 rate, secs, static_cast<unsigned long long>(nerr));
  }
  if (cpu0 && cpu1) {
    const double cpu = *cpu1 - *cpu0;
    j.num("server_cpu_s", cpu, 2).num("server_cpu_util", cpu / secs, 3);
    std::fprintf(stderr, "  server (pid %d and its children): %.2f CPU-seconds, %.0f %% of one CPU\n",
                 o.pid, cpu, 100 * cpu / secs);
  } else if (o.pid != 0) {
    j.null("server_cpu_s").null("server_cpu_util");
    std::fprintf(stderr, "  server (pid %d) exited during the run: no CPU figure\n", o.pid);
  }
  j.num("errors", nerr).raw("error_kinds", errs).str("first_error", ctx.first_error()).print();
  if (nerr != 0) {
    std::fprintf(stderr, "  first error: %s\n", ctx.first_error().c_str());
  }
  return 0;
}

int run_latency(shared_state& s, main_waiter& waiter) {
  run_context ctx(s, 1, 1);
  ctx.start();
  std::uint64_t done = 0;
  while (done == 0) {
    if (!waiter.wait(-1, done)) {
      return exit_interrupted;
    }
  }
  ctx.stop();
  std::vector<std::uint32_t> v = ctx.at(0).samples();
  std::uint64_t nerr = 0;
  const std::string errs = errors_json(ctx.errors(), nerr);
  if (v.size() != static_cast<std::size_t>(s.opt.pings)) {
    const std::string why = ctx.first_error();
    std::fprintf(stderr, "latency: the tunnel failed after %zu samples: %s\n", v.size(),
                 why.c_str());
    record(s, "latency", 1)
        .num("samples", v.size())
        .num("errors", nerr)
        .raw("error_kinds", errs)
        .str("first_error", why)
        .print();
    return 1;
  }
  std::sort(v.begin(), v.end());
  // Nearest-rank percentile, in µs.
  auto pct = [&v](double p) {
    const auto idx = static_cast<std::size_t>(std::lround(p * static_cast<double>(v.size() - 1)));
    return static_cast<double>(v[idx]) / 1e3;
  };
  double sum = 0;
  for (const auto x : v) {
    sum += x;
  }
  const double mean = sum / static_cast<double>(v.size()) / 1e3;
  record(s, "latency", 1)
      .num("size", s.opt.msg_size)
      .num("samples", v.size())
      .num("warmup", static_cast<std::uint64_t>(s.opt.warmup_pings))
      .num("p50_us", pct(0.50), 1)
      .num("p99_us", pct(0.99), 1)
      .num("max_us", static_cast<double>(v.back()) / 1e3, 1)
      .num("min_us", static_cast<double>(v.front()) / 1e3, 1)
      .num("mean_us", mean, 1)
      .num("errors", nerr)
      .raw("error_kinds", errs)
      .str("first_error", ctx.first_error())
      .print();
  std::fprintf(stderr, "latency %zu B: p50 %.1f us, p99 %.1f us, max %.1f us (%zu samples)\n",
               s.opt.msg_size, pct(0.50), pct(0.99), static_cast<double>(v.back()) / 1e3, v.size());
  return 0;
}

// ------------------------------------------------------- /proc accounting --

struct mem_usage {
  std::uint64_t rss_kib = 0;
  std::uint64_t pss_kib = 0;
  int processes = 0;
};

// Value of the first "Key:   123 kB" line of a /proc file, 0 if absent.
std::uint64_t proc_kib(const std::string& path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key)) {
      return std::strtoull(line.c_str() + key.size(), nullptr, 10);
    }
  }
  return 0;
}

// The fields of /proc/PID/stat after "pid (comm) " (state is [0], ppid
// [1], utime [11] ...): comm may hold spaces and parentheses. Empty if the
// process is gone.
std::vector<std::string_view> stat_fields(const std::string& line) {
  std::vector<std::string_view> out;
  const auto close = line.rfind(')');
  if (close == std::string::npos) {
    return out;
  }
  std::string_view rest(line);
  rest.remove_prefix(close + 1);
  while (!rest.empty()) {
    const auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(start);
    const auto end = std::min(rest.find(' '), rest.size());
    out.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return out;
}

// A numeric /proc/PID/stat field; 0 if it is not one.
std::uint64_t stat_number(std::string_view field) {
  std::uint64_t v = 0;
  std::from_chars(field.data(), field.data() + field.size(), v);
  return v;
}

std::string read_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  return line;
}

// `root` and all its descendants (Dante serves from child processes, so one
// process would undercount it); nullopt if root is gone.
std::optional<std::vector<pid_t>> process_tree(pid_t root) {
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/proc"), closedir);
  if (!dir) {
    die("opendir(/proc)");
  }
  bool root_seen = false;
  while (const dirent* e = readdir(dir.get())) {
    const pid_t pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (pid <= 0) {
      continue;
    }
    const auto f = stat_fields(read_stat(pid));
    if (f.size() < 2) {
      continue;  // exited meanwhile
    }
    children[static_cast<pid_t>(stat_number(f[1]))].push_back(pid);
    root_seen = root_seen || pid == root;
  }
  if (!root_seen) {
    return std::nullopt;
  }
  std::vector<pid_t> tree;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    tree.push_back(p);
    if (const auto it = children.find(p); it != children.end()) {
      todo.insert(todo.end(), it->second.begin(), it->second.end());
    }
  }
  return tree;
}

// Memory of the process tree of `root`. RSS counts pages shared between the
// processes once per process; PSS splits them fairly.
std::optional<mem_usage> tree_memory(pid_t root) {
  const auto tree = process_tree(root);
  if (!tree) {
    return std::nullopt;
  }
  mem_usage m;
  for (const pid_t p : *tree) {
    const std::string base = "/proc/" + std::to_string(p);
    m.rss_kib += proc_kib(base + "/status", "VmRSS:");
    m.pss_kib += proc_kib(base + "/smaps_rollup", "Pss:");
    ++m.processes;
  }
  return m;
}

// CPU time (user + system, every thread, in seconds) used so far by the
// process tree of `root`, including its children that were already reaped:
// a child that exits between two readings moves its time into its parent's
// cutime/cstime, so the difference of two readings stays right. nullopt if
// root is gone. Resolution: one clock tick (10 ms at USER_HZ 100).
std::optional<double> tree_cpu_seconds(pid_t root) {
  const auto tree = process_tree(root);
  if (!tree) {
    return std::nullopt;
  }
  static const auto ticks_per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::uint64_t ticks = 0;
  for (const pid_t p : *tree) {
    const auto f = stat_fields(read_stat(p));
    if (f.size() < 15) {
      continue;  // exited since the walk; its time is in its parent's cutime
    }
    for (std::size_t i = 11; i <= 14; ++i) {  // utime stime cutime cstime
      ticks += stat_number(f[i]);
    }
  }
  return static_cast<double>(ticks) / ticks_per_s;
}

// The "Max open files" soft limit of `pid`, 0 if unknown.
std::uint64_t proc_nofile(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("Max open files")) {
      return std::strtoull(line.c_str() + std::strlen("Max open files"), nullptr, 10);
    }
  }
  return 0;
}

int run_idle(shared_state& s, main_waiter& waiter, rlim_t own_nofile) {
  const auto& o = s.opt;
  const auto top = static_cast<std::size_t>(o.levels.back());
  const int threads = clamp_threads(o, top);
  std::optional<mem_usage> base;
  // Open-files limit of a single-process proxy: it holds two sockets per
  // tunnel, so this bounds the tunnels it can carry. 0 if unknown or if the
  // proxy spreads tunnels over processes (each with its own limit).
  std::uint64_t proxy_nofile = 0;
  if (o.pid != 0) {
    base = tree_memory(o.pid);
    if (!base) {
      die_msg("--pid " + std::to_string(o.pid) + ": no such process");
    }
    if (base->processes == 1) {
      proxy_nofile = proc_nofile(o.pid);
    }
    if (proxy_nofile != 0 && proxy_nofile / 2 < top) {
      std::fprintf(stderr, "loadgen: pid %d may open %llu files: about %llu two-socket tunnels\n",
                   o.pid, static_cast<unsigned long long>(proxy_nofile),
                   static_cast<unsigned long long>(proxy_nofile / 2));
    }
  }
  if (own_nofile < top + 64) {
    std::fprintf(stderr, "loadgen: own open-files limit %llu is below %zu tunnels\n",
                 static_cast<unsigned long long>(own_nofile), top);
  }

  run_context ctx(s, threads, top);
  ctx.start();
  std::uint64_t prev_open = 0;
  double open_seconds = 0;  // summed over levels: time spent opening
  for (const int level : o.levels) {
    s.idle_level.store(static_cast<std::uint64_t>(level));
    const std::uint64_t t0 = now_ns();
    ctx.kick_all();
    for (std::uint64_t done = 0; done < ctx.size();) {
      if (!waiter.wait(-1, done)) {
        return exit_interrupted;
      }
    }
    const std::uint64_t open = ctx.sum([](const thread_stats& t) -> auto& { return t.open; });
    // Time to the last success, so timeouts after a peer's limit do not
    // dilute the rate.
    const std::uint64_t last = std::max(ctx.last_open_ns(), t0);
    const double secs = static_cast<double>(last - t0) / 1e9;
    open_seconds += secs;
    const double level_rate = secs > 0 ? static_cast<double>(open - prev_open) / secs : 0;
    const double rate = open_seconds > 0 ? static_cast<double>(open) / open_seconds : 0;
    prev_open = open;

    std::uint64_t nerr = 0;
    const std::string errs = errors_json(ctx.errors(), nerr);
    json_line j = record(s, "idle", threads);
    j.num("level", static_cast<std::uint64_t>(level))
        .num("open", open)
        .boolean("reached", open >= static_cast<std::uint64_t>(level))
        .num("open_rate_per_s", rate, 1)
        .num("level_open_rate_per_s", level_rate, 1);
    std::string note;
    if (open < static_cast<std::uint64_t>(level)) {
      note = "reached " + std::to_string(open) + " of " + std::to_string(level) + " tunnels";
      // Within a few dozen of the proxy's descriptor budget: that is why.
      if (proxy_nofile != 0 && 2 * open + 64 >= proxy_nofile) {
        note += ": the proxy's open-files limit is " + std::to_string(proxy_nofile);
      } else if (ctx.any_exhausted()) {
        note += ": opening stopped after repeated failures (see error_kinds)";
      }
    }
    std::string mem_text;
    if (base && open > 0) {
      const auto now = tree_memory(o.pid);
      if (!now) {
        die_msg("--pid " + std::to_string(o.pid) + " exited");
      }
      const auto per_tunnel = [open](std::uint64_t after, std::uint64_t before) {
        return (static_cast<double>(after) - static_cast<double>(before)) /
               static_cast<double>(open);
      };
      const double per = per_tunnel(now->rss_kib, base->rss_kib);
      j.num("rss_base_kib", base->rss_kib)
          .num("rss_kib", now->rss_kib)
          .num("kib_per_tunnel", per, 2)
          .num("pss_kib_per_tunnel", per_tunnel(now->pss_kib, base->pss_kib), 2)
          .num("processes", static_cast<std::uint64_t>(now->processes));
      std::array<char, 128> buf{};
      std::snprintf(buf.data(), buf.size(), ", %.2f KiB RSS per tunnel (%d processes)", per,
                    now->processes);
      mem_text = buf.data();
    } else {
      j.null("kib_per_tunnel");  // no process to weigh, or nothing open to divide by
    }
    j.num("dropped", ctx.sum([](const thread_stats& t) -> auto& { return t.dropped; }))
        .num("errors", nerr)
        .raw("error_kinds", errs)
        .str("first_error", ctx.first_error())
        .str("note", note)
        .print();
    std::fprintf(stderr, "idle %d: %llu open at %.0f tunnels/s%s%s%s\n", level,
                 static_cast<unsigned long long>(open), rate, mem_text.c_str(),
                 note.empty() ? "" : "; ", note.c_str());
  }
  if (o.hold_s < 0) {
    std::fprintf(stderr, "loadgen: holding the tunnels until SIGINT/SIGTERM\n");
    for (std::uint64_t ignored = 0; waiter.wait(-1, ignored);) {
    }
  } else if (o.hold_s > 0) {
    std::fprintf(stderr, "loadgen: holding the tunnels for %.1f s\n", o.hold_s);
    waiter.sleep(o.hold_s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto state = std::make_unique<shared_state>();
  shared_state& s = *state;
  s.opt = parse_options(argc, argv);
  rlimit before{};
  if (getrlimit(RLIMIT_NOFILE, &before) != 0) {
    die("getrlimit(RLIMIT_NOFILE)");
  }
  const rlim_t nofile = bench::raise_nofile_limit();
  if (nofile != before.rlim_cur) {
    std::fprintf(
        stderr, "loadgen: open-files soft limit raised from %llu to the hard limit, %llu\n",
        static_cast<unsigned long long>(before.rlim_cur), static_cast<unsigned long long>(nofile));
  } else if (s.opt.mode == run_mode::idle) {
    std::fprintf(stderr, "loadgen: open-files limit %llu (already the hard limit)\n",
                 static_cast<unsigned long long>(nofile));
  }
  s.dest = connect_address(s.opt);
  s.hs = build_handshake(s.opt);
  s.payload.resize(s.opt.msg_size);
  for (std::size_t i = 0; i < s.payload.size(); ++i) {
    s.payload[i] = static_cast<std::uint8_t>('a' + i % 26);
  }
  s.timeout_ns = static_cast<std::uint64_t>(s.opt.timeout_s * 1e9);
  s.done_fd.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (s.done_fd.get() < 0) {
    die("eventfd");
  }
  main_waiter waiter(s);

  int rc = 0;
  switch (s.opt.mode) {
    case run_mode::throughput:
    case run_mode::sessions:
      rc = run_timed(s, waiter);
      break;
    case run_mode::latency:
      rc = run_latency(s, waiter);
      break;
    case run_mode::idle:
      rc = run_idle(s, waiter, nofile);
      break;
  }
  if (rc == exit_interrupted) {
    waiter.reraise();
  }
  return rc;
}
