#include "server/server.hpp"

#include "admin/http_server.hpp"
#include "core/address.hpp"
#include "core/version.hpp"
#include "obs/log.hpp"
#include "obs/prometheus.hpp"
#include "server/file_watch.hpp"
#include "server/health.hpp"
#include "server/signals.hpp"
#include "server/system.hpp"
#include "server/worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace cs::server {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

// Everything on the control thread: workers, reloads, admin, signals, drain.
class control_plane {
 public:
  control_plane(const config::source& src, config::settings loaded, std::shared_ptr<const config::snapshot> snap)
      : src_(src), raw_(std::move(loaded)), current_(std::move(snap)), watch_(io_, [this] { reload("file change"); }),
        health_(io_, current_->source.dns),
        deadline_(io_), open_warning_(io_) {
    fingerprint_ = files_fingerprint(current_->source);
  }

  int run() {
    const auto& cfg = current_->source;
    try {
      for (unsigned i = 0; i < cfg.workers; ++i) {
        workers_.push_back(std::make_unique<worker>(i, current_, shared_, [this] {
          asio::post(io_, [this] { worker_drained(); });
        }));
      }
      bind_listeners();
      start_admin();
      if (!cfg.run_as.user.empty()) {
        drop_privileges(cfg.run_as.user, cfg.run_as.group);
        obs::log().info("running as user {}", cfg.run_as.user);
      }
    } catch (const std::exception& e) {
      obs::log().error("cannot start: {}", e.what());
      return 1;
    }
    for (const auto& w : current_->warnings) {
      obs::log().warn("{}", w);
    }
    if (public_without_auth() && !cfg.allow_open) {
      warn_open();
    }
    watch_.watch(src_.watched_files(cfg));
    health_.track(current_);
    wait_signal();
    for (auto& w : workers_) {
      w->start();
    }
    ready_ = true;
    obs::notice(fmt::format("ready: {} worker(s), {} user(s), {} rule(s), version {}", workers_.size(),
                            current_->users.size(), current_->acl.rule_count(), CS_VERSION_STRING));
    notify("READY=1\nSTATUS=accepting connections");
    io_.run();
    for (auto& w : workers_) {
      w->join();
    }
    workers_.clear();
    obs::notice("stopped");
    return 0;
  }

 private:
  // ------------------------------------------------------------ start-up

