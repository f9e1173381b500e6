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
gtest_discover_tests(summary_tests PROPERTIES LABELS cpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")

# A sample run of every kind of value, written twice into one folder (two files), read back.
add_executable(write_sample_events ${CMAKE_CURRENT_LIST_DIR}/write_sample_events.cpp)
target_link_libraries(write_sample_events PRIVATE mnist_summary_for_tests mnist_warnings)
add_test(NAME summary_events_read_back
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/read_events.py
                 --writer $<TARGET_FILE:write_sample_events>)
set_tests_properties(summary_events_read_back PROPERTIES LABELS cpu TIMEOUT 60)
# The same sample through TensorBoard's own loaders: skipped (77), and reported so, where Python
# lacks the tensorboard package (CI); run where it has it (the GPU machine).
add_test(NAME summary_tensorboard_sample
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/tensorboard_check.py
                 --writer $<TARGET_FILE:write_sample_events>)
set_tests_properties(summary_tensorboard_sample PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 120)

# The --log_dir checker's own test: log folders made to the spec by the test side's encoder pass,
# and each of a list of deliberate faults (bit flips, missing steps, inconsistent statistics,
# wrong pixels, ...) is reported. The pixel faults need the idx files (skipped without them).
add_test(NAME summary_logdir_checker
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/synth_logdir.py --selftest
                 --idx_dir ${MNIST_IDX_DIR})
set_tests_properties(summary_logdir_checker PROPERTIES LABELS cpu TIMEOUT 120)

# What a training run writes to --log_dir, read back by that checker (tests/e2e/summaries.sh):
# fresh, resumed into the same folder, --summary_every 1, softmax; real MNIST over loopback.
add_test(NAME e2e_summaries_cpu
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../e2e/summaries.sh $<TARGET_FILE:mnist-train>
                 $<TARGET_FILE:mnist_test_server> ${MNIST_IDX_DIR} cpu)
set_tests_properties(e2e_summaries_cpu PROPERTIES LABELS "cpu;e2e" TIMEOUT 300)
# The same runs, each folder also through TensorBoard's loaders; skipped (77) without the package.
add_test(NAME e2e_summaries_tensorboard
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../e2e/summaries.sh $<TARGET_FILE:mnist-train>
                 $<TARGET_FILE:mnist_test_server> ${MNIST_IDX_DIR} cpu)
set_tests_properties(e2e_summaries_tensorboard PROPERTIES LABELS "cpu;e2e" TIMEOUT 300
  SKIP_RETURN_CODE 77 ENVIRONMENT SUMMARIES_TENSORBOARD=required)
# The same on both GPU backends. Skip (77) without a GPU.
add_test(NAME e2e_summaries_gpu
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../e2e/summaries.sh $<TARGET_FILE:mnist-train>
                 $<TARGET_FILE:mnist_test_server> ${MNIST_IDX_DIR} cuda)
add_test(NAME e2e_summaries_cublas
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../e2e/summaries.sh $<TARGET_FILE:mnist-train>
                 $<TARGET_FILE:mnist_test_server> ${MNIST_IDX_DIR} cublas)
set_tests_properties(e2e_summaries_gpu e2e_summaries_cublas PROPERTIES
  LABELS "gpu;e2e" SKIP_RETURN_CODE 77 TIMEOUT 600)
