{
  "targets": [
    {
      "target_name": "plinth_mpi",
      "sources": ["src/mpi.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=gnu++17", "-O2", "-fexceptions", "<!@(mpicxx --showme:compile)"],
      "libraries": ["<!@(mpicxx --showme:link)"]
    }
  ]
}
