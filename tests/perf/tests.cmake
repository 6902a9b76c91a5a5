# The I/O engine tests compute expected checksums with xxHash itself.
if(TARGET test_perf)
  target_link_libraries(test_perf PRIVATE PkgConfig::XXHASH)
endif()
