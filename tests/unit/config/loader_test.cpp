// config/loader: YAML file, CLEVERSOCKS_* environment and command line on top
// of the built-in defaults; every key round-trips through to_yaml(); every
// kind of mistake is reported as "file:line:column: key.path: message".

#include "config/loader.hpp"
#include "config/settings.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace cfg = cs::config;
using cfg::diagnostic;
using cfg::settings;

// ---------------------------------------------------------------- helpers

std::vector<std::string> texts(const std::vector<diagnostic>& d) {
  std::vector<std::string> out;
  for (const auto& e : d) {
    out.push_back(e.to_string());
  }
  return out;
}

std::string joined(const std::vector<diagnostic>& d) {
  std::string out;
  for (const auto& t : texts(d)) {
    out += "\n  " + t;
  }
  return out.empty() ? " (none)" : out;
}

// Applies `yaml` (named "t.yaml") to defaults; returns the diagnostics.
std::vector<diagnostic> load_text(std::string_view yaml, settings& s) {
  std::vector<diagnostic> errors;
  cfg::apply_yaml(yaml, "t.yaml", s, errors);
  return errors;
}

std::vector<std::string> errors_of(std::string_view yaml) {
  settings s;
  return texts(load_text(yaml, s));
}

// to_yaml → apply_yaml (fresh defaults) → to_yaml; asserts no errors.
std::string round_trip(const settings& s, std::string* first = nullptr) {
  const std::string y1 = cfg::to_yaml(s);
  if (first != nullptr) {
    *first = y1;
  }
  settings back;
  const auto errs = load_text(y1, back);
  EXPECT_TRUE(errs.empty()) << "to_yaml output does not load:" << joined(errs) << "\n--- yaml:\n" << y1;
  return cfg::to_yaml(back);
}

// The scalar at a dotted path in a YAML document ("" if absent).
YAML::Node at_path(const YAML::Node& root, std::string_view path) {
  YAML::Node cur = YAML::Clone(root);
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string key(path.substr(0, dot));
    if (!cur.IsMap() || !cur[key]) {
      return YAML::Node(YAML::NodeType::Undefined);
    }
    YAML::Node next = cur[key];
    cur.reset(next);
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  }
  return cur;
}

std::string render(const YAML::Node& n) {
  if (!n.IsDefined()) {
    return "<absent>";
  }
  if (n.IsScalar()) {
    return n.Scalar();
  }
  if (n.IsSequence()) {
    std::string out;
    for (std::size_t i = 0; i < n.size(); ++i) {
      out += (i ? "," : "") + render(n[i]);
    }
    return out;
  }
  std::string out = "{";
  for (auto it = n.begin(); it != n.end(); ++it) {
    out += (out.size() > 1 ? ", " : "") + it->first.as<std::string>() + ": " + render(it->second);
  }
  return out + "}";
}

std::string value_in(const std::string& yaml, std::string_view path) {
  return render(at_path(YAML::Load(yaml), path));
}

