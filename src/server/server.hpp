#pragma once
// The composition root: loads the configuration, builds the snapshot, the
// workers and their listeners, the admin endpoint; handles signals, reloads
// and the drain on shutdown.

#include "config/loader.hpp"

namespace cs::server {

/// Runs the proxy until SIGINT/SIGTERM and the drain that follows.
/// Returns the process exit code (0 after a clean shutdown, 1 when it
/// cannot start, 2 for an invalid configuration).
int run(const config::source& source);

}  // namespace cs::server
