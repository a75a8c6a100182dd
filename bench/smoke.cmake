# smoke.cmake — run one workload at a tiny size for the bench-smoke ctest label.
#   cmake -DPROG=path -DWORKLOAD=name [-DPRELOAD=lib.so] -DARGS="a;b" [-DEXPECT=regex] -P smoke.cmake
# Passes when the program exits 0 and prints "RESULT workload=<name> ..."
# (and, with EXPECT, that line matches the regular expression too).
if(NOT PROG OR NOT WORKLOAD)
  message(FATAL_ERROR "smoke.cmake: PROG and WORKLOAD are required")
endif()
if(PRELOAD)
  set(ENV{LD_PRELOAD} "${PRELOAD}")
endif()
execute_process(COMMAND ${PROG} ${ARGS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
  message("stderr: ${err}")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${WORKLOAD} (args: ${ARGS}; preload: ${PRELOAD}): exit status ${rc}")
endif()
if(NOT out MATCHES "(^|\n)RESULT workload=${WORKLOAD} [^\n]*seconds=[^\n]*peak_rss_kb=")
  message(FATAL_ERROR "${WORKLOAD}: no RESULT line")
endif()
if(EXPECT)
  string(REGEX MATCH "(^|\n)RESULT workload=${WORKLOAD} [^\n]*" line "${out}")
  if(NOT line MATCHES "${EXPECT}")
    message(FATAL_ERROR "${WORKLOAD}: the RESULT line does not match '${EXPECT}'")
  endif()
endif()
