# Fuzzing in the regular build (included by tests/CMakeLists.txt). The libFuzzer targets are a
# clang project of their own (tests/fuzz/CMakeLists.txt, run by tests/fuzz/run.sh); here the same
# targets are linked with a plain main() (replay_main.cpp) that runs every seed and every past
# finding once, so each ctest run, and the asan preset's under ASan+UBSan, replays them.
set(MNIST_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})

# The checkpoint seeds are valid checkpoints, written at test time by the current encoder.
add_executable(fuzz_checkpoint_seeds ${MNIST_FUZZ_DIR}/checkpoint_seeds.cpp)
target_link_libraries(fuzz_checkpoint_seeds PRIVATE mnist_core mnist_warnings)
set(MNIST_FUZZ_GENERATED ${CMAKE_CURRENT_BINARY_DIR}/fuzz_generated)
add_test(NAME fuzz_generate_seeds
         COMMAND fuzz_checkpoint_seeds ${MNIST_FUZZ_GENERATED}/checkpoint)
set_tests_properties(fuzz_generate_seeds PROPERTIES LABELS "cpu;fuzz" FIXTURES_SETUP fuzz_seeds)

# The hand-made regressions (tests/fuzz/regressions/README.md) are all there, as their script makes them.
add_test(NAME fuzz_regressions_present
         COMMAND ${Python3_EXECUTABLE} ${MNIST_FUZZ_DIR}/make_regressions.py --check ${MNIST_FUZZ_DIR}/regressions)
set_tests_properties(fuzz_regressions_present PROPERTIES LABELS "cpu;fuzz" TIMEOUT 60)

foreach(target idx gzip checkpoint cli)
  add_executable(fuzz_replay_${target} ${MNIST_FUZZ_DIR}/fuzz_${target}.cpp
                 ${MNIST_FUZZ_DIR}/replay_main.cpp)
  target_include_directories(fuzz_replay_${target} PRIVATE ${MNIST_FUZZ_DIR})
  target_link_libraries(fuzz_replay_${target} PRIVATE mnist_core mnist_warnings)
  add_test(NAME fuzz_replay_${target}
           COMMAND fuzz_replay_${target} ${MNIST_FUZZ_DIR}/corpus/${target}
                   ${MNIST_FUZZ_GENERATED}/${target} ${MNIST_FUZZ_DIR}/regressions/${target})
  set_tests_properties(fuzz_replay_${target} PROPERTIES LABELS "cpu;fuzz" TIMEOUT 120
                       FIXTURES_REQUIRED fuzz_seeds)
endforeach()

# The command line from the outside: exit codes and messages of the real binary.
add_test(NAME cli_flags COMMAND bash ${PROJECT_SOURCE_DIR}/tests/e2e/cli_flags.sh
                                $<TARGET_FILE:mnist-train>)
set_tests_properties(cli_flags PROPERTIES LABELS "cpu;e2e" TIMEOUT 120)
