# Included from tests/CMakeLists.txt.
# The daemon-less OCI images (scripts/build-image.sh, docs/IMAGE.md) of the mnist-train under test:
# built (image_build, the fixture), built again to the same digest, their configuration and layers
# checked, then run with an OCI runtime (scripts/run-image.sh) as a Job runs them, without a GPU.
# Without umoci or runc/crun, or not as root, they report as skipped, except under CI. An image of
# the sanitizer build is no release artefact: the asan preset leaves them out.
if(NOT MNIST_SANITIZE)
  set(MNIST_IMAGE_TESTS ${CMAKE_CURRENT_LIST_DIR})
  set(MNIST_IMAGE_OUT ${CMAKE_CURRENT_BINARY_DIR}/image)
  set(MNIST_CUDA_LIB_DIR "${CUDAToolkit_LIBRARY_DIR}")
  add_test(NAME image_build COMMAND bash ${MNIST_IMAGE_TESTS}/build.sh $<TARGET_FILE:mnist-train> ${MNIST_IMAGE_OUT})
  set_tests_properties(image_build PROPERTIES FIXTURES_SETUP mnist_image TIMEOUT 600
    ENVIRONMENT "CUDA_LIB_DIR=${MNIST_CUDA_LIB_DIR}")
  add_test(NAME image_reproducible COMMAND bash ${MNIST_IMAGE_TESTS}/reproducible.sh
           $<TARGET_FILE:mnist-train> ${MNIST_IMAGE_OUT})
  set_tests_properties(image_reproducible PROPERTIES ENVIRONMENT "CUDA_LIB_DIR=${MNIST_CUDA_LIB_DIR}")
  add_test(NAME image_config COMMAND bash ${MNIST_IMAGE_TESTS}/config.sh ${MNIST_IMAGE_OUT} ${PROJECT_VERSION}
           ${MNIST_CUDA_LIB_DIR})
  set(MNIST_IMAGE_CHECKS image_reproducible image_config)
  foreach(case IN ITEMS version dry_run no_gpu read_only_root train_cpu cublas_missing baseline_libraries
                    nccl_resolves)
    add_test(NAME image_run_${case} COMMAND bash ${MNIST_IMAGE_TESTS}/run.sh ${case} ${MNIST_IMAGE_OUT}
             ${PROJECT_VERSION} ${MNIST_IDX_DIR})
    list(APPEND MNIST_IMAGE_CHECKS image_run_${case})
  endforeach()
  set_tests_properties(${MNIST_IMAGE_CHECKS} PROPERTIES FIXTURES_REQUIRED mnist_image TIMEOUT 300)
  set_tests_properties(image_build ${MNIST_IMAGE_CHECKS} PROPERTIES LABELS "cpu;image" SKIP_RETURN_CODE 77)
endif()
