#include "server/server.hpp"

#include "core/address.hpp"
#include "core/version.hpp"
#include "obs/log.hpp"
#include "server/worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <csignal>
#include <memory>
#include <stdexcept>
#include <vector>

namespace cs::server {

namespace asio = boost::asio;

namespace {

bool is_loopback(const core::ip::address& a) {
  const auto p = core::unmap(a);
  return p.is_loopback();
}

// Shutdown: drain (stop accepting, let tunnels finish), then at the
// deadline cancel what is left, then stop the loops.
class shutdown_sequence {
 public:
  shutdown_sequence(asio::io_context& control, std::vector<std::unique_ptr<worker>>& workers,
                    std::chrono::milliseconds drain_deadline)
      : control_(control), workers_(workers), deadline_(control), drain_deadline_(drain_deadline) {}

  void begin(int signo) {
    if (phase_ != phase::running) {
      obs::log().warn("signal {} again: ending all sessions now", signo);
      force();
      return;
    }
    phase_ = phase::draining;
    std::size_t active = 0;
    for (auto& w : workers_) {
      active += w->active_sessions();
    }
    obs::log().info("signal {}: no longer accepting; draining {} session(s), deadline {} ms", signo, active,
                    drain_deadline_.count());
    deadline_.expires_after(drain_deadline_);
    deadline_.async_wait([this](core::error_code ec) {
      if (!ec) {
        std::size_t left = 0;
        for (auto& w : workers_) {
          left += w->active_sessions();
        }
        obs::log().warn("drain deadline reached: ending {} remaining session(s)", left);
        force();
      }
    });
    for (auto& w : workers_) {
      w->drain();
    }
  }

  // Called on the control thread each time a worker reports it is empty.
  void worker_drained() {
    if (++drained_ == workers_.size()) {
      deadline_.cancel();
      for (auto& w : workers_) {
        w->stop();
      }
      control_.stop();
    }
  }

 private:
  void force() {
    phase_ = phase::forcing;
    for (auto& w : workers_) {
      w->cancel_sessions();
    }
  }

  enum class phase { running, draining, forcing };
  asio::io_context& control_;
  std::vector<std::unique_ptr<worker>>& workers_;
  asio::steady_timer deadline_;
  std::chrono::milliseconds drain_deadline_;
  std::size_t drained_ = 0;
  phase phase_ = phase::running;
};

}  // namespace

int run(const config::settings& settings) {
  std::shared_ptr<const config::snapshot> snap;
  try {
    snap = config::compile(settings, 1);
  } catch (const std::exception& e) {
    obs::log().error("invalid configuration: {}", e.what());
    return 2;
  }
  const auto& cfg = snap->source;

  // Writing to a socket the peer has closed must be an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);

  for (const auto& w : snap->warnings) {
    obs::log().warn("{}", w);
  }

  session::shared_services shared;
  asio::io_context control{1};
  std::vector<std::unique_ptr<worker>> workers;
  std::unique_ptr<shutdown_sequence> shutdown;
  try {
    for (unsigned i = 0; i < cfg.workers; ++i) {
      workers.push_back(std::make_unique<worker>(i, snap, shared, [&control, &shutdown] {
        asio::post(control, [&shutdown] { shutdown->worker_drained(); });
      }));
    }
  } catch (const std::exception& e) {
    obs::log().error("cannot start workers: {}", e.what());
    return 1;
  }
  shutdown = std::make_unique<shutdown_sequence>(control, workers, cfg.timeouts.drain);

  // Every worker listens on every address (SO_REUSEPORT); the kernel spreads
  // connections. With port 0 the first bind picks the port for the rest.
  // SO_REUSEPORT would also let a second instance (same user) share a port
  // and silently take half the clients: probe first without it.
  bool public_without_auth = false;
  for (const auto& requested : cfg.listen) {
    tcp::endpoint bound = requested;
    try {
      if (requested.port() != 0) {
        tcp::acceptor probe(control);
        probe.open(requested.protocol());
        probe.set_option(tcp::acceptor::reuse_address(true));
        if (requested.address().is_v6()) {
          probe.set_option(asio::ip::v6_only(true));
        }
        probe.bind(requested);  // EADDRINUSE if anyone holds the port, REUSEPORT or not
      }
      for (auto& w : workers) {
        bound = w->listen(bound, cfg.listen_backlog);
      }
    } catch (const boost::system::system_error& e) {
      obs::log().error("cannot listen on {}: {}", core::to_string(requested), e.code().message());
      return 1;
    }
    obs::notice("listening on " + core::to_string(bound));
    if (!is_loopback(bound.address()) && snap->users.empty()) {
      public_without_auth = true;
    }
  }
  // An open proxy on a public address is how proxies end up abused: say so
  // loudly at start and every hour, unless the operator said it is intended.
  asio::steady_timer open_warning(control);
  std::function<void()> warn_open = [&] {
    obs::log().warn(
        "!!! listening on a non-loopback address WITHOUT authentication: anyone who can reach this port "
        "can use this proxy. Add --user NAME:PASSWORD (or --allow-open if this is intended).");
    open_warning.expires_after(std::chrono::hours(1));
    open_warning.async_wait([&](core::error_code ec) {
      if (!ec) {
        warn_open();
      }
    });
  };
  if (public_without_auth && !cfg.allow_open) {
    warn_open();
  }

  asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
  std::function<void(core::error_code, int)> on_signal = [&](core::error_code ec, int signo) {
    if (ec) {
      return;
    }
    if (signo == SIGHUP) {
      obs::log().info("SIGHUP: nothing to reload (no configuration file)");
    } else {
      shutdown->begin(signo);
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  for (auto& w : workers) {
    w->start();
  }
  obs::notice(fmt::format("ready: {} worker(s), {} user(s), {} rule(s), version {}", workers.size(),
                          snap->users.size(), snap->acl.rule_count(), CS_VERSION_STRING));

  control.run();
  for (auto& w : workers) {
    w->join();
  }
  workers.clear();
  obs::notice("stopped");
  return 0;
}

}  // namespace cs::server
