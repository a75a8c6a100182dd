# stats_report_smoke.cmake — the bench-smoke test of tools/stats_report.py:
# writes a tiny JSON stats report (with non-JSON lines around it, as a
# program's stderr has), runs the script on it and checks that the table
# names the size classes and that the PNG is written. Nothing is timed.
#   cmake -DPYTHON=python3 -DSCRIPT=tools/stats_report.py -DWORKDIR=dir -P stats_report_smoke.cmake
# Prints "SKIPPED: gnuplot not found" (the test's SKIP_REGULAR_EXPRESSION)
# when gnuplot is not installed.
if(NOT PYTHON OR NOT SCRIPT OR NOT WORKDIR)
  message(FATAL_ERROR "stats_report_smoke.cmake: PYTHON, SCRIPT and WORKDIR are required")
endif()
find_program(_gnuplot gnuplot)
if(NOT _gnuplot)
  message("SKIPPED: gnuplot not found (Debian: gnuplot-nox)")
  return()
endif()
file(MAKE_DIRECTORY "${WORKDIR}")
set(_json "${WORKDIR}/stats.json")
set(_png "${WORKDIR}/stats.png")
file(REMOVE "${_png}")
file(WRITE "${_json}" "a line the program printed
{\"version\": \"0.0.0\", \"build\": {\"scavenger\": \"off\", \"madvise\": \"dontneed\", \"valgrind\": \"off\"},
 \"alloc\": 4160, \"total_alloc\": 9000, \"sys\": 1048576, \"mallocs\": 30, \"frees\": 20,
 \"heap_alloc\": 4160, \"heap_sys\": 1048576, \"heap_idle\": 1032192, \"heap_inuse\": 16384,
 \"heap_released\": 0, \"heap_objects\": 10,
 \"by_size\": [
  {\"class\": 0, \"size\": 0, \"mallocs\": 1, \"frees\": 1, \"objects\": 0, \"bytes\": 0},
  {\"class\": 1, \"size\": 16, \"mallocs\": 20, \"frees\": 15, \"objects\": 5, \"bytes\": 80},
  {\"class\": 2, \"size\": 32, \"mallocs\": 0, \"frees\": 0, \"objects\": 0, \"bytes\": 0},
  {\"class\": 3, \"size\": 1024, \"mallocs\": 9, \"frees\": 4, \"objects\": 5, \"bytes\": 4080}
 ]
}
trailing noise {not json
")
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${_json} --png ${_png} --no-install
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
  message("stderr: ${err}")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "stats_report.py exited with status ${rc}")
endif()
if(NOT out MATCHES "scavenger=off" OR NOT out MATCHES "\n +3 +1024 +9 +4 +5 +4080")
  message(FATAL_ERROR "stats_report.py: the table does not show the report's numbers")
endif()
if(NOT EXISTS "${_png}")
  message(FATAL_ERROR "stats_report.py did not write ${_png}")
endif()
file(READ "${_png}" _magic LIMIT 4 HEX)
if(NOT _magic STREQUAL "89504e47")
  message(FATAL_ERROR "${_png} is not a PNG (starts with ${_magic})")
endif()
