# The run's verdict (included by tests/CMakeLists.txt): result.json, --result_file, --metrics_file,
# the termination message and the summary line. Unit tests in unit_tests; the real binary's
# verdicts end to end, each checked against docs/result.schema.json (validate_verdict.py, the
# jsonschema module) or by promtool.
target_sources(unit_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/test_report.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_parallel.cpp ${CMAKE_CURRENT_LIST_DIR}/test_benchmark_stats.cpp)
set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/test_report.cpp APPEND PROPERTY COMPILE_DEFINITIONS
             MNIST_RESULT_SCHEMA="${PROJECT_SOURCE_DIR}/docs/result.schema.json")

# Success, failures (exit 2, 4, 6, 7), SIGTERM (143), --result_file, termination-message files.
add_test(NAME e2e_verdict COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/verdict.sh
         $<TARGET_FILE:mnist-train> cpu)
set_tests_properties(e2e_verdict PROPERTIES LABELS "cpu;e2e" TIMEOUT 300)

# Outputs checked before the run (exit 2 for names no file system holds, 6 for a folder in a
# verdict file's place), closed standard descriptors, a file-size limit, refused termination logs.
add_test(NAME e2e_outputs COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/outputs.sh
         $<TARGET_FILE:mnist-train> ${MNIST_IDX_DIR})
set_tests_properties(e2e_outputs PROPERTIES LABELS "cpu;e2e" TIMEOUT 300)

# The same verdict from a GPU run names the device as CUDA and nvidia-smi see it. Skips (77)
# without a GPU.
add_test(NAME e2e_verdict_gpu COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/verdict.sh
         $<TARGET_FILE:mnist-train> cuda)
set_tests_properties(e2e_verdict_gpu PROPERTIES LABELS "gpu;e2e" SKIP_RETURN_CODE 77 TIMEOUT 300)

# The device description (src/gpu/device.h) against CUDA's own calls. Label `gpu`; each test skips
# (reported as skipped) when no CUDA device is visible.
add_executable(app_gpu_tests ${CMAKE_CURRENT_LIST_DIR}/test_device.cpp)
target_link_libraries(app_gpu_tests PRIVATE mnist_core mnist_test_support GTest::gtest_main mnist_warnings)
gtest_discover_tests(app_gpu_tests PROPERTIES LABELS gpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")
