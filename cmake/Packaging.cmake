# Debian package (.deb) built by CPack: `make package` (build/package), or
# by hand in any build directory
#   cmake --build DIR --target cleversocks && cd DIR && cpack -G DEB
# Included from the top-level CMakeLists.txt (or, for a throwaway build,
# with -DCMAKE_PROJECT_INCLUDE=cmake/Packaging.cmake). Needs dpkg-dev
# (dpkg-shlibdeps computes the library dependencies).
#
# The package installs
#   /usr/bin/cleversocks                         (stripped)
#   /lib/systemd/system/cleversocks.{service,socket}
#   /etc/cleversocks/config.yaml                 conffile, from config.example.yaml
#   /usr/share/doc/cleversocks/{README.md,config.example.yaml}
#   /usr/share/man/man1/cleversocks.1.gz
#   /usr/share/cleversocks/grafana/cleversocks-dashboard.json
# and creates the system user `cleversocks` (postinst), which the unit runs as.

include_guard(GLOBAL)

get_filename_component(CS_PKG_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(CS_PKG_DEBIAN_DIR "${CMAKE_CURRENT_LIST_DIR}/debian")

set(CS_PACKAGE_MAINTAINER "CleverSocks maintainers <maintainers@cleversocks.invalid>"
  CACHE STRING "Maintainer field of the .deb (Name <email>)")
set(CS_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the .deb (the N in VERSION-N)")

# ---- what the package contains (besides install(TARGETS cleversocks ...)) ---

# Relative destinations land under the install prefix (/usr in the package),
# so a plain `cmake --install --prefix /usr/local` installs these too.
install(FILES "${CS_PKG_SOURCE_DIR}/README.md" "${CS_PKG_SOURCE_DIR}/config.example.yaml"
  DESTINATION share/doc/cleversocks)
install(FILES "${CS_PKG_SOURCE_DIR}/deploy/grafana/cleversocks-dashboard.json"
  DESTINATION share/cleversocks/grafana)
# Files installed gzipped (-9n: no name or time stamp, so the package is
# reproducible). Compressed while installing, so that building only the
# `cleversocks` target is enough before `cpack`.
function(cs_install_gzipped source destination name)
  install(CODE "
    set(_cs_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${destination}\")
    file(MAKE_DIRECTORY \"\${_cs_dir}\")
    message(STATUS \"Installing: \${_cs_dir}/${name}\")
    execute_process(COMMAND gzip -9 -n -c \"${source}\"
      OUTPUT_FILE \"\${_cs_dir}/${name}\" RESULT_VARIABLE _cs_rc)
    if(NOT _cs_rc EQUAL 0)
      message(FATAL_ERROR \"gzip ${source} failed: \${_cs_rc}\")
    endif()
  " ${ARGN})
endfunction()

cs_install_gzipped("${CS_PKG_SOURCE_DIR}/docs/cleversocks.1" share/man/man1 cleversocks.1.gz)

# Debian policy: /usr/share/doc/PACKAGE/copyright and changelog.Debian.gz.
# The copyright file is the project's LICENSE once there is one.
if(EXISTS "${CS_PKG_SOURCE_DIR}/LICENSE")
  install(FILES "${CS_PKG_SOURCE_DIR}/LICENSE" DESTINATION share/doc/cleversocks
    RENAME copyright COMPONENT deb EXCLUDE_FROM_ALL)
endif()
string(TIMESTAMP _cs_changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)  # honours SOURCE_DATE_EPOCH
file(WRITE "${CMAKE_BINARY_DIR}/packaging/changelog.Debian"
"cleversocks (${PROJECT_VERSION}-${CS_PACKAGE_RELEASE}) unstable; urgency=medium

  * Built with CPack from the CleverSocks ${PROJECT_VERSION} sources.

 -- ${CS_PACKAGE_MAINTAINER}  ${_cs_changelog_date}
")
cs_install_gzipped("${CMAKE_BINARY_DIR}/packaging/changelog.Debian" share/doc/cleversocks changelog.Debian.gz
  COMPONENT deb EXCLUDE_FROM_ALL)

# Absolute destinations (system configuration, systemd units) belong to the
# package only: component `deb`, excluded from a plain `cmake --install` so
# that a developer's install never overwrites /etc/cleversocks/config.yaml.
install(FILES "${CS_PKG_SOURCE_DIR}/deploy/systemd/cleversocks.service"
              "${CS_PKG_SOURCE_DIR}/deploy/systemd/cleversocks.socket"
  DESTINATION /lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES "${CS_PKG_SOURCE_DIR}/config.example.yaml"
  DESTINATION /etc/cleversocks RENAME config.yaml COMPONENT deb EXCLUDE_FROM_ALL)

# ---- CPack ------------------------------------------------------------------

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "cleversocks")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "CleverSocks")
set(CPACK_PACKAGE_CONTACT "${CS_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
  "CleverSocks is a SOCKS5 (RFC 1928, RFC 1929) and SOCKS4/4a proxy server:
secure by default (authentication, ACLs with built-in blocks for private
and metadata addresses, limits), fast (one event loop per core, zero-copy
splice relay) and observable (Prometheus metrics, health endpoints,
structured access logs). Configured from one YAML file with hot reload;
ships a hardened systemd unit and socket activation.")
# Everything goes through DESTDIR into the staging tree, absolute
# destinations included; the prefix in the package is /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
# The default install (binary, docs, man page, dashboard) plus the `deb`
# component excluded from it.
set(CPACK_INSTALL_CMAKE_PROJECTS
  "${CMAKE_BINARY_DIR};${PROJECT_NAME};ALL;/"
  "${CMAKE_BINARY_DIR};${PROJECT_NAME};deb;/")
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

set(CPACK_DEBIAN_PACKAGE_NAME "cleversocks")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # cleversocks_VERSION-REL_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE "${CS_PACKAGE_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CS_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Library dependencies from dpkg-shlibdeps; adduser for the postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${CS_PKG_DEBIAN_DIR}/conffiles"
  "${CS_PKG_DEBIAN_DIR}/postinst"
  "${CS_PKG_DEBIAN_DIR}/prerm"
  "${CS_PKG_DEBIAN_DIR}/postrm")
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