std::filesystem::path repo_root() {
  // tests/unit/config/loader_test.cpp → repository root
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

// A temporary directory removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cs-loader-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// ------------------------------------------- a non-default value per key

struct key_value {
  std::string value;      ///< what the operator writes
  std::string canonical;  ///< how to_yaml() prints it back ("" = same)
};

// One non-default value for EVERY key scalar_keys() reports. A key added to
// the loader without an entry here fails KeysTable.CoversEveryScalarKey.
const std::map<std::string, key_value>& non_default_values() {
  static const std::map<std::string, key_value> v = {
      {"listen", {"127.0.0.1:1081,[::1]:1082", "127.0.0.1:1081,[::1]:1082"}},
      {"workers", {"3", ""}},
      {"allow_open", {"true", ""}},
      {"run_as.user", {"nobody", ""}},
      {"run_as.group", {"nogroup", ""}},
      {"users_file", {"/etc/cleversocks/users.txt", ""}},
      {"auth.lockout_after", {"7", ""}},
      {"auth.lockout_base", {"2s", ""}},
      {"auth.lockout_max", {"10m", ""}},
      {"auth.failure_window", {"2h", ""}},
      {"acl.default", {"deny", ""}},
      {"acl.builtin_blocks.loopback", {"false", ""}},
      {"acl.builtin_blocks.private", {"false", ""}},
      {"acl.builtin_blocks.link_local", {"false", ""}},
      {"acl.builtin_blocks.cgnat", {"false", ""}},
      {"acl.builtin_blocks.unique_local", {"false", ""}},
      {"acl.builtin_blocks.unspecified", {"false", ""}},
      {"acl.builtin_blocks.multicast", {"false", ""}},
      {"acl.builtin_blocks.reserved", {"false", ""}},
      {"acl.builtin_blocks.metadata", {"false", ""}},
      {"acl.builtin_blocks.smtp", {"false", ""}},
      {"acl.builtin_blocks.local", {"false", ""}},
      {"geoip.database", {"/var/lib/GeoIP/GeoLite2-Country.mmdb", ""}},
      {"limits.max_sessions", {"1000", ""}},
      {"limits.max_sessions_per_ip", {"20", ""}},
      {"limits.max_sessions_per_user", {"5", ""}},
      {"limits.rate_per_ip", {"2.5", ""}},
      {"limits.burst_per_ip", {"12", ""}},
      {"timeouts.handshake", {"5s", ""}},
      {"timeouts.connect", {"1500ms", ""}},
      {"timeouts.idle", {"2h", ""}},
      {"timeouts.drain", {"45s", ""}},
      {"dns.servers", {"192.0.2.53,[2001:db8::53]:5353", "192.0.2.53:53,[2001:db8::53]:5353"}},
      {"dns.timeout", {"750ms", ""}},
      {"dns.tries", {"4", ""}},
      {"dns.cache_size", {"128", ""}},
      {"dns.min_ttl", {"3s", ""}},
      {"dns.max_ttl", {"30m", ""}},
      {"dns.negative_ttl", {"15s", ""}},
      {"connect.attempt_delay", {"100ms", ""}},
      {"connect.prefer", {"only_ipv4", ""}},
      {"relay.mode", {"copy", ""}},
      {"busy_poll", {"0.05ms", "50us"}},
      {"relay.buffer_size", {"128KiB", ""}},
      {"relay.pipe_size", {"1MiB", "1024KiB"}},
      {"relay.notsent_lowat", {"16KiB", ""}},
      {"log.level", {"debug", ""}},
      {"log.format", {"json", ""}},
      {"log.access_log", {"false", ""}},
      {"admin.enabled", {"false", ""}},
      {"admin.listen", {"[::1]:9191", ""}},
      {"proxy_pool.enabled", {"true", ""}},
      {"proxy_pool.source", {"/etc/cleversocks/pool.json", ""}},
      {"proxy_pool.strategy", {"least_latency", ""}},
      {"proxy_pool.hash_key", {"target", ""}},
      {"proxy_pool.max_tries", {"5", ""}},
      {"proxy_pool.eject_after", {"4", ""}},
      {"proxy_pool.eject_base", {"20s", ""}},
      {"proxy_pool.eject_max", {"10m", ""}},
      {"proxy_pool.health_check.interval", {"30s", ""}},
      {"proxy_pool.health_check.timeout", {"1s", ""}},
      {"proxy_pool.health_check.kind", {"socks5", ""}},
      {"proxy_pool.health_check.target", {"example.com:80", ""}},
      {"udp.advertise_address", {"203.0.113.7", ""}},
      {"udp.idle_timeout", {"5m", ""}},
      {"udp.max_per_ip", {"3", ""}},
      {"udp.max_per_user", {"4", ""}},
      {"udp.rate", {"100", ""}},
      {"udp.allow_unsolicited", {"true", ""}},
      {"bind.advertise_address", {"203.0.113.9", ""}},
      {"bind.timeout", {"30s", ""}},
  };
  return v;
}

std::string canonical(const key_value& kv) { return kv.canonical.empty() ? kv.value : kv.canonical; }

// ================================================================= tables

TEST(KeysTable, CoversEveryScalarKey) {
  const auto keys = cfg::scalar_keys();
  std::set<std::string> known(keys.begin(), keys.end());
  EXPECT_EQ(known.size(), keys.size()) << "scalar_keys() lists a key twice";
  for (const auto& k : keys) {
    EXPECT_TRUE(non_default_values().count(k)) << "no test value for key '" << k << "': add one to non_default_values()";
  }
}

TEST(KeysTable, EnvironmentNamesAreDistinct) {
  std::map<std::string, std::string> seen;
  for (const auto& k : cfg::scalar_keys()) {
    const auto name = cfg::env_name(k);
    EXPECT_TRUE(seen.emplace(name, k).second) << k << " and " << seen[name] << " share " << name;
  }
}

// ============================================================= round trips

TEST(RoundTrip, DefaultsAreAFixedPoint) {
  std::string y1;
  const std::string y2 = round_trip(settings{}, &y1);
  EXPECT_EQ(y1, y2);
}

TEST(RoundTrip, EveryScalarKeyDefaultIsPrinted) {
  const std::string y = cfg::to_yaml(settings{});
  for (const auto& k : cfg::scalar_keys()) {
    EXPECT_TRUE(at_path(YAML::Load(y), k).IsDefined()) << "to_yaml() does not print '" << k << "'";
  }
}

// Each key alone: the value is accepted, changes the printed configuration,
// and survives to_yaml → apply_yaml → to_yaml unchanged.
TEST(RoundTrip, EveryScalarKeyWithANonDefaultValue) {
  const std::string defaults = cfg::to_yaml(settings{});
  for (const auto& k : cfg::scalar_keys()) {
    SCOPED_TRACE("key " + k);
    const auto it = non_default_values().find(k);
    ASSERT_NE(it, non_default_values().end());
    settings s;
    ASSERT_EQ(cfg::set_value(s, k, it->second.value), "") << it->second.value;
    std::string y1;
    const std::string y2 = round_trip(s, &y1);
    EXPECT_NE(y1, defaults) << "setting " << k << " to " << it->second.value << " changed nothing";
    EXPECT_EQ(value_in(y1, k), canonical(it->second));
    EXPECT_EQ(y1, y2);
  }
}

// All keys at once.
TEST(RoundTrip, AllScalarKeysTogether) {
  settings s;
  for (const auto& k : cfg::scalar_keys()) {
    ASSERT_EQ(cfg::set_value(s, k, non_default_values().at(k).value), "") << k;
  }
  std::string y1;
  const std::string y2 = round_trip(s, &y1);
  EXPECT_EQ(y1, y2);
  for (const auto& k : cfg::scalar_keys()) {
    EXPECT_EQ(value_in(y2, k), canonical(non_default_values().at(k))) << k;
  }
}

// Every key can be written in the file under its path with the same value.
TEST(RoundTrip, EveryScalarKeyFromTheFile) {
  for (const auto& k : cfg::scalar_keys()) {
    SCOPED_TRACE("key " + k);
    const auto& v = non_default_values().at(k);
    settings expected;
    ASSERT_EQ(cfg::set_value(expected, k, v.value), "");
    // Build "a:\n  b:\n    c: value" for a.b.c (lists as YAML sequences).
    std::vector<std::string> parts;
    std::string_view rest = k;
    while (true) {
      const auto dot = rest.find('.');
      parts.emplace_back(rest.substr(0, dot));
      if (dot == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(dot + 1);
    }
    std::string yaml;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      yaml += std::string(2 * i, ' ') + parts[i] + ":";
      if (i + 1 < parts.size()) {
        yaml += "\n";
      }
    }
    if (k == "listen" || k == "dns.servers") {
      std::string list;
      std::string_view items = v.value;
      while (!items.empty()) {
        const auto comma = items.find(',');
        list += (list.empty() ? "" : ", ") + std::string("\"") + std::string(items.substr(0, comma)) + "\"";
        items = comma == std::string_view::npos ? std::string_view{} : items.substr(comma + 1);
      }
      yaml += " [" + list + "]\n";
    } else {
      yaml += " \"" + v.value + "\"\n";
    }
    settings s;
    const auto errs = load_text(yaml, s);
    EXPECT_TRUE(errs.empty()) << yaml << joined(errs);
    EXPECT_EQ(cfg::to_yaml(s), cfg::to_yaml(expected)) << yaml;
  }
}

// Every key can be set from the environment under env_name(key).
TEST(RoundTrip, EveryScalarKeyFromTheEnvironment) {
  for (const auto& k : cfg::scalar_keys()) {
    SCOPED_TRACE("key " + k);
    const auto& v = non_default_values().at(k);
    settings expected;
    ASSERT_EQ(cfg::set_value(expected, k, v.value), "");
    settings s;
    std::vector<diagnostic> errs;
    cfg::apply_env({{cfg::env_name(k), v.value}}, s, errs);
    EXPECT_TRUE(errs.empty()) << joined(errs);
    EXPECT_EQ(cfg::to_yaml(s), cfg::to_yaml(expected));
  }
}

constexpr std::string_view structured_yaml = R"(listen:
  - 127.0.0.1:1080
  - address: "[::1]:1081"
    proxy_protocol: v2
  - address: 127.0.0.1:1082
    proxy_protocol: v1
  - address: 127.0.0.1:1083
    proxy_protocol: any
users:
  - name: alice
    password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
    groups: [admins, ops]
  - name: bob
    password: builder
users_file: /etc/cleversocks/users.txt
acl:
  default: deny
  rules:
    - name: internal-admins
      action: allow
      src: [192.0.2.0/24, "2001:db8::/32"]
      users: ["@admins", "*"]
      dst: [10.0.0.0/8, "*.corp.example", .example.org, example.net, 10.1.2.3]
      ports: [22, "8000-8999"]
      commands: [connect, bind]
    - action: deny
      dst: ["fd00::/8"]
      commands: [udp]
    - name: nl-only
      action: allow
      countries: [NL, de]
upstreams:
  dc: socks5://user:pass@dc.example:1080
  web: http://proxy.example:3128
forwarding:
  - match: "*.amazonaws.com:*"
    upstream: "aws-exit-node.internal:1080"
    remote: "*.amazonaws.com:*"
  - match: "*.internal:443"
    upstream: [dc, "socks5://hop2.example:1080"]
    src: [10.0.0.0/8]
    users: [alice]
    dst: [10.2.0.0/16]
    countries: [DE]
    bind: 192.0.2.10
    prefer: ipv4
  - match: "legacy.example:80"
    redirect: "127.0.0.1:8080"
proxy_pool:
  enabled: true
  source: /etc/cleversocks/default-exits.json
  members: ["socks5://a.example:1080", "http://b.example:3128"]
  strategy: hash
  hash_key: user
port_forward:
  - listen: 127.0.0.1:8887
    target: example.com:80
    via: socks5://dc.example:1080
  - listen: "[::1]:8888"
    target: 192.0.2.1:22
    via: [dc, "pool:default"]
  - listen: 127.0.0.1:8889
    target: example.org:443
)";

