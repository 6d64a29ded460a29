#include "obs/prometheus.hpp"

#include <fmt/format.h>

#include <cmath>

namespace cs::obs {

void prometheus_text::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} ", name);
  for (const char c : help) {  // HELP escapes backslash and newline
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += fmt::format("\n# TYPE {} {}\n", name, type);
}

void prometheus_text::labels(std::initializer_list<label> ls) {
  if (ls.size() == 0) {
    return;
  }
  out_ += '{';
  bool first = true;
  for (const auto& [k, v] : ls) {
    if (!first) {
      out_ += ',';
    }
    first = false;
    out_ += k;
    out_ += "=\"";
    for (const char c : v) {
      if (c == '\\') {
        out_ += "\\\\";
      } else if (c == '"') {
        out_ += "\\\"";
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  out_ += '}';
}

void prometheus_text::sample(std::string_view name, std::initializer_list<label> ls, double value) {
  out_ += name;
  labels(ls);
  if (std::isinf(value)) {
    out_ += value > 0 ? " +Inf\n" : " -Inf\n";
  } else {
    out_ += fmt::format(" {}\n", value);
  }
}

void prometheus_text::sample(std::string_view name, std::initializer_list<label> ls, std::uint64_t value) {
  out_ += name;
  labels(ls);
  out_ += fmt::format(" {}\n", value);
}

}  // namespace cs::obs
