#include "obs/metrics.hpp"

namespace cs::obs {

shared_counter* named_counters::get(std::string_view name) {
  std::lock_guard lock(mu_);
  if (auto it = counters_.find(name); it != counters_.end()) {
    return it->second.get();
  }
  const std::string key = counters_.size() < max_ ? std::string(name) : std::string("_other");
  auto& slot = counters_[key];
  if (!slot) {
    slot = std::make_unique<shared_counter>();
  }
  return slot.get();
}

std::vector<std::pair<std::string, std::uint64_t>> named_counters::values() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.reserve(counters_.size());
  for (const auto& [name, c] : counters_) {
    out.emplace_back(name, c->value());
  }
  return out;
}

user_counters* registry::user(std::string_view name) {
  constexpr std::size_t max_users = 1000;
  std::lock_guard lock(users_mu);
  if (auto it = users.find(name); it != users.end()) {
    return it->second.get();
  }
  const std::string key = users.size() < max_users ? std::string(name) : std::string("_other");
  auto& slot = users[key];
  if (!slot) {
    slot = std::make_unique<user_counters>();
  }
  return slot.get();
}

registry& global_registry() {
  static registry r;
  return r;
}

}  // namespace cs::obs
