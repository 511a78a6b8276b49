{
  "targets": [
    {
      "target_name": "plinth_native",
      "sources": [
        "native/src/addon.cpp",
        "native/src/allocator.cpp",
        "native/src/threadpool.cpp",
        "native/src/dispatch.cpp",
        "native/src/isa_avx512.cpp",
        "native/src/isa_avx2.cpp",
        "native/src/isa_portable.cpp",
        "native/src/lowp.cpp",
        "native/src/lowp_avx512.cpp",
        "native/src/lowp_avx2.cpp",
        "native/src/lowp_portable.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/src"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2", "-O0"],
      "cflags": ["-O3", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp-simd", "-fvisibility=hidden"],
      "cflags_cc": ["-std=gnu++17", "-O3", "-fexceptions", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp-simd"],
      "ldflags": ["-pthread"]
    }
  ]
}
