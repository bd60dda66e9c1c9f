# Writes OUT (build_info.cc) with VERSION and the git commit of SRC; run at every build, the
# file changes (and recompiles) only when the commit or the version does.
set(commit "unknown")
find_program(GIT git)
if(GIT)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --short=12 HEAD
    OUTPUT_VARIABLE head RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND head)
    set(commit ${head})
    execute_process(COMMAND ${GIT} -C ${SRC} status --porcelain --untracked-files=no
      OUTPUT_VARIABLE dirty RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND dirty)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
file(WRITE ${OUT}.tmp
  "#include \"client/build_info.h\"\n"
  "namespace calibd::build_info {\n"
  "const char* Version() { return \"${VERSION}\"; }\n"
  "const char* GitCommit() { return \"${commit}\"; }\n"
  "}  // namespace calibd::build_info\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
