# SPDX-License-Identifier: Apache-2.0
# Install rules and the Orbit CMake package (find_package(Orbit CONFIG)):
#   bin/orbitd, bin/orbit                     the daemon and the command line tool
#   lib/liborbit_protocol.a + include/orbit/protocol/*.hpp             -> Orbit::protocol
#   lib/liborbit_libtorch.a + include/orbit/adapters/libtorch/*.hpp    -> Orbit::libtorch_adapter
#                                                                          (when Torch was found)
#   share/orbit/configs/                      default.toml (every key documented) and profiles
#   lib/cmake/Orbit/                          OrbitConfig.cmake, OrbitConfigVersion.cmake, targets
# Included from the top-level CMakeLists.txt when ORBIT_INSTALL is ON.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ORBIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Orbit)
set(ORBIT_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/orbit)

# The executables are exported too, so a consumer can name Orbit::orbitd in a test.
set_target_properties(orbitd PROPERTIES EXPORT_NAME orbitd)
set_target_properties(orbit PROPERTIES EXPORT_NAME orbit)
install(TARGETS orbitd orbit EXPORT OrbitTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(TARGETS orbit_protocol EXPORT OrbitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${ORBIT_INSTALL_INCLUDEDIR})

set(ORBIT_HAS_LIBTORCH_ADAPTER OFF)
if(TARGET orbit_libtorch)
  set(ORBIT_HAS_LIBTORCH_ADAPTER ON)
  install(TARGETS orbit_libtorch EXPORT OrbitTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    FILE_SET HEADERS DESTINATION ${ORBIT_INSTALL_INCLUDEDIR})
endif()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs DESTINATION ${CMAKE_INSTALL_DATADIR}/orbit)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/protocol/SPEC.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

install(EXPORT OrbitTargets NAMESPACE Orbit:: DESTINATION ${ORBIT_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/OrbitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/OrbitConfig.cmake
  INSTALL_DESTINATION ${ORBIT_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_DATADIR)
# 0.x: a minor version may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/OrbitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/OrbitConfig.cmake ${PROJECT_BINARY_DIR}/OrbitConfigVersion.cmake
  DESTINATION ${ORBIT_INSTALL_CMAKEDIR})
