# Run at build time (cmake -P) after a GoogleTest binary is linked: lists its suites and writes one
# CTest test per suite to OUT. One process per suite instead of one per test: each process pays
# LibTorch's start (about 0.9 s) once for its suite.
# Variables: BIN (the binary), OUT (the file to write), PREFIX (of the test names), RUNNER
# (run_suite.sh), WORKDIR, ENV (a list of NAME=value for the tests' environment), FIXTURES (a list
# of SUITE=FIXTURE: that suite's test requires the CTest fixture).
execute_process(COMMAND "${BIN}" --gtest_list_tests OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BIN} --gtest_list_tests failed (${rc}): ${listing}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(script "")
foreach(line IN LISTS lines)
  # Suites start in the first column and end in a dot ("Suite." or "Instance/Suite."); tests are indented.
  if(line MATCHES "^([A-Za-z0-9_/]+)\\.")
    set(suite "${CMAKE_MATCH_1}")
    set(name "${PREFIX}.${suite}")
    string(APPEND script "add_test([=[${name}]=] [=[${RUNNER}]=] [=[${BIN}]=] [=[${suite}.*]=])\n")
    string(APPEND script "set_tests_properties([=[${name}]=] PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 "
                         "WORKING_DIRECTORY [=[${WORKDIR}]=] ENVIRONMENT [=[${ENV}]=])\n")
    foreach(pair IN LISTS FIXTURES)
      if(pair MATCHES "^${suite}=(.+)$")
        string(APPEND script "set_tests_properties([=[${name}]=] PROPERTIES FIXTURES_REQUIRED [=[${CMAKE_MATCH_1}]=])\n")
      endif()
    endforeach()
  endif()
endforeach()
file(WRITE "${OUT}" "${script}")