  void bind_listeners() {
    const auto& cfg = current_->source;
    const auto inherited = activated_sockets();
    if (!inherited.empty()) {
      obs::log().info("using {} listening socket(s) from systemd; 'listen' is ignored", inherited.size());
      for (const int fd : inherited) {
        // A configured listener with the same address says whether it
        // expects the PROXY protocol.
        const tcp::endpoint local = local_endpoint_of(fd);
        config::proxy_protocol_mode pp = config::proxy_protocol_mode::off;
        for (const auto& l : cfg.listen) {
          if (l.endpoint == local) {
            pp = l.proxy_protocol;
          }
        }
        tcp::endpoint bound;
        for (auto& w : workers_) {
          bound = w->adopt(fd, pp);
        }
        listeners_.push_back(bound);
        obs::notice("listening on " + core::to_string(bound));
      }
      return;
    }
    // Every worker listens on every address (SO_REUSEPORT); the kernel
    // spreads connections. With port 0 the first bind picks the port for the
    // rest. SO_REUSEPORT would also let a second instance (same user) share
    // a port and silently take half the clients: probe first without it.
    for (const auto& l : cfg.listen) {
      config::listener_settings bound = l;
      try {
        if (l.endpoint.port() != 0) {
          tcp::acceptor probe(io_);
          probe.open(l.endpoint.protocol());
          probe.set_option(tcp::acceptor::reuse_address(true));
          if (l.endpoint.address().is_v6()) {
            probe.set_option(asio::ip::v6_only(true));
          }
          probe.bind(l.endpoint);  // EADDRINUSE if anyone holds the port, REUSEPORT or not
        }
        for (auto& w : workers_) {
          bound.endpoint = w->listen(bound, cfg.listen_backlog);
        }
      } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen on " + core::to_string(l.endpoint) + ": " + e.code().message());
      }
      listeners_.push_back(bound.endpoint);
      obs::notice("listening on " + core::to_string(bound.endpoint));
    }
    const auto& forwards = current_->router.forwards();
    for (std::size_t i = 0; i < cfg.port_forward.size() && i < forwards.size(); ++i) {
      tcp::endpoint bound = cfg.port_forward[i].listen;
      try {
        for (auto& w : workers_) {
          bound = w->listen_forward(bound, i, cfg.listen_backlog);
        }
      } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen on " + core::to_string(cfg.port_forward[i].listen) +
                                 " (port_forward): " + e.code().message());
      }
      obs::notice("port forward on " + core::to_string(bound) + " to " + core::to_string(forwards[i].target) +
                  " via " + forwards[i].r.name);
    }
  }

  void start_admin() {
    const auto& a = current_->source.admin;
    if (!a.enabled) {
      return;
    }
    std::vector<admin::route> routes = {
        {"GET", "/metrics", false,
         [this](const admin::request&) {
           return admin::response{200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
         }},
        {"GET", "/health", false, [](const admin::request&) { return admin::response{200, "text/plain", "ok\n"}; }},
        {"GET", "/ready", false,
         [this](const admin::request&) {
           return ready_ ? admin::response{200, "text/plain", "ready\n"}
                         : admin::response{503, "text/plain", "not ready\n"};
         }},
        {"GET", "/api/v1/status", false,
         [this](const admin::request&) { return admin::response{200, "application/json", status_json()}; }},
        {"GET", "/api/v1/upstreams", false,
         [this](const admin::request&) { return admin::response{200, "application/json", upstreams_json()}; }},
        {"POST", "/api/v1/upstreams/", true, [this](const admin::request& r) { return upstream_action(r.path); }},
        {"POST", "/api/v1/reload", false,
         [this](const admin::request&) {
           const auto r = reload("api");
           json body = {{"result", r.ok ? "ok" : "rejected"}, {"generation", current_->generation},
                        {"errors", r.errors}};
           return admin::response{r.ok ? 200u : 422u, "application/json", body.dump() + "\n"};
         }},
    };
    try {
      admin_ = std::make_unique<admin::http_server>(io_, a.listen, std::move(routes));
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot listen on " + core::to_string(a.listen) + " (admin): " + e.code().message());
    }
    admin_->start();
    obs::notice("admin API at http://" + core::to_string(admin_->local_endpoint()) + "/");
  }

  bool public_without_auth() const {
    if (!current_->users.empty()) {
      return false;
    }
    return std::any_of(listeners_.begin(), listeners_.end(),
                       [](const tcp::endpoint& ep) { return !core::unmap(ep.address()).is_loopback(); });
  }

  // An open proxy on a public address is how proxies end up abused: say so
  // loudly at start and every hour, unless the operator said it is intended.
  void warn_open() {
    obs::log().warn(
        "!!! listening on a non-loopback address WITHOUT authentication: anyone who can reach this port "
        "can use this proxy. Add users (--user NAME:PASSWORD) or set allow_open if this is intended.");
    open_warning_.expires_after(std::chrono::hours(1));
    open_warning_.async_wait([this](core::error_code ec) {
      if (!ec && public_without_auth() && !current_->source.allow_open) {
        warn_open();
      }
    });
  }

  // ------------------------------------------------------------ signals

  void wait_signal() {
    signals_.async_wait([this](core::error_code ec, int signo) {
      if (ec) {
        return;
      }
      if (signo == SIGHUP) {
        reload("SIGHUP");
      } else {
        begin_shutdown(signo);
      }
      wait_signal();
    });
  }

  // ------------------------------------------------------------ reload

  struct reload_result {
    bool ok = false;
    std::vector<std::string> errors;
  };

  // Identity of what a reload would read, so that file events that change
  // nothing (touch, editor temp files) do not count as reloads.
  std::size_t files_fingerprint(const config::settings& s) const {
    std::size_t h = 0;
    for (const auto& f : src_.watched_files(s)) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      h = h * 31 + std::hash<std::string>{}(f + '\0' + text.str());
    }
    return h;
  }

  reload_result reload(std::string_view trigger) {
    reload_result r;
    if (shutting_down_) {
      r.errors.emplace_back("shutting down");
      return r;
    }
    auto& reg = obs::global_registry();
    if (trigger == "file change" && files_fingerprint(current_->source) == fingerprint_) {
      r.ok = true;
      return r;  // nothing we read has changed
    }
    notify("RELOADING=1");
    std::vector<config::diagnostic> diags;
    config::settings s = src_.load(diags);
    for (const auto& d : diags) {
      r.errors.push_back(d.to_string());
    }
    if (r.errors.empty()) {
      try {
        // Settings that cannot change live keep their running values,
        // compared as loaded (before compile() resolves e.g. workers: 0).
        const auto kept = config::keep_restart_only(raw_, s);
        auto snap = config::compile(s, current_->generation + 1);
        for (const auto& k : kept) {
          obs::log().warn("reload: {} needs a restart to take effect; keeping the current value", k);
        }
        current_ = std::move(snap);
        raw_ = std::move(s);
      } catch (const std::exception& e) {
        r.errors.emplace_back(e.what());
      }
    }
    if (!r.errors.empty()) {
      reg.config_reloads_failure.inc();
      obs::log().error("reload ({}) refused, still serving generation {}:", trigger, current_->generation);
      for (const auto& e : r.errors) {
        obs::log().error("  {}", e);
      }
      notify("READY=1\nSTATUS=reload refused; previous configuration kept");
      return r;
    }
    for (auto& w : workers_) {
      w->set_snapshot(current_);
    }
    obs::set_level(current_->source.log.level);
    fingerprint_ = files_fingerprint(current_->source);
    watch_.watch(src_.watched_files(current_->source));
    for (const auto& w : current_->warnings) {
      obs::log().warn("{}", w);
    }
    health_.track(current_);
    reg.config_reloads_success.inc();
    obs::log().info("configuration reloaded ({}): generation {}, {} user(s), {} rule(s)", trigger,
                    current_->generation, current_->users.size(), current_->acl.rule_count());
    notify("READY=1\nSTATUS=accepting connections");
    r.ok = true;
    return r;
  }

  // ------------------------------------------------------------ shutdown

  std::size_t active_sessions() const {
    std::size_t n = 0;
    for (const auto& w : workers_) {
      n += w->active_sessions();
    }
    return n;
  }

  // Readiness goes false first (so balancers stop sending), then the
  // listeners close, then tunnels get the drain deadline.
  void begin_shutdown(int signo) {
    if (shutting_down_) {
      obs::log().warn("signal {} again: ending all sessions now", signo);
      force();
      return;
    }
    shutting_down_ = true;
    ready_ = false;
    notify("STOPPING=1");
    watch_.stop();
    health_.stop();
    open_warning_.cancel();
    const auto drain = current_->source.timeouts.drain;
    obs::log().info("signal {}: no longer accepting; draining {} session(s), deadline {} ms", signo,
                    active_sessions(), drain.count());
    deadline_.expires_after(drain);
    deadline_.async_wait([this](core::error_code ec) {
      if (!ec) {
        obs::log().warn("drain deadline reached: ending {} remaining session(s)", active_sessions());
        force();
      }
    });
    for (auto& w : workers_) {
      w->drain();
    }
  }

  void force() {
    for (auto& w : workers_) {
      w->cancel_sessions();
    }
  }

  void worker_drained() {
    if (++drained_ == workers_.size()) {
      // Health probes were cut short by begin_shutdown(); the loop stops
      // once they have ended (a frame destroyed in its wait would leak).
      health_.when_idle([this] {
        deadline_.cancel();
        signals_.cancel();
        if (admin_) {
          admin_->stop();
        }
        for (auto& w : workers_) {
          w->stop();
        }
        io_.stop();
      });
    }
  }

  // ------------------------------------------------------------ views

  std::string status_json() const {
    json listeners = json::array();
    for (const auto& l : listeners_) {
      listeners.push_back(core::to_string(l));
    }
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    json body = {
        {"version", CS_VERSION_STRING},
        {"uptime_seconds", uptime.count()},
        {"ready", ready_},
        {"config_generation", current_->generation},
        {"config_file", src_.file},
        {"workers", workers_.size()},
        {"listeners", listeners},
        {"sessions_active", active_sessions()},
        {"users", current_->users.size()},
        {"acl_rules", current_->acl.rule_count()},
    };
    return body.dump() + "\n";
  }

  std::string metrics_text() const;

  static json member_json(const routing::member_state& m) {
    const auto now = std::chrono::steady_clock::now();
    json j = {{"id", m.id()},
              {"url", m.name()},
              {"state", routing::to_string(m.state())},
              {"drained", m.drained()},
              {"active_sessions", m.active()},
              {"sessions", m.sessions()},
              {"failures", m.failures()},
              {"latency_ms", m.latency_us() < 0 ? json(nullptr) : json(static_cast<double>(m.latency_us()) / 1000.0)}};
    if (m.state() == routing::breaker_state::open) {
      j["ejected_for_ms"] = std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(m.open_until() - now).count());
    }
    return j;
  }

  std::string upstreams_json() const {
    json members = json::array();
    std::string strategy;
    if (const auto* p = current_->router.get_pool()) {
      for (const auto& m : p->members()) {
        auto j = member_json(*m.state);
        j["weight"] = m.weight;
        members.push_back(std::move(j));
      }
      strategy = current_->source.proxy_pool.strategy;
    }
    json named = json::array();
    for (const auto& [name, url] : current_->source.upstreams) {
      upstream::proxy_url u;
      upstream::parse_proxy_url(url, u);
      named.push_back({{"name", name}, {"url", u.redacted()}});
    }
    json body = {{"pool", {{"enabled", current_->source.proxy_pool.enabled}, {"strategy", strategy}, {"members", members}}},
                 {"upstreams", named}};
    return body.dump() + "\n";
  }

  // POST /api/v1/upstreams/{id}/drain | /enable
  admin::response upstream_action(const std::string& path) const {
    const std::string rest = path.substr(std::string("/api/v1/upstreams/").size());
    const auto slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    const std::string action = slash == std::string::npos ? std::string() : rest.substr(slash + 1);
    if (action != "drain" && action != "enable") {
      return {404, "application/json", R"({"error":"expected /api/v1/upstreams/{id}/drain or /enable"})" "\n"};
    }
    if (const auto* p = current_->router.get_pool()) {
      for (const auto& m : p->members()) {
        if (m.state->id() == id) {
          m.state->set_drained(action == "drain");
          obs::log().info("upstream {} {} through the admin API", m.state->name(),
                          action == "drain" ? "drained (no new sessions)" : "enabled");
          return {200, "application/json", member_json(*m.state).dump() + "\n"};
        }
      }
    }
    return {404, "application/json", R"({"error":"no such upstream"})" "\n"};
  }

  const config::source& src_;
  config::settings raw_;  ///< the current generation's settings as loaded
  std::shared_ptr<const config::snapshot> current_;
  asio::io_context io_{1};
  // Before shared_ (the hash pool's threads) and the workers: every thread
  // started after this inherits the mask that leaves these to the signalfd.
  signal_stream signals_{io_, {SIGINT, SIGTERM, SIGHUP}};
  session::shared_services shared_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<tcp::endpoint> listeners_;
  std::unique_ptr<admin::http_server> admin_;
  file_watch watch_;
  health_checker health_;
  asio::steady_timer deadline_;
  asio::steady_timer open_warning_;
  std::size_t fingerprint_ = 0;
  std::size_t drained_ = 0;
  bool ready_ = false;
  bool shutting_down_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
};

