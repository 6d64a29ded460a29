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
endif()
