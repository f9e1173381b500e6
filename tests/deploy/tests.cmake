# Included from tests/CMakeLists.txt.
# Deployment: k8s manifests against the upstream API schema, Dockerfile.gpu statically, and the
# Job's contract with the binary (args, exit codes). Node packages: scripts/test.sh runs npm ci.
file(GLOB MNIST_K8S_MANIFESTS ${PROJECT_SOURCE_DIR}/k8s/*.yaml)
add_test(NAME deploy_k8s_manifests COMMAND node ${CMAKE_CURRENT_LIST_DIR}/validate_k8s.mjs ${MNIST_K8S_MANIFESTS})
add_test(NAME deploy_dockerfile COMMAND node ${CMAKE_CURRENT_LIST_DIR}/check_dockerfile.mjs
         ${PROJECT_SOURCE_DIR}/Dockerfile.gpu ${PROJECT_SOURCE_DIR}/.dockerignore)
add_test(NAME deploy_job_contract COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/job_contract.sh
         $<TARGET_FILE:mnist-train> ${PROJECT_SOURCE_DIR}/k8s/job.yaml)
set_tests_properties(deploy_k8s_manifests deploy_dockerfile deploy_job_contract PROPERTIES LABELS "cpu;deploy" TIMEOUT 300)
