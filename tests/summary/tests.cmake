# TensorBoard event files (src/summary/), included by tests/CMakeLists.txt: unit tests against
# published CRC-32C/TFRecord vectors and hand-built protobuf bytes, and a sample run that an
# independent reader (read_events.py: Python's standard library only) reads back and checks.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

# The summary layer alone, without CUDA, so that these tests build and run on any machine.
add_library(mnist_summary_for_tests STATIC
  ${PROJECT_SOURCE_DIR}/src/summary/crc32c.cpp ${PROJECT_SOURCE_DIR}/src/summary/event.cpp
  ${PROJECT_SOURCE_DIR}/src/summary/event_writer.cpp ${PROJECT_SOURCE_DIR}/src/summary/histogram.cpp
  ${PROJECT_SOURCE_DIR}/src/summary/png.cpp ${PROJECT_SOURCE_DIR}/src/summary/protobuf.cpp
  ${PROJECT_SOURCE_DIR}/src/summary/tfrecord.cpp)
target_include_directories(mnist_summary_for_tests PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(mnist_summary_for_tests PUBLIC ZLIB::ZLIB PRIVATE mnist_warnings)

add_executable(summary_tests ${CMAKE_CURRENT_LIST_DIR}/test_summary.cpp)
target_link_libraries(summary_tests PRIVATE mnist_summary_for_tests GTest::gtest_main ZLIB::ZLIB mnist_warnings)
gtest_discover_tests(summary_tests PROPERTIES LABELS cpu)

# A sample run of every kind of value, written twice into one folder (two files), read back.
add_executable(write_sample_events ${CMAKE_CURRENT_LIST_DIR}/write_sample_events.cpp)
target_link_libraries(write_sample_events PRIVATE mnist_summary_for_tests mnist_warnings)
add_test(NAME summary_events_read_back
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/read_events.py
                 --writer $<TARGET_FILE:write_sample_events>)
set_tests_properties(summary_events_read_back PROPERTIES LABELS cpu TIMEOUT 60)
