#include "auth/verify_cache.hpp"

#include <cstring>

namespace cs::auth {

std::size_t verify_cache::key_hash::operator()(const digest& d) const noexcept {
  std::size_t h = 0;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

void verify_cache::switch_generation(std::uint64_t generation) {
  if (generation != generation_) {
    entries_.clear();
    generation_ = generation;
  }
}

const user* verify_cache::find(const digest& key, std::uint64_t generation) {
  switch_generation(generation);
  const auto it = entries_.find(key);
  if (it == entries_.end()) {
    return nullptr;
  }
  if (it->second.expires <= clock::now()) {
    entries_.erase(it);
    return nullptr;
  }
  return it->second.u;
}

void verify_cache::insert(const digest& key, const user* u, std::uint64_t generation) {
  switch_generation(generation);
  if (capacity_ == 0) {
    return;
  }
  if (entries_.size() >= capacity_) {
    const auto now = clock::now();
    std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires <= now; });
    if (entries_.size() >= capacity_) {
      entries_.erase(entries_.begin());
    }
  }
  entries_[key] = entry{u, clock::now() + ttl_};
}

}  // namespace cs::auth