TEST(RoundTrip, StructuredSections) {
  settings s;
  const auto errs = load_text(structured_yaml, s);
  ASSERT_TRUE(errs.empty()) << joined(errs);

  ASSERT_EQ(s.listen.size(), 4u);
  EXPECT_EQ(s.listen[1].proxy_protocol, cfg::proxy_protocol_mode::v2);
  EXPECT_EQ(s.listen[2].proxy_protocol, cfg::proxy_protocol_mode::v1);
  EXPECT_EQ(s.listen[3].proxy_protocol, cfg::proxy_protocol_mode::any);
  ASSERT_EQ(s.users.size(), 2u);
  EXPECT_EQ(s.users[0].groups, (std::vector<std::string>{"admins", "ops"}));
  ASSERT_EQ(s.acl.rules.size(), 3u);
  EXPECT_EQ(s.acl.rules[1].name, "rule 2");  // the default name
  EXPECT_EQ(s.acl.rules[2].countries, (std::vector<std::string>{"NL", "DE"}));
  ASSERT_EQ(s.upstreams.size(), 2u);
  EXPECT_EQ(s.upstreams[1].first, "web");
  ASSERT_EQ(s.forwarding.size(), 3u);
  EXPECT_EQ(s.forwarding[1].upstream, (std::vector<std::string>{"dc", "socks5://hop2.example:1080"}));
  EXPECT_EQ(s.forwarding[2].redirect, "127.0.0.1:8080");
  EXPECT_EQ(s.proxy_pool.members.size(), 2u);
  ASSERT_EQ(s.port_forward.size(), 3u);
  EXPECT_EQ(s.port_forward[1].via, (std::vector<std::string>{"dc", "pool:default"}));

  std::string y1;
  const std::string y2 = round_trip(s, &y1);
  EXPECT_EQ(y1, y2);
  // The printed form carries every structured value.
  const auto doc = YAML::Load(y1);
  EXPECT_EQ(render(doc["listen"]), "127.0.0.1:1080,{address: [::1]:1081, proxy_protocol: v2},"
                                   "{address: 127.0.0.1:1082, proxy_protocol: v1},"
                                   "{address: 127.0.0.1:1083, proxy_protocol: any}");
  EXPECT_EQ(render(doc["acl"]["rules"][0]["ports"]), "22,8000-8999");
  EXPECT_EQ(render(doc["acl"]["rules"][0]["commands"]), "connect,bind");
  EXPECT_EQ(render(doc["acl"]["rules"][0]["dst"]), "10.0.0.0/8,10.1.2.3/32,*.corp.example,.example.org,example.net");
  EXPECT_EQ(render(doc["users"][0]["groups"]), "admins,ops");
  EXPECT_EQ(render(doc["upstreams"]["dc"]), "socks5://user:pass@dc.example:1080");
  EXPECT_EQ(render(doc["forwarding"][1]["bind"]), "192.0.2.10");
  EXPECT_EQ(render(doc["port_forward"][2]["target"]), "example.org:443");
}

// "ports: ['*']" (any port) must print as something the loader reads back.
TEST(RoundTrip, AnyPortRuleReloads) {
  settings s;
  auto errs = load_text("acl:\n  rules:\n    - name: any-port\n      action: deny\n      ports: [\"*\"]\n", s);
  ASSERT_TRUE(errs.empty()) << joined(errs);
  std::string y1;
  const std::string y2 = round_trip(s, &y1);
  EXPECT_EQ(y1, y2);
}

// A fractional rate keeps its value through the printed configuration.
TEST(RoundTrip, RatesKeepEveryDigit) {
  for (const char* v : {"0.25", "1234567", "0.1234567"}) {
    settings s;
    ASSERT_EQ(cfg::set_value(s, "limits.rate_per_ip", v), "");
    const double want = s.limits.connection_rate_per_ip;
    settings back;
    const auto errs = load_text(cfg::to_yaml(s), back);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    EXPECT_EQ(back.limits.connection_rate_per_ip, want)
        << v << " printed as " << value_in(cfg::to_yaml(s), "limits.rate_per_ip") << ", read back as "
        << std::setprecision(17) << back.limits.connection_rate_per_ip;
  }
}

// ====================================================== shipped examples

TEST(ExampleConfig, LoadsWithoutErrorsAndEqualsTheDefaults) {
  const auto path = (repo_root() / "config.example.yaml").string();
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_yaml_file(path, s, errs);
  ASSERT_TRUE(errs.empty()) << joined(errs);
  EXPECT_EQ(cfg::to_yaml(s), cfg::to_yaml(settings{}));
  EXPECT_NO_THROW((void)cfg::compile(s, 1));
}

