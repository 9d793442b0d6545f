# SPDX-License-Identifier: Apache-2.0
# Builds and runs a consumer project against Orbit, the two ways a C++ user takes it:
#   MODE=find_package     cmake --install ORBIT_BUILD_DIR into WORK_DIR/prefix, then
#                         find_package(Orbit CONFIG REQUIRED) from there
#   MODE=add_subdirectory add_subdirectory(ORBIT_SOURCE_DIR) in the consumer's tree
# then builds tests/consumer/snapshot_roundtrip.cpp against Orbit::protocol and runs it;
# with an installed LibTorch adapter, also burn_schedule_check.cpp against it.
#   cmake -DMODE=... -DORBIT_SOURCE_DIR=... -DORBIT_BUILD_DIR=... -DWORK_DIR=...
#         [-DCXX_COMPILER=...] [-DCOMPILER_LAUNCHER=...] [-DBUILD_TYPE=...] -P run_consumer.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var MODE ORBIT_SOURCE_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run_consumer.cmake: ${var} is required")
  endif()
endforeach()

function(run)
  string(JOIN " " shown ${ARGV})
  message(STATUS "consumer test: ${shown}")
  execute_process(COMMAND ${ARGV} COMMAND_ERROR_IS_FATAL ANY)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
if(CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
if(COMPILER_LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${COMPILER_LAUNCHER})
endif()

set(consumer_build ${WORK_DIR}/build)
if(MODE STREQUAL "find_package")
  if(NOT ORBIT_BUILD_DIR)
    message(FATAL_ERROR "run_consumer.cmake: find_package mode needs ORBIT_BUILD_DIR")
  endif()
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${ORBIT_BUILD_DIR} --prefix ${prefix})
  foreach(file bin/orbitd bin/orbit include/orbit/protocol/codec.hpp share/orbit/configs/default.toml)
    if(NOT EXISTS ${prefix}/${file})
      message(FATAL_ERROR "cmake --install did not install ${file}")
    endif()
  endforeach()
  foreach(file OrbitConfig.cmake OrbitConfigVersion.cmake)
    file(GLOB found ${prefix}/lib/cmake/Orbit/${file} ${prefix}/lib/*/cmake/Orbit/${file})
    if(NOT found)
      message(FATAL_ERROR "cmake --install did not install lib/cmake/Orbit/${file}")
    endif()
  endforeach()
  run(${prefix}/bin/orbitd --version)
  run(${prefix}/bin/orbit --version)
  # Only the fresh prefix may provide Orbit: no package registry, no system copy first.
  run(${CMAKE_COMMAND} -S ${ORBIT_SOURCE_DIR}/tests/consumer/find_package -B ${consumer_build} ${configure_args}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  file(STRINGS ${consumer_build}/CMakeCache.txt orbit_dir REGEX "^Orbit_DIR:")
  if(NOT orbit_dir MATCHES "=${prefix}/")
    message(FATAL_ERROR "Orbit was found outside the fresh prefix: ${orbit_dir}")
  endif()
elseif(MODE STREQUAL "add_subdirectory")
  run(${CMAKE_COMMAND} -S ${ORBIT_SOURCE_DIR}/tests/consumer/add_subdirectory -B ${consumer_build} ${configure_args}
      -DORBIT_SOURCE_DIR=${ORBIT_SOURCE_DIR})
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE is find_package or add_subdirectory, not '${MODE}'")
endif()

if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --build ${consumer_build})  # everything the consumer defines
else()
  run(${CMAKE_COMMAND} --build ${consumer_build} --target snapshot_roundtrip)  # not all of Orbit
endif()
run(${consumer_build}/snapshot_roundtrip)
if(EXISTS ${consumer_build}/burn_schedule_check)
  run(${consumer_build}/burn_schedule_check)
endif()
