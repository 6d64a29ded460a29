// cleversocks: command line → settings → server::run. Nothing else.

#include "auth/user_store.hpp"
#include "config/settings.hpp"
#include "core/address.hpp"
#include "core/version.hpp"
#include "obs/log.hpp"
#include "server/server.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "cleversocks: error: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cs;
  CLI::App app{"CleverSocks — a secure, clever and fast SOCKS5/SOCKS4 proxy server", "cleversocks"};
  app.set_version_flag("--version", std::string("cleversocks ") + CS_VERSION_STRING);
  app.footer(
      "Examples:\n"
      "  cleversocks                          listen on 127.0.0.1:1080, no authentication\n"
      "  cleversocks 0.0.0.0:1080 --user alice:secret\n"
      "  cleversocks -v [::1]:1080 127.0.0.1:1080");

  std::vector<std::string> listen;
  int verbose = 0;
  bool quiet = false;
  std::vector<std::string> users;
  unsigned workers = 0;
  std::string handshake_timeout = "10s";
  std::string connect_timeout = "10s";
  std::string idle_timeout = "1h";
  std::string drain_timeout = "30s";
  std::vector<std::string> dns_servers;
  std::string log_format = "text";
  std::string relay_mode = "splice";

  app.add_option("listen", listen, "Addresses to listen on: IPv4:PORT or [IPv6]:PORT (default 127.0.0.1:1080)");
  app.add_flag("-v,--verbose", verbose, "More logging: -v debug, -vv trace (-vvv: same as -vv)");
  app.add_flag("-q,--quiet", quiet, "Log warnings and errors only (no access log)");
  app.add_option("--user", users, "Require authentication; add user NAME:PASSWORD (repeatable)");
  app.add_option("-w,--workers", workers, "Event-loop threads (default: one per available core)");
  app.add_option("--handshake-timeout", handshake_timeout, "Deadline from accept to a complete request")
      ->capture_default_str();
  app.add_option("--connect-timeout", connect_timeout, "Deadline to resolve and connect to the target")
      ->capture_default_str();
  app.add_option("--idle-timeout", idle_timeout, "Close a tunnel after this long without traffic (0: never)")
      ->capture_default_str();
  app.add_option("--drain-timeout", drain_timeout, "On SIGTERM/SIGINT, time open tunnels get to finish")
      ->capture_default_str();
  app.add_option("--dns-server", dns_servers, "DNS server IP[:PORT] (repeatable; default: /etc/resolv.conf)");
  app.add_option("--log-format", log_format, "Log format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--relay", relay_mode, "Relay engine: splice (zero-copy) or copy")
      ->check(CLI::IsMember({"splice", "copy"}))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  config::settings s;
  s.log.level = obs::level_from_verbosity(verbose, quiet);
  s.log.format = log_format == "json" ? obs::log_format::json : obs::log_format::text;
  obs::init_logging(s.log);

  for (const auto& text : listen) {
    core::ip::tcp::endpoint ep;
    if (!core::parse_endpoint(text, ep)) {
      return fail("invalid listen address '" + text + "' (expected IPv4:PORT or [IPv6]:PORT)");
    }
    s.listen.push_back(ep);
  }
  for (const auto& text : users) {
    auth::credential c;
    if (!auth::parse_credential(text, c) || c.name.empty()) {
      return fail("invalid --user '" + text.substr(0, text.find(':')) + "' (expected NAME:PASSWORD)");
    }
    s.users.push_back(std::move(c));
  }
  s.workers = workers;
  struct {
    const char* name;
    const std::string& text;
    std::chrono::milliseconds& out;
  } durations[] = {
      {"--handshake-timeout", handshake_timeout, s.timeouts.handshake},
      {"--connect-timeout", connect_timeout, s.timeouts.connect},
      {"--idle-timeout", idle_timeout, s.timeouts.idle},
      {"--drain-timeout", drain_timeout, s.timeouts.drain},
  };
  for (auto& d : durations) {
    if (!config::parse_duration(d.text, d.out)) {
      return fail(std::string("invalid ") + d.name + " '" + d.text + "' (e.g. 10, 1.5, 500ms, 2s, 1m)");
    }
  }
  s.relay.idle_timeout = s.timeouts.idle;
  s.relay.mode = relay_mode == "copy" ? relay::relay_mode::copy : relay::relay_mode::splice;
  for (const auto& text : dns_servers) {
    core::ip::udp::endpoint ep;
    core::ip::tcp::endpoint tcp_ep;
    boost::system::error_code ec;
    const auto addr = core::ip::make_address(text, ec);
    if (!ec) {
      ep = {addr, 53};
    } else if (core::parse_endpoint(text, tcp_ep, false)) {
      ep = {tcp_ep.address(), tcp_ep.port()};
    } else {
      return fail("invalid --dns-server '" + text + "' (expected IP or IP:PORT)");
    }
    s.dns.servers.push_back(ep);
  }
  return server::run(s);
}