TEST(ExampleConfig, DocumentsEveryKey) {
  const auto doc = YAML::LoadFile((repo_root() / "config.example.yaml").string());
  for (const auto& k : cfg::scalar_keys()) {
    EXPECT_TRUE(at_path(doc, k).IsDefined()) << "config.example.yaml does not show '" << k << "'";
  }
  for (const char* k : {"users", "acl.rules", "upstreams", "forwarding", "proxy_pool.members", "port_forward"}) {
    EXPECT_TRUE(at_path(doc, k).IsDefined()) << "config.example.yaml does not show '" << k << "'";
  }
}

// config.example.yaml says reloads apply "everything except the keys marked
// (restart)": the marks (on a key, inline or in the comment block right above
// it, or on a parent section) must be exactly the keys the loader treats as
// restart-only.
TEST(ExampleConfig, MarksExactlyTheRestartOnlyKeys) {
  std::ifstream in(repo_root() / "config.example.yaml");
  ASSERT_TRUE(in);
  std::map<std::string, std::string> notes;  // key path → its comments
  std::vector<std::pair<std::size_t, std::string>> stack;  // (indent, key)
  std::string pending;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    if (first == std::string::npos) {
      pending.clear();
      continue;
    }
    if (line[first] == '#') {
      pending += line.substr(first) + "\n";
      continue;
    }
    const auto colon = line.find(':', first);
    const std::string key = colon == std::string::npos ? "" : line.substr(first, colon - first);
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; })) {
      pending.clear();  // a list item or anything else
      continue;
    }
    while (!stack.empty() && stack.back().first >= first) {
      stack.pop_back();
    }
    stack.emplace_back(first, key);
    std::string path;
    for (const auto& [indent, k] : stack) {
      path += (path.empty() ? "" : ".") + k;
    }
    const auto hash = line.find('#', colon);
    notes[path] = pending + (hash == std::string::npos ? "" : line.substr(hash));
    pending.clear();
  }
  auto marked = [&](std::string path) {
    while (true) {
      if (auto it = notes.find(path);
          it != notes.end() && (it->second.find("(restart)") != std::string::npos ||
                                it->second.find("(restart;") != std::string::npos)) {
        return true;
      }
      const auto dot = path.rfind('.');
      if (dot == std::string::npos) {
        return false;
      }
      path.resize(dot);
    }
  };
  for (const auto& k : cfg::scalar_keys()) {
    settings after;
    ASSERT_EQ(cfg::set_value(after, k, non_default_values().at(k).value), "") << k;
    const bool restart_only = !cfg::restart_only_changes(settings{}, after).empty();
    EXPECT_EQ(marked(k), restart_only) << k << (restart_only ? " needs a restart but config.example.yaml does not mark it (restart)"
                                                             : " is applied live but config.example.yaml marks it (restart)");
  }
}

// seeds/000 "Kubernetes Traffic Routing", as written there.
TEST(ExampleConfig, SeedKubernetesRoutingParsesAsWritten) {
  constexpr std::string_view seed = R"(forwarding:
  - match: "*.amazonaws.com:*"
    upstream: "aws-exit-node.internal:1080"
    remote: "*.amazonaws.com:*"
  - match: "*.googleapis.com:*"
    upstream: "gcp-exit-node.internal:1080"
    remote: "*.googleapis.com:*"
proxy_pool:
  enabled: true
  source: /etc/cleversocks/default-exits.json
)";
  settings s;
  const auto errs = load_text(seed, s);
  ASSERT_TRUE(errs.empty()) << joined(errs);
  ASSERT_EQ(s.forwarding.size(), 2u);
  EXPECT_EQ(s.forwarding[0].match, "*.amazonaws.com:*");
  EXPECT_EQ(s.forwarding[0].upstream, std::vector<std::string>{"aws-exit-node.internal:1080"});
  EXPECT_EQ(s.forwarding[0].remote, "*.amazonaws.com:*");
  EXPECT_EQ(s.forwarding[1].match, "*.googleapis.com:*");
  EXPECT_EQ(s.forwarding[1].upstream, std::vector<std::string>{"gcp-exit-node.internal:1080"});
  EXPECT_EQ(s.forwarding[1].remote, "*.googleapis.com:*");
  EXPECT_TRUE(s.proxy_pool.enabled);
  EXPECT_EQ(s.proxy_pool.source, "/etc/cleversocks/default-exits.json");
  std::string y1;
  EXPECT_EQ(round_trip(s, &y1), y1);
  // The pool source is watched for changes.
  cfg::source src;
  const auto watched = src.watched_files(s);
  EXPECT_NE(std::find(watched.begin(), watched.end(), "/etc/cleversocks/default-exits.json"), watched.end());
}

// ============================================================ diagnostics

TEST(Diagnostics, Format) {
  EXPECT_EQ((diagnostic{"f.yaml", 3, 7, "a.b", "bad"}).to_string(), "f.yaml:3:7: a.b: bad");
  EXPECT_EQ((diagnostic{"f.yaml", 0, 0, "", "cannot be read"}).to_string(), "f.yaml: cannot be read");
  EXPECT_EQ((diagnostic{"environment", 0, 0, "CLEVERSOCKS_X", "m"}).to_string(), "environment: CLEVERSOCKS_X: m");
  EXPECT_EQ((diagnostic{"", 0, 0, "", "m"}).to_string(), "m");
}

TEST(Diagnostics, UnknownKeyWithDidYouMean) {
  EXPECT_EQ(errors_of("timeouts:\n  conect: 5s\n"),
            std::vector<std::string>{"t.yaml:2:3: timeouts.conect: unknown key (did you mean 'connect'?)"});
  EXPECT_EQ(errors_of("timeout:\n  connect: 5s\n"),
            std::vector<std::string>{"t.yaml:1:1: timeout: unknown key (did you mean 'timeouts'?)"});
  EXPECT_EQ(errors_of("acl:\n  builtin_blocks:\n    loopbak: false\n"),
            std::vector<std::string>{
                "t.yaml:3:5: acl.builtin_blocks.loopbak: unknown key (did you mean 'loopback'?)"});
  // No near candidate: no hint.
  EXPECT_EQ(errors_of("frobnicate: 1\n"), std::vector<std::string>{"t.yaml:1:1: frobnicate: unknown key"});
  // Inside list items.
  EXPECT_EQ(errors_of("acl:\n  rules:\n    - name: x\n      acton: deny\n"),
            std::vector<std::string>{"t.yaml:4:7: acl.rules[0].acton: unknown key (did you mean 'action'?)"});
  EXPECT_EQ(errors_of("users:\n  - name: a\n    pasword: b\n"),
            std::vector<std::string>{"t.yaml:3:5: users[0].pasword: unknown key (did you mean 'password'?)"});
  EXPECT_EQ(errors_of("listen:\n  - adress: 127.0.0.1:1080\n"),
            std::vector<std::string>{"t.yaml:2:5: listen[0].adress: unknown key (did you mean 'address'?)"});
}

