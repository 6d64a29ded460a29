#include "upstream/resolver.hpp"

#include <ares.h>
#include <boost/asio/append.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace cs::upstream {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

void init_dns_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
      throw std::runtime_error("c-ares library initialisation failed");
    }
  });
}

struct resolver::impl {
  // One waiter per async_resolve call, shared with its cancellation handler
  // so that a late or repeated cancellation finds an empty handler instead of
  // freed memory.
  struct waiter {
    asio::any_completion_handler<resolve_signature> handler;
  };
  struct query {
    impl* owner = nullptr;
    std::string name;  // lower-cased cache key
    std::vector<std::shared_ptr<waiter>> waiters;
  };
  // The loop's view of one c-ares socket. Handlers hold a shared_ptr so a
  // watch outlives c-ares closing its socket while a wait is pending.
  struct watch {
    explicit watch(const executor_type& ex) : sd(ex) {}
    asio::posix::stream_descriptor sd;
    bool want_read = false;
    bool want_write = false;
    bool read_pending = false;
    bool write_pending = false;
    bool closed = false;
  };
  struct cache_entry {
    core::error_code ec;
    address_list addresses;
    clock::time_point expires;
  };

  impl(executor_type ex, const resolver_options& o, resolver_stats& s)
      : executor(ex), options(o), stats(s), timer(ex) {}

  executor_type executor;
  resolver_options options;
  resolver_stats& stats;
  ares_channel channel = nullptr;
  asio::steady_timer timer;
  std::unordered_map<int, std::shared_ptr<watch>> watches;
  std::unordered_map<std::string, std::unique_ptr<query>> in_flight;
  std::unordered_map<std::string, cache_entry> cache;

  static std::string normalise(std::string_view name) {
    std::string key(name);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!key.empty() && key.back() == '.') {
      key.pop_back();
    }
    return key;
  }

  // ------------------------------------------------------------ c-ares glue

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<impl*>(data)->sock_state(fd, readable != 0, writable != 0);
  }

  void sock_state(int fd, bool readable, bool writable) {
    auto it = watches.find(fd);
    if (!readable && !writable) {
      if (it != watches.end()) {
        it->second->closed = true;
        it->second->sd.release();  // c-ares owns and closes the descriptor
        watches.erase(it);
      }
      return;
    }
    if (it == watches.end()) {
      auto w = std::make_shared<watch>(executor);
      core::error_code ec;
      w->sd.assign(fd, ec);
      if (ec) {
        return;  // c-ares will time the query out
      }
      it = watches.emplace(fd, std::move(w)).first;
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    arm(fd, it->second);
  }

  void arm(int fd, const std::shared_ptr<watch>& w) {
    if (w->want_read && !w->read_pending) {
      w->read_pending = true;
      w->sd.async_wait(asio::posix::descriptor_base::wait_read, [this, fd, w](core::error_code ec) {
        w->read_pending = false;
        if (!ec && !w->closed) {
          process(fd, ARES_SOCKET_BAD);
          if (!w->closed) {
            arm(fd, w);
          }
        }
      });
    }
    if (w->want_write && !w->write_pending) {
      w->write_pending = true;
      w->sd.async_wait(asio::posix::descriptor_base::wait_write, [this, fd, w](core::error_code ec) {
        w->write_pending = false;
        if (!ec && !w->closed) {
          process(ARES_SOCKET_BAD, fd);
          if (!w->closed) {
            arm(fd, w);
          }
        }
      });
    }
  }

  static bool still_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
  }

  // Lets c-ares read/write/time out. The reactor is edge-triggered, so keep
  // reading while the socket still has data (bounded), or a second answer
  // that arrived with the first would never be seen.
  void process(int read_fd, int write_fd) {
    ares_process_fd(channel, read_fd, write_fd);
    for (int i = 0; i < 16 && read_fd != ARES_SOCKET_BAD && watches.count(read_fd) != 0 &&
                    still_readable(read_fd);
         ++i) {
      ares_process_fd(channel, read_fd, ARES_SOCKET_BAD);
    }
    reschedule();
  }

  void reschedule() {
    timeval tv{};
    if (ares_timeout(channel, nullptr, &tv) == nullptr) {
      timer.cancel();
      return;
    }
    timer.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    timer.async_wait([this](core::error_code ec) {
      if (!ec) {
        process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      }
    });
  }

  // ------------------------------------------------------------ lookups

  void start(std::string name, asio::any_completion_handler<resolve_signature> handler) {
    // An address written as a name is answered here, as getaddrinfo would:
    // c-ares reads "0177.0.0.1" as 177.0.0.1, and would ask DNS about
    // names that only look like addresses ("1.2.3.4.5").
    core::ip::address literal;
    if (const auto form = core::read_name(name, literal); form != core::name_form::dns_name) {
      const bool ok = form == core::name_form::address;
      asio::post(executor, asio::append(std::move(handler),
                                        ok ? core::error_code() : core::error_code(core::socks_errc::host_not_found),
                                        ok ? address_list{literal} : address_list{}));
      return;
    }
    std::string key = normalise(name);
    auto it = in_flight.find(key);
    if (it != in_flight.end()) {
      stats.coalesced.inc();
    } else {
      stats.lookups.inc();
      auto q = std::make_unique<query>();
      q->owner = this;
      q->name = key;
      it = in_flight.emplace(key, std::move(q)).first;
      ares_addrinfo_hints hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_flags = ARES_AI_NOSORT;  // we order addresses ourselves (Happy Eyeballs)
      // May call on_addrinfo synchronously (e.g. /etc/hosts): it posts, so fine.
      query* raw = it->second.get();
      add_waiter(*raw, std::move(handler));
      ares_getaddrinfo(channel, key.c_str(), nullptr, &hints, &impl::on_addrinfo, raw);
      reschedule();
      return;
    }
    add_waiter(*it->second, std::move(handler));
  }

  void add_waiter(query& q, asio::any_completion_handler<resolve_signature> handler) {
    auto w = std::make_shared<waiter>(waiter{std::move(handler)});
    auto slot = w->handler.get_cancellation_slot();
    if (slot.is_connected()) {
      slot.assign([w, ex = executor](asio::cancellation_type) {
        if (w->handler) {
          asio::post(ex, asio::append(std::move(w->handler),
                                      core::error_code(asio::error::operation_aborted), address_list{}));
        }
      });
    }
    q.waiters.push_back(std::move(w));
  }

  static void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
    auto* q = static_cast<query*>(arg);
    q->owner->finish(*q, status, res);
    if (res != nullptr) {
      ares_freeaddrinfo(res);
    }
  }

  void finish(query& q, int status, const ares_addrinfo* res) {
    address_list addresses;
    int ttl = static_cast<int>(options.max_ttl.count());
    if (status == ARES_SUCCESS && res != nullptr) {
      for (const ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
        core::ip::address a;
        if (n->ai_family == AF_INET && n->ai_addr != nullptr) {
          const auto* sin = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
          a = core::ip::address_v4(ntohl(sin->sin_addr.s_addr));
        } else if (n->ai_family == AF_INET6 && n->ai_addr != nullptr) {
          const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
          core::ip::address_v6::bytes_type b{};
          std::copy_n(sin6->sin6_addr.s6_addr, 16, b.begin());
          a = core::ip::address_v6(b, sin6->sin6_scope_id);
        } else {
          continue;
        }
        if (std::find(addresses.begin(), addresses.end(), a) == addresses.end()) {
          addresses.push_back(a);
        }
        ttl = std::min(ttl, n->ai_ttl);
      }
    }
    core::error_code ec;
    std::chrono::seconds cache_for = options.negative_ttl;
    bool cacheable = true;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
      ec = asio::error::operation_aborted;
      cacheable = false;
    } else if (status == ARES_SUCCESS && !addresses.empty()) {
      cache_for = std::clamp(std::chrono::seconds(std::max(ttl, 0)), options.min_ttl, options.max_ttl);
    } else if (status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA ||
               status == ARES_ENONAME) {
      ec = core::socks_errc::host_not_found;
      stats.failures.inc();
    } else {
      ec = core::socks_errc::dns_failure;
      cacheable = false;  // transient: do not pin a server hiccup
      stats.failures.inc();
    }
    if (cacheable) {
      store(q.name, ec, addresses, cache_for);
    }
    for (auto& w : q.waiters) {
      if (!w->handler) {
        continue;  // cancelled earlier
      }
      auto slot = w->handler.get_cancellation_slot();
      if (slot.is_connected()) {
        slot.clear();
      }
      asio::post(executor, asio::append(std::move(w->handler), ec, addresses));
    }
    const std::string key = q.name;  // erase() destroys q, and with it q.name
    in_flight.erase(key);
  }

  void store(const std::string& key, core::error_code ec, const address_list& addresses,
             std::chrono::seconds ttl) {
    if (options.cache_capacity == 0) {
      return;
    }
    const auto now = clock::now();
    if (cache.size() >= options.cache_capacity) {
      std::erase_if(cache, [now](const auto& kv) { return kv.second.expires <= now; });
      if (cache.size() >= options.cache_capacity) {
        cache.erase(cache.begin());
      }
    }
    cache[key] = cache_entry{ec, addresses, now + ttl};
  }
};

