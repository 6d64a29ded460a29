#include "obs/log.hpp"

#include <fmt/format.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <vector>

namespace cs::obs {
namespace {

// Emits each formatted record with one write(2): lines from different
// threads never interleave (O_APPEND files, pipes up to PIPE_BUF, terminals).
class fd_sink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit fd_sink(int fd) : fd_(fd) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const char* p = buf.data();
    std::size_t left = buf.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return;  // nowhere to report a failure to log
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void flush_() override {}

 private:
  int fd_;
};

std::string iso_time(std::chrono::system_clock::time_point tp) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

// {"ts":"…","level":"info","msg":"…"}; messages from write_access() are
// already JSON members ("\x01" marker) and are spliced in as fields.
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(128 + msg.payload.size());
    line += "{\"ts\":\"";
    line += iso_time(msg.time);
    line += "\",\"level\":\"";
    const auto lv = spdlog::level::to_string_view(msg.level);
    line.append(lv.data(), lv.size());
    line += '"';
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == '\x01') {
      line += ',';
      line += payload.substr(1);
    } else {
      line += ",\"msg\":\"";
      append_json_escaped(line, payload);
      line += '"';
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

struct global_state {
  std::mutex mu;  // guards `loggers`; taken once per thread, never per record
  std::vector<std::weak_ptr<spdlog::logger>> loggers;
  log_settings settings;
  std::atomic<int> level{spdlog::level::info};
};

global_state& state() {
  static global_state g;
  return g;
}

std::shared_ptr<spdlog::logger> make_thread_logger() {
  auto& g = state();
  std::lock_guard lock(g.mu);
  auto sink = std::make_shared<fd_sink>(g.settings.fd);
  if (g.settings.format == log_format::json) {
    sink->set_formatter(std::make_unique<json_formatter>());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("cleversocks", std::move(sink));
  logger->set_level(static_cast<spdlog::level::level_enum>(g.level.load()));
  std::erase_if(g.loggers, [](const auto& w) { return w.expired(); });
  g.loggers.push_back(logger);
  return logger;
}

}  // namespace

void init_logging(const log_settings& settings) {
  auto& g = state();
  {
    std::lock_guard lock(g.mu);
    g.settings = settings;
  }
  set_level(settings.level);
}

void set_level(spdlog::level::level_enum level) {
  auto& g = state();
  g.level.store(level);
  std::lock_guard lock(g.mu);
  for (auto& w : g.loggers) {
    if (auto l = w.lock()) {
      l->set_level(level);
    }
  }
}

spdlog::logger& log() {
  thread_local std::shared_ptr<spdlog::logger> logger = make_thread_logger();
  return *logger;
}

void notice(std::string_view message) {
  auto& l = log();
  const spdlog::details::log_msg msg(l.name(), spdlog::level::info,
                                     spdlog::string_view_t(message.data(), message.size()));
  for (auto& sink : l.sinks()) {
    sink->log(msg);
  }
}

spdlog::level::level_enum level_from_verbosity(int verbose, bool quiet) noexcept {
  if (quiet) {
    return spdlog::level::warn;
  }
  switch (verbose) {
    case 0: return spdlog::level::info;
    case 1: return spdlog::level::debug;
    default: return spdlog::level::trace;
  }
}

void append_json_escaped(std::string& out, std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;  // UTF-8 passes through; invalid bytes too (logs, not a parser)
        }
    }
  }
}

namespace {

// Quotes a text value for key=value logs when it could be misread.
void append_text_value(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += '-';
    return;
  }
  bool plain = true;
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '"' || c == '=' || c >= 0x7F) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  append_json_escaped(out, v);
  out += '"';
}

void add_json(std::string& out, std::string_view key, std::string_view value, bool first = false) {
  if (!first) {
    out += ',';
  }
  out += '"';
  out += key;
  out += "\":";
  if (value.empty()) {
    out += "null";
    return;
  }
  out += '"';
  append_json_escaped(out, value);
  out += '"';
}

void add_json(std::string& out, std::string_view key, std::uint64_t value) {
  out += fmt::format(",\"{}\":{}", key, value);
}

}  // namespace

void write_access(const access_record& r) {
  auto& l = log();
  if (!l.should_log(spdlog::level::info)) {
    return;
  }
  const double ms = static_cast<double>(r.duration.count()) / 1000.0;
  const std::string rep = r.reply < 0 ? std::string("-") : fmt::format("0x{:02x}", r.reply);
  std::string line;
  line.reserve(256);
  if (state().settings.format == log_format::json) {
    line += '\x01';
    add_json(line, "event", "access", true);
    add_json(line, "session", r.session);
    add_json(line, "client", r.client);
    add_json(line, "user", r.user);
    add_json(line, "proto", r.proto);
    add_json(line, "cmd", r.command);
    add_json(line, "target", r.target);
    add_json(line, "dialled", r.dialled);
    add_json(line, "route", r.route);
    if (!r.rule.empty()) {
      add_json(line, "rule", r.rule);
    }
    add_json(line, "result", r.result);
    add_json(line, "rep", r.reply < 0 ? std::string_view{} : std::string_view(rep));
    add_json(line, "up", r.bytes_up);
    add_json(line, "down", r.bytes_down);
    line += fmt::format(",\"duration_ms\":{:.3f}", ms);
  } else {
    line += fmt::format("access session={} client=", r.session);
    append_text_value(line, r.client);
    line += " user=";
    append_text_value(line, r.user);
    line += fmt::format(" proto={} cmd={} target=", r.proto, r.command);
    append_text_value(line, r.target);
    line += " dialled=";
    append_text_value(line, r.dialled);
    line += " route=";
    append_text_value(line, r.route);
    if (!r.rule.empty()) {
      line += " rule=";
      append_text_value(line, r.rule);
    }
    line += fmt::format(" result={} rep={} up={} down={} duration_ms={:.3f}", r.result, rep, r.bytes_up,
                        r.bytes_down, ms);
  }
  l.log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace cs::obs
