# The multi-process rendezvous (src/dist; included by tests/CMakeLists.txt): ranks as threads and
# as forked processes over loopback, stray and hostile clients on both sides, timeouts and stop
# requests. No GPU and no NCCL: the rendezvous needs only src/dist and the stop request, so its
# tests link a small library of those instead of mnist_core.
add_library(mnist_dist STATIC ${PROJECT_SOURCE_DIR}/src/dist/rendezvous.cpp ${PROJECT_SOURCE_DIR}/src/stop.cpp
  ${PROJECT_SOURCE_DIR}/src/watchdog.cpp)
target_include_directories(mnist_dist PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(mnist_dist PRIVATE OpenSSL::Crypto mnist_warnings)

add_executable(dist_tests ${CMAKE_CURRENT_LIST_DIR}/test_rendezvous.cpp)
target_link_libraries(dist_tests PRIVATE mnist_dist OpenSSL::Crypto GTest::gtest_main Threads::Threads mnist_warnings)
gtest_discover_tests(dist_tests PROPERTIES LABELS cpu TIMEOUT 60 SKIP_REGULAR_EXPRESSION "  SKIPPED ")