std::string control_plane::metrics_text() const {
  obs::prometheus_text t;
  // Sums a field over the workers: of their metrics (sum) or their pipe pools.
  auto over_workers = [this](auto part, auto field) {
    std::uint64_t v = 0;
    for (const auto& w : workers_) {
      v += field(part(*w));
    }
    return v;
  };
  auto sum = [&](auto field) { return over_workers([](const worker& w) -> auto& { return w.metrics(); }, field); };
  auto pipes = [&](auto field) { return over_workers([](const worker& w) -> auto& { return w.pipes(); }, field); };
  t.family("cleversocks_build_info", "gauge", "Build information.");
  t.sample("cleversocks_build_info", {{"version", CS_VERSION_STRING}}, std::uint64_t{1});
  t.family("cleversocks_start_time_seconds", "gauge", "Start time of the process, Unix time.");
  t.sample("cleversocks_start_time_seconds",
           static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   started_wall_.time_since_epoch())
                                   .count()) /
               1000.0);
  t.family("cleversocks_ready", "gauge", "1 while accepting connections, 0 while starting or draining.");
  t.sample("cleversocks_ready", std::uint64_t{ready_ ? 1u : 0u});
  t.family("cleversocks_config_generation", "gauge", "Generation of the configuration in use.");
  t.sample("cleversocks_config_generation", current_->generation);
  const auto& reg = obs::global_registry();
  t.family("cleversocks_config_reloads_total", "counter", "Configuration reload attempts by result.");
  t.sample("cleversocks_config_reloads_total", {{"result", "success"}}, reg.config_reloads_success.value());
  t.sample("cleversocks_config_reloads_total", {{"result", "failure"}}, reg.config_reloads_failure.value());

  t.family("cleversocks_connections_accepted_total", "counter", "TCP connections accepted on SOCKS listeners.");
  t.sample("cleversocks_connections_accepted_total", sum([](const auto& m) { return m.connections_accepted.value(); }));
  t.family("cleversocks_connections_rejected_total", "counter", "Connections refused by a limit, by reason.");
  for (const auto r : {policy::refusal::global_sessions, policy::refusal::ip_sessions, policy::refusal::user_sessions,
                       policy::refusal::ip_rate, policy::refusal::udp_associations}) {
    const auto i = static_cast<std::size_t>(r);
    t.sample("cleversocks_connections_rejected_total", {{"reason", policy::to_string(r)}},
             sum([i](const auto& m) { return m.rejected[i].value(); }));
  }
  t.family("cleversocks_accept_errors_total", "counter", "accept() failures.");
  t.sample("cleversocks_accept_errors_total", sum([](const auto& m) { return m.accept_errors.value(); }));
  t.family("cleversocks_sessions_active", "gauge", "Sessions in progress.");
  std::int64_t active = 0;
  for (const auto& w : workers_) {
    active += w->metrics().sessions_active.value();
  }
  t.sample("cleversocks_sessions_active", static_cast<double>(active));

  t.family("cleversocks_handshakes_total", "counter", "Handshakes by SOCKS version and result.");
  constexpr std::string_view versions[] = {"unknown", "socks4", "socks5"};
  constexpr std::string_view results[] = {"ok", "error", "timeout"};
  for (std::size_t v = 0; v < 3; ++v) {
    for (std::size_t r = 0; r < 3; ++r) {
      t.sample("cleversocks_handshakes_total", {{"version", versions[v]}, {"result", results[r]}},
               sum([v, r](const auto& m) { return m.handshakes[v][r].value(); }));
    }
  }
  t.family("cleversocks_auth_attempts_total", "counter", "RFC 1929 authentication attempts by result.");
  t.sample("cleversocks_auth_attempts_total", {{"result", "success"}}, sum([](const auto& m) { return m.auth_success.value(); }));
  t.sample("cleversocks_auth_attempts_total", {{"result", "failure"}}, sum([](const auto& m) { return m.auth_failure.value(); }));
  t.sample("cleversocks_auth_attempts_total", {{"result", "throttled"}},
           sum([](const auto& m) { return m.auth_throttled.value(); }));
  t.family("cleversocks_auth_checks_in_flight", "gauge",
           "argon2id password checks queued or running on the hashing pool.");
  t.sample("cleversocks_auth_checks_in_flight", static_cast<double>(shared_.hashing.load()));
  t.family("cleversocks_acl_blocks_total", "counter", "Requests refused by an ACL rule or built-in block.");
  for (const auto& [name, value] : reg.acl_blocks.values()) {
    t.sample("cleversocks_acl_blocks_total", {{"rule", name}}, value);
  }
  t.family("cleversocks_replies_total", "counter", "Replies sent, by SOCKS5 reply code.");
  for (std::size_t i = 0; i <= 8; ++i) {
    t.sample("cleversocks_replies_total", {{"code", core::reply_name(static_cast<core::reply_code>(i))}},
             sum([i](const auto& m) { return m.replies[i].value(); }));
  }
  t.family("cleversocks_relayed_bytes_total", "counter", "Bytes relayed, by direction (up: client to target).");
  t.sample("cleversocks_relayed_bytes_total", {{"direction", "up"}}, sum([](const auto& m) { return m.bytes_up.value(); }));
  t.sample("cleversocks_relayed_bytes_total", {{"direction", "down"}}, sum([](const auto& m) { return m.bytes_down.value(); }));
  t.family("cleversocks_relay_pipes_created_total", "counter", "Pipes created for splice relaying (idle ones are reused).");
  t.sample("cleversocks_relay_pipes_created_total", pipes([](const auto& p) { return p.created(); }));
  t.family("cleversocks_relay_pipes_limited_total", "counter",
           "Pipes the kernel created at its minimum size (2 pages): this user's pipe buffers exceed "
           "fs.pipe-user-pages-soft, so splice relaying is slower.");
  t.sample("cleversocks_relay_pipes_limited_total", pipes([](const auto& p) { return p.limited(); }));
  t.family("cleversocks_relay_pipes_grown_total", "counter",
           "Busy pipes grown to relay.pipe_size: a splice filled one, by bytes or by its page slots (bulk).");
  t.sample("cleversocks_relay_pipes_grown_total", pipes([](const auto& p) { return p.grown(); }));
  t.family("cleversocks_relay_pipe_grow_refused_total", "counter",
           "Times the kernel refused to grow a busy pipe to relay.pipe_size (fs.pipe-max-size, "
           "fs.pipe-user-pages-soft).");
  t.sample("cleversocks_relay_pipe_grow_refused_total", pipes([](const auto& p) { return p.grow_refused(); }));

  auto hist = [&](std::string_view name, std::string_view help, auto pick) {
    t.family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= obs::histogram::bounds.size(); ++i) {
      cumulative += sum([&](const auto& m) { return pick(m).bucket(i); });
      const std::string le = i < obs::histogram::bounds.size() ? fmt::format("{}", obs::histogram::bounds[i]) : "+Inf";
      t.sample(bucket, {{"le", le}}, cumulative);
    }
    t.sample(std::string(name) + "_sum", static_cast<double>(sum([&](const auto& m) { return pick(m).sum_us(); })) / 1e6);
    t.sample(std::string(name) + "_count", cumulative);
  };
  hist("cleversocks_session_duration_seconds", "Session duration, accept to close.",
       [](const obs::worker_metrics& m) -> const obs::histogram& { return m.session_duration; });
  hist("cleversocks_connect_duration_seconds", "Time to resolve and connect to the target (successful dials).",
       [](const obs::worker_metrics& m) -> const obs::histogram& { return m.connect_duration; });

  auto dns = [this](auto field) {
    std::uint64_t v = 0;
    for (const auto& w : workers_) {
      v += field(w->dns_stats());
    }
    return v;
  };
  t.family("cleversocks_dns_lookups_total", "counter", "Names sent to DNS.");
  t.sample("cleversocks_dns_lookups_total", dns([](const auto& s) { return s.lookups.value(); }));
  t.family("cleversocks_dns_cache_hits_total", "counter", "Answers from the resolver cache.");
  t.sample("cleversocks_dns_cache_hits_total", dns([](const auto& s) { return s.cache_hits.value(); }));
  t.family("cleversocks_dns_failures_total", "counter", "DNS lookups that failed (including names that do not exist).");
  t.sample("cleversocks_dns_failures_total", dns([](const auto& s) { return s.failures.value(); }));

  auto& users = const_cast<obs::registry&>(reg);
  std::lock_guard lock(users.users_mu);
  t.family("cleversocks_user_sessions_total", "counter", "Sessions by authenticated user.");
  for (const auto& [name, c] : users.users) {
    t.sample("cleversocks_user_sessions_total", {{"user", name}}, c->sessions.value());
  }
  t.family("cleversocks_user_bytes_total", "counter", "Bytes relayed by authenticated user and direction.");
  for (const auto& [name, c] : users.users) {
    t.sample("cleversocks_user_bytes_total", {{"user", name}, {"direction", "up"}}, c->bytes_up.value());
    t.sample("cleversocks_user_bytes_total", {{"user", name}, {"direction", "down"}}, c->bytes_down.value());
  }
  t.family("cleversocks_udp_associations_total", "counter", "UDP ASSOCIATE associations set up.");
  t.sample("cleversocks_udp_associations_total", sum([](const auto& m) { return m.udp_associations.value(); }));
  t.family("cleversocks_udp_datagrams_total", "counter", "Datagrams relayed, by direction (up: client to target).");
  t.sample("cleversocks_udp_datagrams_total", {{"direction", "up"}}, sum([](const auto& m) { return m.udp_datagrams_up.value(); }));
  t.sample("cleversocks_udp_datagrams_total", {{"direction", "down"}},
           sum([](const auto& m) { return m.udp_datagrams_down.value(); }));
  t.family("cleversocks_udp_dropped_total", "counter", "Datagrams dropped, by reason.");
  t.sample("cleversocks_udp_dropped_total", {{"reason", "source"}}, sum([](const auto& m) { return m.udp_dropped_source.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "fragment"}},
           sum([](const auto& m) { return m.udp_dropped_fragment.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "malformed"}},
           sum([](const auto& m) { return m.udp_dropped_malformed.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "acl"}}, sum([](const auto& m) { return m.udp_dropped_acl.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "unsolicited"}},
           sum([](const auto& m) { return m.udp_dropped_unsolicited.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "rate"}}, sum([](const auto& m) { return m.udp_dropped_rate.value(); }));
  t.sample("cleversocks_udp_dropped_total", {{"reason", "other"}}, sum([](const auto& m) { return m.udp_dropped_other.value(); }));
  t.family("cleversocks_binds_total", "counter", "BIND incoming connections, by result.");
  t.sample("cleversocks_binds_total", {{"result", "accepted"}}, sum([](const auto& m) { return m.binds_accepted.value(); }));
  t.sample("cleversocks_binds_total", {{"result", "rejected_peer"}},
           sum([](const auto& m) { return m.binds_rejected_peer.value(); }));

  if (const auto* p = current_->router.get_pool()) {
    const auto& members = p->members();
    t.family("cleversocks_upstream_sessions_total", "counter", "Sessions through a pool member.");
    for (const auto& m : members) {
      t.sample("cleversocks_upstream_sessions_total", {{"upstream", m.state->name()}}, m.state->sessions());
    }
    t.family("cleversocks_upstream_failures_total", "counter", "Failed dials and probes of a pool member.");
    for (const auto& m : members) {
      t.sample("cleversocks_upstream_failures_total", {{"upstream", m.state->name()}}, m.state->failures());
    }
    t.family("cleversocks_upstream_active_sessions", "gauge", "Sessions in progress through a pool member.");
    for (const auto& m : members) {
      t.sample("cleversocks_upstream_active_sessions", {{"upstream", m.state->name()}},
               static_cast<double>(m.state->active()));
    }
    t.family("cleversocks_upstream_state", "gauge",
             "Circuit breaker of a pool member: 0 closed (in rotation), 1 half-open, 2 open (ejected); "
             "-1 drained by the operator.");
    for (const auto& m : members) {
      t.sample("cleversocks_upstream_state", {{"upstream", m.state->name()}},
               m.state->drained() ? -1.0 : static_cast<double>(m.state->state()));
    }
    t.family("cleversocks_upstream_connect_duration_seconds", "histogram",
             "Time to open a tunnel through a pool member (dials and probes that succeeded).");
    for (const auto& m : members) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= obs::histogram::bounds.size(); ++i) {
        cumulative += m.state->latency().bucket(i);
        const std::string le =
            i < obs::histogram::bounds.size() ? fmt::format("{}", obs::histogram::bounds[i]) : "+Inf";
        t.sample("cleversocks_upstream_connect_duration_seconds_bucket", {{"upstream", m.state->name()}, {"le", le}},
                 cumulative);
      }
      t.sample("cleversocks_upstream_connect_duration_seconds_sum", {{"upstream", m.state->name()}},
               static_cast<double>(m.state->latency().sum_us()) / 1e6);
      t.sample("cleversocks_upstream_connect_duration_seconds_count", {{"upstream", m.state->name()}}, cumulative);
    }
  }
  t.family("cleversocks_session_exceptions_total", "counter", "Sessions ended by an unexpected exception (a bug).");
  t.sample("cleversocks_session_exceptions_total", sum([](const auto& m) { return m.session_exceptions.value(); }));
  return t.str();
}

}  // namespace

int run(const config::source& source) {
  std::vector<config::diagnostic> errors;
  const config::settings s = source.load(errors);
  obs::init_logging(s.log);
  if (!errors.empty()) {
    for (const auto& e : errors) {
      obs::log().error("{}", e.to_string());
    }
    return 2;
  }
  std::shared_ptr<const config::snapshot> snap;
  try {
    snap = config::compile(s, 1);
  } catch (const std::exception& e) {
    obs::log().error("invalid configuration: {}", e.what());
    return 2;
  }
  // Writing to a socket the peer has closed must be an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  control_plane cp(source, s, std::move(snap));
  return cp.run();
}

}  // namespace cs::server
