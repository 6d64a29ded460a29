// cleversocks: command line → configuration source → server::run.

#include "auth/user_store.hpp"
#include "config/loader.hpp"
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
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace cs;

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

// What the command line says, applied on top of file and environment at
// start and again at every reload.
struct command_line {
  std::vector<std::string> listen;
  int verbose = 0;
  bool quiet = false;
  std::vector<std::string> users;
  std::vector<std::pair<bool, std::string>> rules;  // (allow?, SPEC) in command-line order
  struct value {
    std::string key;     ///< configuration key
    std::string text;    ///< as typed
    std::string option;  ///< the option that set it, for error messages
  };
  std::vector<value> values;  // options given

  void apply(config::settings& s, std::vector<config::diagnostic>& errors) const {
    auto err = [&](const std::string& option, const std::string& message) {
      errors.push_back({"command line", 0, 0, option, message});
    };
    if (!listen.empty()) {
      s.listen.clear();
      for (const auto& text : listen) {
        core::ip::tcp::endpoint ep;
        if (!core::parse_endpoint(text, ep)) {
          err(text, "invalid listen address (expected IPv4:PORT or [IPv6]:PORT)");
          continue;
        }
        s.listen.push_back({ep, config::proxy_protocol_mode::off});
      }
    }
    for (const auto& v : values) {
      if (auto e = config::set_value(s, v.key, v.text); !e.empty()) {
        err(v.option, e + " (got '" + v.text + "')");
      }
    }
    if (quiet) {
      s.log.level = spdlog::level::warn;
    } else if (verbose > 0) {
      s.log.level = obs::level_from_verbosity(verbose, false);
    }
    for (const auto& text : users) {
      auth::credential c;
      if (!auth::parse_credential(text, c) || c.name.empty()) {
        err("--user", "invalid '" + text.substr(0, text.find(':')) + "' (expected NAME:PASSWORD)");
        continue;
      }
      s.users.push_back(std::move(c));
    }
    // Command-line rules come first: they take precedence over the file's.
    std::vector<policy::rule> cli_rules;
    for (const auto& [allow, spec] : rules) {
      policy::rule r;
      if (auto e = policy::parse_rule_spec(spec, allow ? policy::action::allow : policy::action::block, r);
          !e.empty()) {
        err(allow ? "--allow" : "--deny", "'" + spec + "': " + e);
        continue;
      }
      cli_rules.push_back(std::move(r));
    }
    s.acl.rules.insert(s.acl.rules.begin(), cli_rules.begin(), cli_rules.end());
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CleverSocks — a secure, clever and fast SOCKS5/SOCKS4 proxy server", "cleversocks"};
  app.set_version_flag("--version", std::string("cleversocks ") + CS_VERSION_STRING);
  app.footer(
      "Every configuration key can also be set in a YAML file (-c, see config.example.yaml) or from the\n"
      "environment (CLEVERSOCKS_<KEY>); the command line wins over both.\n\n"
      "Examples:\n"
      "  cleversocks                          listen on 127.0.0.1:1080, no authentication\n"
      "  cleversocks 0.0.0.0:1080 --user alice:secret\n"
      "  cleversocks -v [::1]:1080 127.0.0.1:1080\n"
      "  cleversocks -c /etc/cleversocks/config.yaml --check-config");

  command_line cl;
  std::string config_file;
  bool check_config = false;
  bool print_config = false;
  std::vector<std::string> allow_specs;
  std::vector<std::string> deny_specs;

  // Options that set one configuration key (key, option names, help).
  struct keyed {
    const char* key;
    const char* names;
    const char* help;
    std::string value;
    CLI::Option* opt = nullptr;
  };
  std::vector<keyed> keyed_options = {
      {"workers", "-w,--workers", "Event-loop threads (default: one per available core)", {}},
      {"busy_poll", "--busy-poll",
       "After its last event a worker polls this long (e.g. 50us) before it sleeps: shorter round trips "
       "for CPU time; 0 off (default)", {}},
      {"timeouts.handshake", "--handshake-timeout", "Deadline from accept to a complete request (10s)", {}},
      {"timeouts.connect", "--connect-timeout", "Deadline to resolve and connect to the target (10s)", {}},
      {"timeouts.idle", "--idle-timeout", "Close a tunnel after this long without traffic; 0 never (1h)", {}},
      {"timeouts.drain", "--drain-timeout", "On SIGTERM/SIGINT, time open tunnels get to finish (30s)", {}},
      {"dns.servers", "--dns-server", "DNS servers IP[:PORT], comma-separated (default: /etc/resolv.conf)", {}},
      {"log.format", "--log-format", "Log format: text or json", {}},
      {"relay.mode", "--relay", "Relay engine: adaptive (copy small reads, splice bulk; default), splice or copy", {}},
      {"acl.default", "--default-action", "When no ACL rule matches: allow or deny", {}},
      {"geoip.database", "--geoip", "MaxMind DB (GeoLite2 Country/City) for country rules", {}},
      {"users_file", "--users-file", "File of NAME:PASSWORD or NAME:$argon2id$... lines", {}},
      {"limits.max_sessions", "--max-sessions", "Concurrent sessions in all (0: unlimited)", {}},
      {"limits.max_sessions_per_ip", "--max-sessions-per-ip", "Concurrent sessions per client IP", {}},
      {"limits.max_sessions_per_user", "--max-sessions-per-user", "Concurrent sessions per user", {}},
      {"limits.rate_per_ip", "--rate-per-ip", "New connections per second per client IP", {}},
      {"limits.burst_per_ip", "--burst-per-ip", "Burst for --rate-per-ip (default 2x rate)", {}},
      {"auth.lockout_after", "--auth-lockout-after", "Failed logins (per IP, per user) before a lockout; 0 never (5)", {}},
      {"admin.listen", "--admin-listen", "Admin HTTP address for /metrics, /health, /ready, /api (127.0.0.1:9090)", {}},
  };

  app.add_option("listen", cl.listen, "Addresses to listen on: IPv4:PORT or [IPv6]:PORT (default 127.0.0.1:1080)");
  app.add_option("-c,--config", config_file,
                 "YAML configuration file (default: $CLEVERSOCKS_CONFIG, else /etc/cleversocks/config.yaml if it exists)");
  app.add_flag("--check-config", check_config, "Validate the configuration and exit (non-zero on errors)");
  app.add_flag("--print-config", print_config, "Print the effective configuration as YAML and exit");
  app.add_flag("-v,--verbose", cl.verbose, "More logging: -v debug, -vv trace");
  app.add_flag("-q,--quiet", cl.quiet, "Log warnings and errors only (no access log)");
  app.add_option("--user", cl.users, "Require authentication; add user NAME:PASSWORD (repeatable)");
  auto* allow_opt = app.add_option("--allow", allow_specs,
                                   "ACL allow rule: DEST[:PORTS] or 'key=value ...' (repeatable; first match wins, "
                                   "in command-line order with --deny, before the file's rules)");
  auto* deny_opt = app.add_option("--deny", deny_specs, "ACL deny rule, same SPEC as --allow (repeatable)");
  for (auto& k : keyed_options) {
    k.opt = app.add_option(k.names, k.value, k.help);
  }
  bool allow_open = false;
  bool no_admin = false;
  auto* allow_open_opt = app.add_flag("--allow-open", allow_open, "Do not warn about listening publicly without users");
  auto* no_admin_opt = app.add_flag("--no-admin", no_admin, "Do not start the admin HTTP listener");

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

  for (const auto& k : keyed_options) {
    if (k.opt->count() > 0) {
      cl.values.push_back({k.key, k.value, k.opt->get_name()});
    }
  }
  if (allow_open_opt->count() > 0) {
    cl.values.push_back({"allow_open", "true", "--allow-open"});
  }
  if (no_admin_opt->count() > 0) {
    cl.values.push_back({"admin.enabled", "false", "--no-admin"});
  }
  // Rules keep their command-line order across --allow and --deny.
  std::size_t next_allow = 0;
  std::size_t next_deny = 0;
  for (const CLI::Option* opt : app.parse_order()) {
    if (opt == allow_opt) {
      cl.rules.emplace_back(true, allow_specs.at(next_allow++));
    } else if (opt == deny_opt) {
      cl.rules.emplace_back(false, deny_specs.at(next_deny++));
    }
  }

  config::source source;
  source.env = config::cleversocks_environment();
  if (!config_file.empty()) {
    source.file = config_file;
  } else if (auto it = source.env.find("CLEVERSOCKS_CONFIG"); it != source.env.end() && !it->second.empty()) {
    source.file = it->second;
  } else if (std::error_code ec; std::filesystem::exists("/etc/cleversocks/config.yaml", ec)) {
    source.file = "/etc/cleversocks/config.yaml";
  }
  source.command_line = [cl](config::settings& s, std::vector<config::diagnostic>& errors) { cl.apply(s, errors); };

  if (check_config || print_config) {
    std::vector<config::diagnostic> errors;
    const auto s = source.load(errors);
    if (errors.empty()) {
      try {
        (void)config::compile(s, 1);
      } catch (const std::exception& e) {
        errors.push_back({source.file, 0, 0, "", e.what()});
      }
    }
    for (const auto& e : errors) {
      std::fprintf(stderr, "%s\n", e.to_string().c_str());
    }
    if (!errors.empty()) {
      std::fprintf(stderr, "cleversocks: %zu error(s) in the configuration\n", errors.size());
      return 2;
    }
    if (print_config) {
      std::printf("%s", config::to_yaml(s).c_str());
    } else {
      std::printf("configuration OK%s%s\n", source.file.empty() ? "" : ": ", source.file.c_str());
    }
    return 0;
  }
  return server::run(source);
}
