# CTest script (CMakeLists.txt, test package.install_and_use_example): installs the
# built samdeblur into WORK_DIR/prefix, then configures, builds and runs examples/
# against that prefix only, as a downstream project would.
# Inputs: -DSOURCE_DIR -DBINARY_DIR -DWORK_DIR [-DGENERATOR]
foreach(var SOURCE_DIR BINARY_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "install_and_use.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("install" ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${prefix}")
set(expected include/samdeblur/models/network.h)
if(EXISTS "${BINARY_DIR}/bin/sdb-eval")  # built unless SAMDEBLUR_BUILD_APPS=OFF
  list(APPEND expected bin/sdb-eval)
endif()
foreach(f ${expected})
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install: ${prefix}/${f} is missing")
  endif()
endforeach()
file(GLOB_RECURSE configs "${prefix}/*/samdeblurConfig.cmake")
file(GLOB_RECURSE stray "${prefix}/include/*.md")
if(NOT configs OR stray)
  message(FATAL_ERROR "install: samdeblurConfig.cmake missing or stray files: ${configs} ${stray}")
endif()

set(gen_args)
if(GENERATOR)
  set(gen_args -G "${GENERATOR}")
endif()
run("configure example" ${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples" -B "${WORK_DIR}/build"
    ${gen_args} -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}")
run("build example" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("run example" "${WORK_DIR}/build/deblur_example")
if(NOT last_output MATCHES "samdeblur example: 48x32, psnr [0-9.]+ dB")
  message(FATAL_ERROR "unexpected example output:\n${last_output}")
endif()
message(STATUS "${last_output}")
file(REMOVE_RECURSE "${WORK_DIR}")
