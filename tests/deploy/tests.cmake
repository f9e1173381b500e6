# Included from tests/CMakeLists.txt.
# Deployment, without Docker or a cluster: the k8s manifests and every kustomization against the
# upstream API schema and Pod Security "restricted", both images' Dockerfiles statically, and each
# Job's contract with the binary (args, output volumes, resume, exit codes). Node packages:
# scripts/test.sh runs npm ci in tests/deploy. The kustomizations are rendered with kubectl
# (kustomize inside): without kubectl those tests report as skipped, except under CI.
set(MNIST_DEPLOY_DIR ${CMAKE_CURRENT_LIST_DIR})
set(MNIST_K8S_DIR ${PROJECT_SOURCE_DIR}/k8s)

# The plain manifests as written (kustomize's own files are not API objects).
file(GLOB_RECURSE MNIST_K8S_MANIFESTS CONFIGURE_DEPENDS ${MNIST_K8S_DIR}/*.yaml)
list(FILTER MNIST_K8S_MANIFESTS EXCLUDE REGEX "/kustomization\\.yaml$")
add_test(NAME deploy_k8s_manifests COMMAND node ${MNIST_DEPLOY_DIR}/validate_k8s.mjs ${MNIST_K8S_MANIFESTS})
add_test(NAME deploy_dockerfile COMMAND node ${MNIST_DEPLOY_DIR}/check_dockerfile.mjs
         ${PROJECT_SOURCE_DIR}/Dockerfile.gpu ${PROJECT_SOURCE_DIR}/.dockerignore ${MNIST_K8S_DIR}/job.yaml)
add_test(NAME deploy_tensorboard_image COMMAND node ${MNIST_DEPLOY_DIR}/check_dockerfile.mjs --tensorboard
         ${PROJECT_SOURCE_DIR}/Dockerfile.tensorboard ${MNIST_K8S_DIR}/components/persistent/tensorboard.yaml)
add_test(NAME deploy_readme_paths COMMAND bash ${MNIST_DEPLOY_DIR}/readme_paths.sh ${PROJECT_SOURCE_DIR})
# The set-up's prerequisite check (scripts/check-prereqs.sh) against fake CUDA installations.
add_test(NAME deploy_check_prereqs COMMAND bash ${MNIST_DEPLOY_DIR}/check_prereqs.sh ${PROJECT_SOURCE_DIR})
add_test(NAME deploy_job_contract COMMAND bash ${MNIST_DEPLOY_DIR}/job_contract.sh
         $<TARGET_FILE:mnist-train> ${MNIST_K8S_DIR}/job.yaml)
add_test(NAME deploy_benchmark_contract COMMAND bash ${MNIST_DEPLOY_DIR}/job_contract.sh
         $<TARGET_FILE:mnist-train> ${MNIST_K8S_DIR}/benchmark/benchmark-job.yaml)
# The manifests' mnist-train images carry CMakeLists.txt's version (VERSION, VERSION-baseline).
add_test(NAME deploy_image_tags COMMAND bash ${MNIST_DEPLOY_DIR}/image_tags.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy_k8s_manifests deploy_dockerfile deploy_tensorboard_image deploy_readme_paths
  deploy_check_prereqs deploy_job_contract deploy_benchmark_contract deploy_image_tags
  PROPERTIES LABELS "cpu;deploy" TIMEOUT 300)

# scripts/check-pool.sh against a stand-in kubectl (fake_kubectl.mjs) answering from pool_fixtures/,
# hand-written in the shape of the API's answers (no cluster runs here): verdicts, exit codes, the
# deadline, unhealthy GPUs, odd node names, and the Jobs it creates
# (valid, pinned, all of a node's GPUs). The GKE GPU type: unset, the gke overlays do not render.
add_test(NAME deploy_check_pool COMMAND bash ${MNIST_DEPLOY_DIR}/check_pool.sh ${PROJECT_SOURCE_DIR})
add_test(NAME deploy_gke_accelerator COMMAND bash ${MNIST_DEPLOY_DIR}/gke_accelerator.sh ${MNIST_K8S_DIR})
# The optional runtimeclass component, on the base Job and TensorBoard (tests/deploy/variants).
add_test(NAME deploy_render_runtimeclass COMMAND bash ${MNIST_DEPLOY_DIR}/check_overlay.sh
         ${MNIST_DEPLOY_DIR}/variants/runtimeclass "runtimeclass,persistent")
set_tests_properties(deploy_check_pool deploy_gke_accelerator deploy_render_runtimeclass PROPERTIES
  LABELS "cpu;deploy" TIMEOUT 300 SKIP_RETURN_CODE 77)

# Every kustomization (k8s/, k8s/base, k8s/benchmark, k8s/multinode, k8s/pool,
# k8s/overlays/CLOUD[/persistent|/benchmark|/multinode|/pool]; the gke ones with a GPU type set, as
# the operator must):
#   deploy_render_NAME    rendered, schema, Pod Security, agreement, and what its path promises
#                         (multinode: an Indexed Job whose completions, --world_size, subdomain,
#                         headless Service and --rendezvous agree, its Secret (--rendezvous_secret_file)
#                         mounted read-only, a NetworkPolicy admitting only its own pods; check_policy.mjs)
#                         (pool: check-pool.sh's template, pinned by node affinity, backoffLimit 0)
#   deploy_contract_NAME  (overlays, k8s/pool) each rendered Job's contract with the binary (an Indexed Job:
#                         each pod's JOB_COMPLETION_INDEX accepted as its rank, none and
#                         `completions` refused; job_contract.sh)
file(GLOB_RECURSE MNIST_KUSTOMIZATIONS CONFIGURE_DEPENDS ${MNIST_K8S_DIR}/kustomization.yaml)
list(FILTER MNIST_KUSTOMIZATIONS EXCLUDE REGEX "/components/")
foreach(kustomization IN LISTS MNIST_KUSTOMIZATIONS)
  get_filename_component(dir ${kustomization} DIRECTORY)
  file(RELATIVE_PATH rel ${MNIST_K8S_DIR} ${dir})
  set(expect "")
  if(rel STREQUAL "")
    set(name k8s)
  else()
    string(REGEX REPLACE "^overlays/" "" name ${rel})
    string(REPLACE "/" "_" name ${name})
  endif()
  if(rel STREQUAL "multinode" OR rel STREQUAL "pool")
    set(expect ${rel})
  endif()
  set(env "")
  if(rel MATCHES "^overlays/gke(/|$)")
    set(env ENVIRONMENT MNIST_GKE_ACCELERATOR=nvidia-l4)
  endif()
  if(rel STREQUAL "pool")
    add_test(NAME deploy_contract_pool COMMAND bash ${MNIST_DEPLOY_DIR}/job_contract.sh
             $<TARGET_FILE:mnist-train> ${dir})
    set_tests_properties(deploy_contract_pool PROPERTIES LABELS "cpu;deploy" TIMEOUT 300 SKIP_RETURN_CODE 77)
  endif()
  if(rel MATCHES "^overlays/([^/]+)(/([^/]+))?$")
    set(expect ${CMAKE_MATCH_1})
    if(CMAKE_MATCH_3)
      string(APPEND expect ",${CMAKE_MATCH_3}")
    endif()
    # The benchmark runs once, in plain/benchmark; the clouds' benchmark Jobs must have its args.
    set(reference "")
    if(rel MATCHES "/benchmark$" AND NOT rel STREQUAL "overlays/plain/benchmark")
      set(reference ${MNIST_K8S_DIR}/overlays/plain/benchmark)
    endif()
    # The sanitizer build (asan preset) leaves the CPU benchmark's minute to the release build,
    # as it does benchmark_cpu.
    if(NOT (MNIST_SANITIZE AND rel MATCHES "/benchmark$"))
      add_test(NAME deploy_contract_${name} COMMAND bash ${MNIST_DEPLOY_DIR}/job_contract.sh
               $<TARGET_FILE:mnist-train> ${dir} ${reference})
      set_tests_properties(deploy_contract_${name} PROPERTIES
        LABELS "cpu;deploy" TIMEOUT 300 SKIP_RETURN_CODE 77 ${env})
    endif()
  endif()
  add_test(NAME deploy_render_${name} COMMAND bash ${MNIST_DEPLOY_DIR}/check_overlay.sh ${dir} "${expect}")
  set_tests_properties(deploy_render_${name} PROPERTIES
    LABELS "cpu;deploy" TIMEOUT 300 SKIP_RETURN_CODE 77 ${env})
endforeach()

# The multi-node checks can fail: broken copies of k8s/multinode (a subdomain that is not the
# Service's name, completions other than --world_size, ...) must each be rejected.
add_test(NAME deploy_multinode_mutants COMMAND bash ${MNIST_DEPLOY_DIR}/multinode_mutants.sh
         $<TARGET_FILE:mnist-train> ${MNIST_K8S_DIR}/multinode)
set_tests_properties(deploy_multinode_mutants PROPERTIES
  LABELS "cpu;deploy" TIMEOUT 300 SKIP_RETURN_CODE 77)
