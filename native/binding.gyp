{
  "targets": [
    {
      "target_name": "uwcore_native",
      "sources": ["uwcore_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
