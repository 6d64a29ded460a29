#pragma once
// Prometheus text exposition format (version 0.0.4) writer.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace cs::obs {

using label = std::pair<std::string_view, std::string_view>;

class prometheus_text {
 public:
  /// # HELP / # TYPE header of a metric family ("counter", "gauge", "histogram").
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::initializer_list<label> labels, double value);
  void sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  void sample(std::string_view name, std::uint64_t value) { sample(name, {}, value); }

  const std::string& str() const noexcept { return out_; }

 private:
  void labels(std::initializer_list<label> ls);
  std::string out_;
};

}  // namespace cs::obs
