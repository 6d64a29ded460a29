// Replays fuzz-target inputs without libFuzzer: `fuzz_replay TARGET PATH...`
// runs TARGET's LLVMFuzzerTestOneInput on every regular file under each PATH
// (a file or a directory, recursively). A failed invariant aborts, naming the
// file first. Exit status 0 when every input passed; 2 on usage errors or
// when no input was found (an empty corpus is a mistake, not a pass).
//
// `fuzz_replay --list` prints the targets.

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

#include "fuzz_targets.inc"

namespace fs = std::filesystem;

namespace {

int run_file(const cs_fuzz_target& t, const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", p.c_str());
    return 2;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::fprintf(stderr, "%s: %s (%zu bytes)\n", t.name, p.c_str(), bytes.size());
  // A copy in exactly-sized heap memory, so ASan builds catch over-reads.
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  const std::uint8_t* ptr = data.empty() ? nullptr : data.data();
  t.entry(ptr, data.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--list") {
    for (const auto& t : cs_fuzz_targets) {
      std::printf("%s\n", t.name);
    }
    return 0;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TARGET PATH... | --list\n", argv[0]);
    return 2;
  }
  const cs_fuzz_target* target = nullptr;
  for (const auto& t : cs_fuzz_targets) {
    if (std::string_view(argv[1]) == t.name) {
      target = &t;
    }
  }
  if (target == nullptr) {
    std::fprintf(stderr, "unknown target '%s' (try --list)\n", argv[1]);
    return 2;
  }
  std::size_t count = 0;
  // The empty input is always worth a run.
  target->entry(nullptr, 0);
  for (int i = 2; i < argc; ++i) {
    const fs::path root(argv[i]);
    std::error_code ec;
    if (fs::is_regular_file(root, ec)) {
      if (run_file(*target, root) != 0) {
        return 2;
      }
      ++count;
      continue;
    }
    if (!fs::is_directory(root, ec)) {
      std::fprintf(stderr, "no such file or directory: %s\n", root.c_str());
      return 2;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_regular_file()) {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      if (run_file(*target, f) != 0) {
        return 2;
      }
      ++count;
    }
  }
  if (count == 0) {
    std::fprintf(stderr, "%s: no inputs found\n", target->name);
    return 2;
  }
  std::printf("%s: %zu inputs passed\n", target->name, count);
  return 0;
}
