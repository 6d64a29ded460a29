// cleversocks: command line → settings → server::run. Nothing else.

#include "auth/user_store.hpp"
#include "config/settings.hpp"
#include "core/address.hpp"
#include "core/version.hpp"
#include "obs/log.hpp"
#include "policy/rule_spec.hpp"
#include "server/server.hpp"

#include <CLI/CLI.hpp>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "cleversocks: error: %s\n", message.c_str());
  return 2;
}

// Reads a password: prompted twice without echo on a terminal, else one
// line from standard input.
bool read_password(std::string& out) {
  if (isatty(STDIN_FILENO) == 0) {
    return static_cast<bool>(std::getline(std::cin, out));
  }
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::string again;
  std::fprintf(stderr, "Password: ");
  const bool ok1 = static_cast<bool>(std::getline(std::cin, out));
  std::fprintf(stderr, "\nAgain: ");
  const bool ok2 = static_cast<bool>(std::getline(std::cin, again));
  std::fprintf(stderr, "\n");
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  if (ok1 && ok2 && out != again) {
    std::fprintf(stderr, "cleversocks: passwords differ\n");
    return false;
  }
  return ok1 && ok2;
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

  // Access control and limits (see README "Access control").
  std::vector<std::string> allow_specs;
  std::vector<std::string> deny_specs;
  std::string default_action = "allow";
  std::string geoip;
  std::string users_file;
  bool allow_open = false;
  config::settings s;
  auto* allow_opt = app.add_option("--allow", allow_specs,
                                   "Allow rule: DEST[:PORTS] or 'key=value ...' (repeatable; first match wins, "
                                   "in command-line order with --deny)");
  auto* deny_opt = app.add_option("--deny", deny_specs, "Deny rule, same SPEC as --allow (repeatable)");
  app.add_option("--default-action", default_action, "When no rule matches")
      ->check(CLI::IsMember({"allow", "deny"}))
      ->capture_default_str();
  app.add_option("--geoip", geoip, "MaxMind DB (GeoLite2 Country/City) for country= rules");
  app.add_option("--users-file", users_file, "File of NAME:PASSWORD or NAME:$argon2id$... lines");
  app.add_flag("--allow-open", allow_open, "Do not warn about listening publicly without authentication");
  app.add_option("--max-sessions", s.limits.max_sessions, "Concurrent sessions in all (0: unlimited)");
  app.add_option("--max-sessions-per-ip", s.limits.max_sessions_per_ip, "Concurrent sessions per client IP");
  app.add_option("--max-sessions-per-user", s.limits.max_sessions_per_user, "Concurrent sessions per user");
  app.add_option("--rate-per-ip", s.limits.connection_rate_per_ip, "New connections per second per client IP");
  app.add_option("--burst-per-ip", s.limits.connection_burst_per_ip, "Burst for --rate-per-ip (default 2x rate)");
  app.add_option("--auth-lockout-after", s.limits.auth_failures_before_lockout,
                 "Failed logins (per IP, per user) before an exponential lockout (0: never)")
      ->capture_default_str();

  auto* passwd = app.add_subcommand("passwd", "Print an argon2id hash of a password read from stdin, for --users-file");
  std::string passwd_user;
  passwd->add_option("name", passwd_user, "Print NAME:HASH (a users-file line) instead of the hash alone");

  // One value per occurrence: "--user a:b 127.0.0.1:1080" must not read the
  // listen address as a second user.
  for (CLI::Option* opt : app.get_options()) {
    if (!opt->get_positional() && opt->get_items_expected_max() > 1) {
      opt->allow_extra_args(false);
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (passwd->parsed()) {
    std::string password;
    if (!read_password(password)) {
      return 1;
    }
    const std::string hash = auth::hash_password(password);
    std::printf("%s%s%s\n", passwd_user.c_str(), passwd_user.empty() ? "" : ":", hash.c_str());
    return 0;
  }

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
  // Rules keep their command-line order across --allow and --deny.
  std::size_t next_allow = 0;
  std::size_t next_deny = 0;
  for (const CLI::Option* opt : app.parse_order()) {
    const bool is_allow = opt == allow_opt;
    if (!is_allow && opt != deny_opt) {
      continue;
    }
    const std::string& spec = is_allow ? allow_specs.at(next_allow++) : deny_specs.at(next_deny++);
    policy::rule r;
    if (auto err = policy::parse_rule_spec(spec, is_allow ? policy::action::allow : policy::action::block, r);
        !err.empty()) {
      return fail(std::string(is_allow ? "--allow" : "--deny") + " '" + spec + "': " + err);
    }
    s.acl.rules.push_back(std::move(r));
  }
  s.acl.default_action = default_action == "deny" ? policy::action::block : policy::action::allow;
  s.geoip_database = geoip;
  s.users_file = users_file;
  s.allow_open = allow_open;
  return server::run(s);
}
