# The data layer under hostile conditions (included by tests/CMakeLists.txt): the downloader
# against misbehaving servers and caches (unit tests), and end-to-end runs of the binary that
# share one cache between many processes or are stopped by a signal mid-download.
target_sources(unit_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/test_download_hostile.cpp)

# Eight `--download_only` runs at once on one empty cache, against a slow loopback mirror: all
# succeed, and the server sees each file requested exactly once.
add_test(NAME e2e_data_shared_cache
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/data_shared_cache.sh
                 $<TARGET_FILE:mnist-train> $<TARGET_FILE:mnist_test_server> ${MNIST_IDX_DIR} 8)
# SIGTERM and SIGINT during a slow download, and while waiting for another process's download:
# exit 143 / 130 promptly (within 8 s of a 12 s download), nothing left under the final name.
add_test(NAME e2e_data_signals
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/data_signals.sh
                 $<TARGET_FILE:mnist-train> $<TARGET_FILE:mnist_test_server>)
set_tests_properties(e2e_data_shared_cache e2e_data_signals PROPERTIES LABELS "cpu;e2e" TIMEOUT 120)