TEST(Diagnostics, BadDuration) {
  EXPECT_EQ(errors_of("timeouts:\n  idle: 5 minutes\n"),
            std::vector<std::string>{
                "t.yaml:2:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '5 minutes')"});
  EXPECT_EQ(errors_of("auth:\n  lockout_base: -1s\n"),
            std::vector<std::string>{
                "t.yaml:2:17: auth.lockout_base: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '-1s')"});
}

TEST(Diagnostics, BusyPollIsBoundedAndTakesMicroseconds) {
  // A bare number is seconds: "200" meant 200us, and would poll for good.
  EXPECT_EQ(errors_of("busy_poll: 200\n"),
            std::vector<std::string>{"t.yaml:1:12: busy_poll: expected a duration from 0 to 10ms (50us, 0.2ms; a "
                                     "bare number is seconds) (got '200')"});
  EXPECT_EQ(errors_of("busy_poll: 10001us\n").size(), 1u);
  EXPECT_EQ(errors_of("busy_poll: -50us\n").size(), 1u);
  EXPECT_EQ(errors_of("busy_poll: 50 us\n").size(), 1u);
  for (const auto& [text, printed] : std::vector<std::pair<std::string, std::string>>{
           {"10ms", "10ms"}, {"0", "0s"}, {"1us", "1us"}, {"0.2ms", "200us"}, {"75\u00b5s", "75us"}, {"0.0015", "1500us"}}) {
    settings s;
    EXPECT_EQ(cfg::set_value(s, "busy_poll", text), "") << text;
    EXPECT_EQ(value_in(cfg::to_yaml(s), "busy_poll"), printed) << text;
  }
}

TEST(Diagnostics, BadEnum) {
  EXPECT_EQ(errors_of("log:\n  level: loud\n"),
            std::vector<std::string>{
                "t.yaml:2:10: log.level: expected one of: error, warn, info, debug, trace (got 'loud')"});
  EXPECT_EQ(errors_of("acl:\n  default: maybe\n"),
            std::vector<std::string>{"t.yaml:2:12: acl.default: expected one of: allow, deny (got 'maybe')"});
  EXPECT_EQ(errors_of("acl:\n  rules:\n    - action: permit\n"),
            std::vector<std::string>{"t.yaml:3:15: acl.rules[0].action: expected allow or deny"});
  EXPECT_EQ(errors_of("listen:\n  - address: 127.0.0.1:1\n    proxy_protocol: v3\n"),
            std::vector<std::string>{"t.yaml:3:21: listen[0].proxy_protocol: expected off, v1, v2 or any"});
}

TEST(Diagnostics, BadCidr) {
  const auto e = errors_of("acl:\n  rules:\n    - action: deny\n      dst: [10.0.0.0/33]\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "t.yaml:4:13: acl.rules[0].dst[0]: invalid prefix length (got '10.0.0.0/33')");
  const auto s = errors_of("acl:\n  rules:\n    - action: deny\n      src:\n        - 192.0.2.0/24\n        - 300.1.2.3\n");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].starts_with("t.yaml:6:11: acl.rules[0].src[1]: ")) << s[0];
  EXPECT_TRUE(s[0].ends_with(" (got '300.1.2.3')")) << s[0];
}

TEST(Diagnostics, WrongNodeType) {
  EXPECT_EQ(errors_of("workers: [1, 2]\n"), std::vector<std::string>{"t.yaml:1:10: workers: expected a single value"});
  EXPECT_EQ(errors_of("timeouts: 5\n"),
            std::vector<std::string>{"t.yaml:1:11: timeouts: expected a mapping of keys"});
  EXPECT_EQ(errors_of("listen: 127.0.0.1:1080\n"), std::vector<std::string>{"t.yaml:1:9: listen: expected a list"});
  EXPECT_EQ(errors_of("acl:\n  rules:\n    deny: all\n"),
            std::vector<std::string>{"t.yaml:3:5: acl.rules: expected a list"});
  EXPECT_EQ(errors_of("users:\n  - alice\n"), std::vector<std::string>{"t.yaml:2:5: users[0]: expected a mapping"});
  EXPECT_EQ(errors_of("- a\n- b\n"), std::vector<std::string>{"t.yaml:1:1: (top level): expected a mapping of keys"});
  EXPECT_EQ(errors_of("workers: many\n"),
            std::vector<std::string>{"t.yaml:1:10: workers: expected a non-negative whole number (got 'many')"});
  EXPECT_EQ(errors_of("allow_open: sure\n"),
            std::vector<std::string>{"t.yaml:1:13: allow_open: expected true or false (got 'sure')"});
}

TEST(Diagnostics, DuplicateKey) {
  EXPECT_EQ(errors_of("log:\n  level: info\n  level: debug\n"),
            std::vector<std::string>{"t.yaml:3:3: log.level: duplicate key"});
  EXPECT_EQ(errors_of("workers: 1\nworkers: 2\n"), std::vector<std::string>{"t.yaml:2:1: workers: duplicate key"});
  EXPECT_EQ(errors_of("upstreams:\n  a: socks5://x:1\n  a: socks5://y:1\n"),
            std::vector<std::string>{"t.yaml:3:3: upstreams.a: duplicate key"});
}

