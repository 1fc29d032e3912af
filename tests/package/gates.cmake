# CTest script (CMakeLists.txt, test package.gates_reject_unformatted_and_warnings):
# the CI gates of scripts/test.sh really fail.
#  1. scripts/check_format.sh rejects an unformatted file (naming it) and accepts it
#     once clang-format has fixed it;
#  2. with SAMDEBLUR_WERROR=ON a warning in a target built with samdeblur_warnings()
#     fails the build; with OFF it builds (the flags are what tests this, not the code).
# Inputs: -DSOURCE_DIR -DWORK_DIR [-DGENERATOR]
foreach(var SOURCE_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "gates.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# 1. Formatting. The file lies outside the tree: .clang-format is found by copying it.
file(COPY "${SOURCE_DIR}/.clang-format" DESTINATION "${WORK_DIR}")
set(ugly "${WORK_DIR}/ugly.cpp")
file(WRITE "${ugly}" "int  main( ){ return 0 ;}\n")
execute_process(COMMAND "${SOURCE_DIR}/scripts/check_format.sh" "${ugly}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR NOT out MATCHES "ugly.cpp")
  message(FATAL_ERROR "check_format.sh accepted an unformatted file (${rc}):\n${out}")
endif()
execute_process(COMMAND "${SOURCE_DIR}/scripts/check_format.sh" --fix "${ugly}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
execute_process(COMMAND "${SOURCE_DIR}/scripts/check_format.sh" "${ugly}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_format.sh rejected a formatted file (${rc}):\n${out}")
endif()

# 2. Warnings.
set(gen_args)
if(GENERATOR)
  set(gen_args -G "${GENERATOR}")
endif()
foreach(werror ON OFF)
  set(build "${WORK_DIR}/werror-${werror}")
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package/warning_project"
    -B "${build}" ${gen_args} "-DSAMDEBLUR_SOURCE_DIR=${SOURCE_DIR}" -DSAMDEBLUR_WERROR=${werror}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configuring the warning project failed (${rc}):\n${out}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${build}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(werror AND (rc EQUAL 0 OR NOT out MATCHES "unused"))
    message(FATAL_ERROR "SAMDEBLUR_WERROR=ON built code with a warning:\n${out}")
  elseif(NOT werror AND (NOT rc EQUAL 0 OR NOT out MATCHES "Wunused-variable"))
    message(FATAL_ERROR "SAMDEBLUR_WERROR=OFF: expected a successful build with a warning "
                        "(${rc}):\n${out}")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
