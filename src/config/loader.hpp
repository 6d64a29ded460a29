#pragma once
// From text to settings: the YAML file, CLEVERSOCKS_… environment variables
// and command-line overrides, each applied on top of the previous one
// (built-in defaults < file < environment < command line).
//
// Every problem is collected, not just the first, as
//   file:line:column: key.path: what is wrong
// Unknown keys are errors with a "did you mean" hint. Nothing here does I/O
// beyond reading the named configuration file; compile() in settings.hpp
// opens the files the settings name (users file, GeoIP database).

#include "config/settings.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cs::config {

struct diagnostic {
  std::string file;  ///< empty for the environment / command line
  int line = 0;      ///< 1-based; 0 when unknown
  int column = 0;
  std::string path;  ///< key path, e.g. "acl.rules[2].dst[0]"
  std::string message;

  std::string to_string() const;
};

/// Where the settings come from. load() runs at start and on every reload:
/// defaults, then the file, then the environment captured at start, then the
/// command line.
struct source {
  std::string file;  ///< empty: no configuration file
  std::map<std::string, std::string> env;
  std::function<void(settings&, std::vector<diagnostic>&)> command_line;

  settings load(std::vector<diagnostic>& errors) const;
  /// Files whose change should trigger a reload.
  std::vector<std::string> watched_files(const settings& s) const;
};

/// Applies a YAML document to `s`. `file` names it in diagnostics.
void apply_yaml(std::string_view text, const std::string& file, settings& s, std::vector<diagnostic>& errors);

/// Reads `path` and applies it. A file that cannot be read is one error.
void apply_yaml_file(const std::string& path, settings& s, std::vector<diagnostic>& errors);

/// Applies CLEVERSOCKS_* variables from `env` (name → value). Unknown
/// CLEVERSOCKS_ names are errors (except CLEVERSOCKS_CONFIG, the file path).
void apply_env(const std::map<std::string, std::string>& env, settings& s, std::vector<diagnostic>& errors);

/// The process environment's CLEVERSOCKS_* variables.
std::map<std::string, std::string> cleversocks_environment();

/// Sets one scalar key (dotted path, as in the file) from text, the way the
/// command line overrides the file. Returns an error message or "".
std::string set_value(settings& s, std::string_view path, std::string_view value);

/// The settings as a YAML document with every key (for round trips and
/// `--print-config`). Passwords are written as they are stored.
std::string to_yaml(const settings& s);

/// Keys whose change needs a restart, with old → new, comparing two settings.
std::vector<std::string> restart_only_changes(const settings& before, const settings& after);

/// For a reload: every key that needs a restart (the fields marked so in the
/// key table, plus listen, dns.servers and port_forward) takes its running
/// value back in `loaded`. Returns what was kept, as "key: running → file".
/// Throws std::logic_error only if a key's printed value does not read back.
std::vector<std::string> keep_restart_only(const settings& running, settings& loaded);

/// Every scalar key path the loader knows (for docs and tests).
std::vector<std::string> scalar_keys();

/// The environment variable for a key path ("timeouts.connect" →
/// "CLEVERSOCKS_TIMEOUTS_CONNECT").
std::string env_name(std::string_view path);

/// Levenshtein-nearest candidate within a small distance, or "".
std::string did_you_mean(std::string_view key, const std::vector<std::string_view>& candidates);

/// "64KiB", "1MiB", "65536", "2k". Returns false on anything else.
bool parse_size(std::string_view text, std::uint64_t& out);

}  // namespace cs::config
