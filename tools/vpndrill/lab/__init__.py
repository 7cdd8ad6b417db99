"""Labs for tests and benchmarks: real SoftEther programs, network namespaces,
vpnd in a namespace, and the clusters benchmarks compare."""
