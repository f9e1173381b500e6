# Each GPU's speed against its own promise (src/gpu/speed_probe.h): the verdict on injected figures
# (cpu), and the probe with its kernels on device 0 (gpu, skipped without a GPU).
add_executable(speed_tests speed/test_speed_probe.cpp)
target_link_libraries(speed_tests PRIVATE mnist_core mnist_test_support GTest::gtest_main mnist_warnings)
gtest_discover_tests(speed_tests PROPERTIES LABELS cpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")

add_executable(speed_gpu_tests speed/test_speed_probe_gpu.cpp)
target_link_libraries(speed_gpu_tests PRIVATE mnist_core mnist_test_support GTest::gtest_main mnist_warnings)
gtest_discover_tests(speed_gpu_tests PROPERTIES LABELS gpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")
