# samdeblur_warnings(<target>): the warnings our own code must build without
# (-Wall -Wextra). Third-party headers come in as SYSTEM include directories, so
# only samdeblur's files can trigger them. With SAMDEBLUR_WERROR=ON (scripts/test.sh)
# a warning fails the build. tests/package/gates.cmake checks both cases.
option(SAMDEBLUR_WERROR "Treat compiler warnings in our code as errors (scripts/test.sh turns it on)"
  OFF)

function(samdeblur_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(SAMDEBLUR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
