# The thread pool is private to the io layer (src/io/thread_pool.h); its test reaches it through src/.
target_include_directories(test_io PRIVATE ${CMAKE_SOURCE_DIR}/src)