TEST(Diagnostics, YamlSyntaxError) {
  // An unclosed flow sequence: reported where the parser gave up.
  EXPECT_EQ(errors_of("log:\n  level: [info\n"),
            std::vector<std::string>{"t.yaml:3:1: end of sequence flow not found"});
  // A bad indentation inside a mapping.
  const auto e = errors_of("timeouts:\n  idle: 1h\n connect: 2s\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].starts_with("t.yaml:3:")) << e[0];
}

// An unterminated quoted scalar is a syntax error too; it must not swallow
// the following lines into the value (or pass silently at the end).
TEST(Diagnostics, UnterminatedQuoteIsASyntaxError) {
  for (const char* yaml : {"geoip:\n  database: \"/var/lib/x.mmdb\n", "users_file: \"/etc/x\nworkers: 2\n"}) {
    settings s;
    const auto e = texts(load_text(yaml, s));
    ASSERT_EQ(e.size(), 1u) << yaml << "accepted; geoip.database = '" << s.geoip_database << "', users_file = '"
                            << s.users_file << "'";
    EXPECT_TRUE(e[0].starts_with("t.yaml:")) << e[0];
  }
}

TEST(Diagnostics, MissingRequiredFieldInAListItem) {
  EXPECT_EQ(errors_of("users:\n  - name: bob\n"),
            std::vector<std::string>{
                "t.yaml:2:5: users[0].password: a user needs a password (plain text or an argon2id hash)"});
  EXPECT_EQ(errors_of("users:\n  - password: x\n"),
            std::vector<std::string>{"t.yaml:2:5: users[0].name: a user needs a non-empty name"});
  EXPECT_EQ(errors_of("acl:\n  rules:\n    - name: r\n      dst: [10.0.0.0/8]\n"),
            std::vector<std::string>{"t.yaml:3:7: acl.rules[0].action: missing (allow or deny)"});
  EXPECT_EQ(errors_of("forwarding:\n  - match: \"*:*\"\n"),
            std::vector<std::string>{"t.yaml:2:5: forwarding[0]: a forwarding rule needs 'upstream' or 'redirect'"});
  EXPECT_EQ(errors_of("listen:\n  - proxy_protocol: v1\n"),
            std::vector<std::string>{"t.yaml:2:5: listen[0].address: missing"});
  EXPECT_EQ(errors_of("port_forward:\n  - listen: 127.0.0.1:1\n"),
            std::vector<std::string>{"t.yaml:2:5: port_forward[0].target: expected HOST:PORT"});
}

TEST(Diagnostics, SeveralErrorsCollectedInFileOrder) {
  constexpr std::string_view yaml = R"(listen:
  - 127.0.0.1:0
timeouts:
  conect: 5s
  idle: 5 minutes
log:
  level: loud
acl:
  rules:
    - name: r1
      action: deny
      dst: [10.0.0.0/33]
workers: [1, 2]
users:
  - name: bob
)";
  EXPECT_EQ(errors_of(yaml),
            (std::vector<std::string>{
                "t.yaml:4:3: timeouts.conect: unknown key (did you mean 'connect'?)",
                "t.yaml:5:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got '5 minutes')",
                "t.yaml:7:10: log.level: expected one of: error, warn, info, debug, trace (got 'loud')",
                "t.yaml:12:13: acl.rules[0].dst[0]: invalid prefix length (got '10.0.0.0/33')",
                "t.yaml:13:10: workers: expected a single value",
                "t.yaml:15:5: users[0].password: a user needs a password (plain text or an argon2id hash)",
            }));
}

TEST(Diagnostics, UnreadableFile) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_yaml_file("/nonexistent/cleversocks.yaml", s, errs);
  EXPECT_EQ(texts(errs),
            std::vector<std::string>{"/nonexistent/cleversocks.yaml: cannot be read (No such file or directory)"});
  errs.clear();
  cfg::apply_yaml_file("/", s, errs);  // read as an empty file (the defaults) by std::ifstream
  EXPECT_EQ(texts(errs), std::vector<std::string>{"/: cannot be read (Is a directory)"});
}

TEST(Diagnostics, EmptyFileIsTheDefaults) {
  settings s;
  EXPECT_TRUE(load_text("", s).empty());
  EXPECT_TRUE(load_text("# only a comment\n", s).empty());
  EXPECT_EQ(cfg::to_yaml(s), cfg::to_yaml(settings{}));
}

TEST(Diagnostics, OutOfRangeNumbers) {
  EXPECT_EQ(errors_of("limits:\n  max_sessions: 4294967296\n"),
            std::vector<std::string>{
                "t.yaml:2:17: limits.max_sessions: expected a non-negative whole number (got '4294967296')"});
  EXPECT_EQ(errors_of("relay:\n  buffer_size: 512\n"),
            std::vector<std::string>{
                "t.yaml:2:16: relay.buffer_size: expected a size between 1KiB and 16MiB (e.g. 64KiB) (got '512')"});
}

// "expected a non-negative whole number" must hold for every whole-number key.
TEST(Diagnostics, NegativeWholeNumbersAreRefused) {
  for (const char* key : {"workers", "auth.lockout_after", "limits.max_sessions", "limits.max_sessions_per_ip",
                          "limits.max_sessions_per_user", "dns.tries", "dns.cache_size", "proxy_pool.max_tries"}) {
    settings s;
    EXPECT_NE(cfg::set_value(s, key, "-1"), "") << key << " accepted -1";
  }
}

// ============================================================ environment

TEST(Environment, ScalarOverride) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_env({{"CLEVERSOCKS_TIMEOUTS_CONNECT", "3s"}, {"CLEVERSOCKS_LOG_LEVEL", "debug"}}, s, errs);
  EXPECT_TRUE(errs.empty()) << joined(errs);
  EXPECT_EQ(s.timeouts.connect, 3s);
  EXPECT_EQ(s.log.level, spdlog::level::debug);
}

TEST(Environment, CommaSeparatedList) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_env({{"CLEVERSOCKS_LISTEN", "127.0.0.1:1081,[::1]:1082"}}, s, errs);
  EXPECT_TRUE(errs.empty()) << joined(errs);
  ASSERT_EQ(s.listen.size(), 2u);
  EXPECT_EQ(cs::core::to_string(s.listen[0].endpoint), "127.0.0.1:1081");
  EXPECT_EQ(cs::core::to_string(s.listen[1].endpoint), "[::1]:1082");
}

TEST(Environment, UnknownNameIsAnErrorWithAHint) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_env({{"CLEVERSOCKS_TIMEOUTS_CONECT", "3s"}, {"CLEVERSOCKS_FROBNICATE", "1"}}, s, errs);
  EXPECT_EQ(texts(errs), (std::vector<std::string>{
                             "environment: CLEVERSOCKS_FROBNICATE: unknown environment variable",
                             "environment: CLEVERSOCKS_TIMEOUTS_CONECT: unknown environment variable (did you "
                             "mean CLEVERSOCKS_TIMEOUTS_CONNECT?)",
                         }));
  EXPECT_EQ(s.timeouts.connect, 10s);
}

TEST(Environment, BadValues) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_env({{"CLEVERSOCKS_TIMEOUTS_CONNECT", "soon"}, {"CLEVERSOCKS_LISTEN", "127.0.0.1:1,nowhere"}}, s, errs);
  EXPECT_EQ(texts(errs),
            (std::vector<std::string>{
                "environment: CLEVERSOCKS_TIMEOUTS_CONNECT: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) "
                "(got 'soon')",
                "environment: CLEVERSOCKS_LISTEN: expected IPv4:PORT or [IPv6]:PORT, got 'nowhere'",
            }));
}

TEST(Environment, ConfigPathIsNotAnError) {
  settings s;
  std::vector<diagnostic> errs;
  cfg::apply_env({{"CLEVERSOCKS_CONFIG", "/etc/cleversocks/config.yaml"}}, s, errs);
  EXPECT_TRUE(errs.empty()) << joined(errs);
  EXPECT_EQ(cfg::to_yaml(s), cfg::to_yaml(settings{}));
}

