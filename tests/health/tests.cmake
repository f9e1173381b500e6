# GPU health (src/gpu/health.h). In CI a stand-in NVML (fake_nvml.cpp, two builds: every entry
# point, and an old driver's few) plays the GPU; health_gpu_tests reads the real NVML.
add_library(fake_nvml SHARED ${CMAKE_CURRENT_LIST_DIR}/fake_nvml.cpp)
add_library(fake_nvml_minimal SHARED ${CMAKE_CURRENT_LIST_DIR}/fake_nvml.cpp)
target_compile_definitions(fake_nvml_minimal PRIVATE FAKE_NVML_MINIMAL)
foreach(fake IN ITEMS fake_nvml fake_nvml_minimal)
  target_include_directories(${fake} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${fake} PRIVATE mnist_warnings)
endforeach()

# Loaded through MNIST_TEST_NVML_LIBRARY, never linked: the paths come in as compile definitions.
# The node check's decision (tests/app/test_node_check.cpp) runs on the same stand-in.
add_executable(health_tests ${CMAKE_CURRENT_LIST_DIR}/test_health.cpp
  ${PROJECT_SOURCE_DIR}/tests/app/test_node_check.cpp)
target_compile_definitions(health_tests PRIVATE
  FAKE_NVML_LIBRARY="$<TARGET_FILE:fake_nvml>"
  FAKE_NVML_MINIMAL_LIBRARY="$<TARGET_FILE:fake_nvml_minimal>")
add_dependencies(health_tests fake_nvml fake_nvml_minimal)
target_link_libraries(health_tests PRIVATE mnist_core GTest::gtest_main ${CMAKE_DL_LIBS} mnist_warnings)
gtest_discover_tests(health_tests PROPERTIES LABELS cpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")

# The real NVML on device 0 (label gpu; skips without a GPU or without NVML).
add_executable(health_gpu_tests ${CMAKE_CURRENT_LIST_DIR}/test_health_gpu.cpp)
target_link_libraries(health_gpu_tests PRIVATE mnist_core mnist_test_support GTest::gtest_main mnist_warnings)
gtest_discover_tests(health_gpu_tests PROPERTIES LABELS gpu SKIP_REGULAR_EXPRESSION "  SKIPPED ")
