# Warnings, sanitizers and project-wide definitions.
add_library(cs_options INTERFACE)
target_compile_options(cs_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
  -Wno-sign-conversion -Wimplicit-fallthrough
  # GCC 12 misreads Asio's recycling coroutine-frame allocator as new/delete mismatch.
  -Wno-mismatched-new-delete)
target_compile_definitions(cs_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED            # must also build on Boost >= 1.87
  BOOST_ASIO_DISABLE_BOOST_COROUTINE
  BOOST_ASIO_NO_TS_EXECUTORS)

if(CS_SANITIZE)
  message(STATUS "Sanitizers: ${CS_SANITIZE}")
  target_compile_options(cs_options INTERFACE -fsanitize=${CS_SANITIZE} -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  target_link_options(cs_options INTERFACE -fsanitize=${CS_SANITIZE})
  if(CS_SANITIZE MATCHES "thread")
    # GCC warns at every std::atomic_thread_fence that TSan does not model
    # fences. All of them are in Asio's headers: std_fenced_block around a
    # handler an executor runs inline on its own thread (handlers that cross
    # threads go through the scheduler's mutex, which TSan does see), and the
    # acquire fence of ref_count_down's last release. The project's own code
    # has none. Without this the TSan build prints the warning ~330 times.
    target_compile_options(cs_options INTERFACE -Wno-tsan)
  endif()
endif()

# Link-time optimisation for the optimised builds (Release, RelWithDebInfo:
# `make run`, the package, the benchmark), not for the sanitizer or fuzz
# builds. Measured with bench's session runs: +2.0-2.5 % sessions per server
# CPU-second (user space is a fifth of a session's CPU; the rest is the
# kernel's TCP work), no measurable change in the time a full build takes.
option(CS_LTO "Link-time optimisation in Release / RelWithDebInfo builds" ON)
if(CS_LTO AND NOT CS_SANITIZE AND NOT CS_FUZZ)
  include(CheckIPOSupported)
  check_ipo_supported(RESULT cs_ipo_ok OUTPUT cs_ipo_why LANGUAGES CXX)
  if(cs_ipo_ok)
    set(CMAKE_INTERPROCEDURAL_OPTIMIZATION_RELEASE ON)
    set(CMAKE_INTERPROCEDURAL_OPTIMIZATION_RELWITHDEBINFO ON)
  else()
    message(STATUS "LTO not available, building without it: ${cs_ipo_why}")
  endif()
endif()