TEST(Environment, NameMapping) {
  EXPECT_EQ(cfg::env_name("timeouts.connect"), "CLEVERSOCKS_TIMEOUTS_CONNECT");
  EXPECT_EQ(cfg::env_name("listen"), "CLEVERSOCKS_LISTEN");
  EXPECT_EQ(cfg::env_name("acl.builtin_blocks.link_local"), "CLEVERSOCKS_ACL_BUILTIN_BLOCKS_LINK_LOCAL");
  EXPECT_EQ(cfg::env_name("proxy_pool.health_check.interval"), "CLEVERSOCKS_PROXY_POOL_HEALTH_CHECK_INTERVAL");
  EXPECT_EQ(cfg::env_name("a-b.c"), "CLEVERSOCKS_A_B_C");
}

// ============================================================ precedence

TEST(Precedence, CommandLineOverEnvironmentOverFileOverDefaults) {
  temp_dir dir;
  cfg::source src;
  src.file = dir.write("config.yaml",
                       "listen: [127.0.0.1:2001]\n"
                       "timeouts:\n  connect: 3s\n  idle: 4s\n  handshake: 5s\n"
                       "log:\n  level: warn\n");
  src.env = {{"CLEVERSOCKS_TIMEOUTS_CONNECT", "6s"},
             {"CLEVERSOCKS_TIMEOUTS_IDLE", "7s"},
             {"CLEVERSOCKS_LISTEN", "127.0.0.1:2002,127.0.0.1:2003"}};
  src.command_line = [](settings& s, std::vector<diagnostic>& errors) {
    if (auto e = cfg::set_value(s, "timeouts.connect", "8s"); !e.empty()) {
      errors.push_back({"command line", 0, 0, "--connect-timeout", e});
    }
  };
  std::vector<diagnostic> errs;
  const settings s = src.load(errs);
  ASSERT_TRUE(errs.empty()) << joined(errs);
  EXPECT_EQ(s.timeouts.connect, 8s);               // command line
  EXPECT_EQ(s.timeouts.idle, 7s);                  // environment
  EXPECT_EQ(s.timeouts.handshake, 5s);             // file
  EXPECT_EQ(s.log.level, spdlog::level::warn);     // file
  EXPECT_EQ(s.timeouts.drain, 30s);                // default
  ASSERT_EQ(s.listen.size(), 2u);                  // environment list replaces the file's
  EXPECT_EQ(cs::core::to_string(s.listen[1].endpoint), "127.0.0.1:2003");
  EXPECT_EQ(src.watched_files(s), std::vector<std::string>{src.file});
}

TEST(Precedence, ErrorsFromEverySourceAreCollected) {
  temp_dir dir;
  cfg::source src;
  src.file = dir.write("c.yaml", "timeouts:\n  idle: forever\n");
  src.env = {{"CLEVERSOCKS_WORKERS", "lots"}};
  src.command_line = [](settings&, std::vector<diagnostic>& errors) {
    errors.push_back({"command line", 0, 0, "--relay", "expected one of: adaptive, splice, copy (got 'fast')"});
  };
  std::vector<diagnostic> errs;
  (void)src.load(errs);
  EXPECT_EQ(texts(errs),
            (std::vector<std::string>{
                src.file + ":2:9: timeouts.idle: expected a duration (10, 1.5, 500ms, 2s, 1m, 1h) (got 'forever')",
                "environment: CLEVERSOCKS_WORKERS: expected a non-negative whole number (got 'lots')",
                "command line: --relay: expected one of: adaptive, splice, copy (got 'fast')",
            }));
}

TEST(Precedence, NoFileMeansDefaultsPlusOverrides) {
  cfg::source src;
  src.env = {{"CLEVERSOCKS_WORKERS", "2"}};
  std::vector<diagnostic> errs;
  const settings s = src.load(errs);
  EXPECT_TRUE(errs.empty()) << joined(errs);
  EXPECT_EQ(s.workers, 2u);
  EXPECT_TRUE(src.watched_files(s).empty());
}

TEST(Precedence, UsersFileIsWatched) {
  cfg::source src;
  src.file = "/etc/cleversocks/config.yaml";
  settings s;
  s.users_file = "/etc/cleversocks/users.txt";
  EXPECT_EQ(src.watched_files(s), (std::vector<std::string>{"/etc/cleversocks/config.yaml", "/etc/cleversocks/users.txt"}));
}

// ======================================================= restart-only keys

TEST(RestartOnly, NothingChanged) {
  EXPECT_TRUE(cfg::restart_only_changes(settings{}, settings{}).empty());
}

TEST(RestartOnly, LiveKeysAreNotReported) {
  settings a;
  settings b;
  for (const auto& [k, v] : std::map<std::string, std::string>{{"timeouts.connect", "3s"},
                                                               {"acl.default", "deny"},
                                                               {"log.level", "debug"},
                                                               {"relay.mode", "copy"},
                                                               {"limits.max_sessions", "9"},
                                                               {"users_file", "/x"}}) {
    ASSERT_EQ(cfg::set_value(b, k, v), "");
  }
  EXPECT_TRUE(cfg::restart_only_changes(a, b).empty());
}

TEST(RestartOnly, EachRestartKeyIsReportedWithOldAndNew) {
  const std::map<std::string, std::string> expected = {
      {"workers", "workers: 0 → 3"},
      {"busy_poll", "busy_poll: 0s → 50us"},
      {"run_as.user", "run_as.user:  → nobody"},
      {"dns.timeout", "dns.timeout: 2s → 750ms"},
      {"dns.tries", "dns.tries: 2 → 4"},
      {"dns.cache_size", "dns.cache_size: 4096 → 128"},
      {"relay.buffer_size", "relay.buffer_size: 64KiB → 128KiB"},
      {"log.format", "log.format: text → json"},
      {"admin.enabled", "admin.enabled: true → false"},
      {"admin.listen", "admin.listen: 127.0.0.1:9090 → [::1]:9191"},
      {"listen", "listen"},
      {"dns.servers", "dns.servers"},
  };
  for (const auto& [k, want] : expected) {
    settings after;
    ASSERT_EQ(cfg::set_value(after, k, non_default_values().at(k).value), "");
    EXPECT_EQ(cfg::restart_only_changes(settings{}, after), std::vector<std::string>{want}) << k;
  }
}

