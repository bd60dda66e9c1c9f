# calibd_library(NAME <name> SRCS ... [DEPS ...])
#   One static library per folder, aliased calibd::<name>, include root = the source tree.
function(calibd_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(calibd_${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(calibd::${ARG_NAME} ALIAS calibd_${ARG_NAME})
  target_include_directories(calibd_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(calibd_${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

# calibd_test(NAME <name> SRCS ... [DEPS ...] [LABELS ...] [TIMEOUT s])
#   One gtest binary per module; each TEST becomes a ctest case (discovered after build).
function(calibd_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)  # an empty LABELS value would swallow the next property name
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_definitions(${ARG_NAME} PRIVATE
    CALIBD_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    CALIBD_BINARY_DIR="${PROJECT_BINARY_DIR}"
    CALIBD_PYTHON="${CALIBD_PYTHON}")
  include(GoogleTest)
  # Several labels are one list-valued property: escape the separators, or the second label
  # would be read as a property name.
  string(REPLACE ";" "\\;" labels "${ARG_LABELS}")
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS "${labels}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