resolver::resolver(executor_type ex, const resolver_options& options)
    : impl_(std::make_unique<impl>(ex, options, stats_)) {
  init_dns_library();
  ares_options o{};
  o.sock_state_cb = &impl::on_sock_state;
  o.sock_state_cb_data = impl_.get();
  o.timeout = static_cast<int>(options.query_timeout.count());
  o.tries = options.tries;
  const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  if (int rc = ares_init_options(&impl_->channel, &o, mask); rc != ARES_SUCCESS) {
    throw std::runtime_error(std::string("c-ares initialisation failed: ") + ares_strerror(rc));
  }
  if (!options.servers.empty()) {
    std::string csv;
    for (const auto& s : options.servers) {
      if (!csv.empty()) {
        csv += ',';
      }
      csv += core::to_string(s);
    }
    if (int rc = ares_set_servers_ports_csv(impl_->channel, csv.c_str()); rc != ARES_SUCCESS) {
      ares_destroy(impl_->channel);
      throw std::runtime_error("invalid DNS servers '" + csv + "': " + ares_strerror(rc));
    }
  }
}

resolver::~resolver() {
  // Completes every pending lookup with ARES_EDESTRUCTION (posted handlers),
  // and closes c-ares' sockets through on_sock_state.
  ares_destroy(impl_->channel);
  for (auto& [fd, w] : impl_->watches) {
    w->closed = true;
    w->sd.release();
  }
}

std::optional<std::pair<core::error_code, address_list>> resolver::cached(std::string_view name) {
  if (impl_->cache.empty()) {
    return std::nullopt;
  }
  auto it = impl_->cache.find(impl::normalise(name));
  if (it == impl_->cache.end()) {
    return std::nullopt;
  }
  if (it->second.expires <= clock::now()) {
    impl_->cache.erase(it);
    return std::nullopt;
  }
  stats_.cache_hits.inc();
  return std::make_pair(it->second.ec, it->second.addresses);
}

resolver::executor_type resolver::get_executor() const noexcept { return impl_->executor; }

void resolver::start(std::string name, asio::any_completion_handler<resolve_signature> handler) {
  impl_->start(std::move(name), std::move(handler));
}

}  // namespace cs::upstream
