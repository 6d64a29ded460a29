#pragma once
// The composition root: builds the snapshot, the workers and their
// listeners, handles signals and the drain on shutdown.

#include "config/settings.hpp"

namespace cs::server {

/// Runs the proxy until SIGINT/SIGTERM and the drain that follows.
/// Returns the process exit code (0 after a clean shutdown).
int run(const config::settings& settings);

}  // namespace cs::server