// keep_restart_only(), the reload's rule: each key, alone, either takes its
// running value back (and is reported) or stays as loaded (and is not).
TEST(KeepRestartOnly, EachKeyIsKeptExactlyWhenItNeedsARestart) {
  for (const auto& k : cfg::scalar_keys()) {
    SCOPED_TRACE("key " + k);
    const auto& v = non_default_values().at(k).value;
    const bool restart = !cfg::restart_only_changes(settings{}, [&] {
                            settings s;
                            EXPECT_EQ(cfg::set_value(s, k, v), "");
                            return s;
                          }()).empty();
    // File changed the key: the running (default) value comes back.
    settings loaded;
    ASSERT_EQ(cfg::set_value(loaded, k, v), "");
    const std::string as_loaded = cfg::to_yaml(loaded);
    const auto kept = cfg::keep_restart_only(settings{}, loaded);
    EXPECT_EQ(kept.size(), restart ? 1U : 0U);
    EXPECT_EQ(cfg::to_yaml(loaded), restart ? cfg::to_yaml(settings{}) : as_loaded);
    // The other way round: a non-default running value survives a file
    // that no longer sets it (every getter's text reads back).
    settings running;
    ASSERT_EQ(cfg::set_value(running, k, v), "");
    settings reverted;
    EXPECT_EQ(cfg::keep_restart_only(running, reverted).size(), restart ? 1U : 0U);
    EXPECT_EQ(cfg::to_yaml(reverted), restart ? cfg::to_yaml(running) : cfg::to_yaml(settings{}));
  }
}

TEST(KeepRestartOnly, AllKeysAtOnceKeepOnlyTheRestartKeys) {
  settings running;
  for (const auto& k : cfg::scalar_keys()) {
    ASSERT_EQ(cfg::set_value(running, k, non_default_values().at(k).value), "") << k;
  }
  settings loaded;
  const auto kept = cfg::keep_restart_only(running, loaded);
  const std::string y = cfg::to_yaml(loaded);
  const std::string defaults = cfg::to_yaml(settings{});
  std::size_t restart_keys = 0;
  for (const auto& k : cfg::scalar_keys()) {
    settings alone;
    ASSERT_EQ(cfg::set_value(alone, k, non_default_values().at(k).value), "");
    const bool restart = !cfg::restart_only_changes(settings{}, alone).empty();
    restart_keys += restart ? 1 : 0;
    EXPECT_EQ(value_in(y, k), restart ? canonical(non_default_values().at(k)) : value_in(defaults, k)) << k;
  }
  EXPECT_EQ(kept.size(), restart_keys);
  EXPECT_GE(restart_keys, 15U);  // workers, busy_poll, run_as, dns, relay sizes, log.format, admin, listen
}

TEST(KeepRestartOnly, ListenersPortForwardsAndNameServersAreKeptWhole) {
  const auto ep = [](std::string_view t) {
    cs::core::ip::tcp::endpoint e;
    EXPECT_TRUE(cs::core::parse_endpoint(t, e)) << t;
    return e;
  };
  settings running;
  running.listen = {{ep("127.0.0.1:1080"), cfg::proxy_protocol_mode::off}};
  running.port_forward = {{ep("127.0.0.1:2222"), "db.internal:5432", {"dc"}}};
  settings loaded = running;
  loaded.listen[0].proxy_protocol = cfg::proxy_protocol_mode::v2;  // same address, new mode
  loaded.port_forward[0].target = "db.internal:5433";
  EXPECT_EQ(cfg::keep_restart_only(running, loaded), (std::vector<std::string>{"listen", "port_forward"}));
  EXPECT_EQ(loaded.listen, running.listen);
  EXPECT_EQ(loaded.port_forward, running.port_forward);

  loaded.port_forward.clear();
  ASSERT_EQ(cfg::set_value(loaded, "dns.servers", "192.0.2.53"), "");
  EXPECT_EQ(cfg::keep_restart_only(running, loaded), (std::vector<std::string>{"port_forward", "dns.servers"}));
  EXPECT_EQ(loaded.port_forward, running.port_forward);
  EXPECT_TRUE(loaded.dns.servers.empty());
  EXPECT_TRUE(cfg::keep_restart_only(running, loaded).empty());  // nothing left to keep
}

// ================================================================ helpers

TEST(ParseSize, Accepts) {
  const std::pair<const char*, std::uint64_t> cases[] = {
      {"65536", 65536},    {"64KiB", 65536},       {"1MiB", 1 << 20},        {"1GiB", 1ULL << 30},
      {"2k", 2000},        {"2K", 2048},           {"3M", 3 << 20},          {"0", 0},
      {"1024GiB", 1ULL << 40}, {"1099511627776", 1ULL << 40},
  };
  for (const auto& [text, want] : cases) {
    std::uint64_t out = 7;
    EXPECT_TRUE(cfg::parse_size(text, out)) << text;
    EXPECT_EQ(out, want) << text;
  }
}

TEST(ParseSize, Rejects) {
  for (const char* text : {"", "KiB", "1.5KiB", "-1", "64 KiB", "64kib", "64KB", "0x10", "1025GiB",
                           "1099511627777", "18446744073709551616", " 64", "64KiBKiB"}) {
    std::uint64_t out = 7;
    EXPECT_FALSE(cfg::parse_size(text, out)) << '"' << text << '"';
    EXPECT_EQ(out, 7u) << text;
  }
}

TEST(DidYouMean, NearestWithinTwoEdits) {
  const std::vector<std::string_view> keys = {"handshake", "connect", "idle", "drain"};
  EXPECT_EQ(cfg::did_you_mean("conect", keys), "connect");
  EXPECT_EQ(cfg::did_you_mean("CONNECT", keys), "connect");  // case-insensitive
  EXPECT_EQ(cfg::did_you_mean("idel", keys), "idle");
  EXPECT_EQ(cfg::did_you_mean("handshak", keys), "handshake");
  EXPECT_EQ(cfg::did_you_mean("dran", keys), "drain");
  EXPECT_EQ(cfg::did_you_mean("timeout", keys), "");          // too far from all
  EXPECT_EQ(cfg::did_you_mean("x", {"y"}), "");               // a one-letter key is never "near"
  EXPECT_EQ(cfg::did_you_mean("ab", {"abc"}), "abc");
  EXPECT_EQ(cfg::did_you_mean("anything", {}), "");
  EXPECT_EQ(cfg::did_you_mean("idle", keys), "idle");         // exact
  // the nearest wins, the first on ties
  EXPECT_EQ(cfg::did_you_mean("cat", {"cart", "cast", "ca"}), "cart");
  EXPECT_EQ(cfg::did_you_mean("conect", {"collect", "connect"}), "connect");
}

TEST(SetValue, UnknownKey) {
  settings s;
  EXPECT_EQ(cfg::set_value(s, "timeouts.conect", "1s"), "unknown key");
  EXPECT_EQ(cfg::set_value(s, "timeouts", "1s"), "unknown key");
}

}  // namespace
