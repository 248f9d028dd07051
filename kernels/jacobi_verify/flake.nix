# Entry point for kernel-builder's Nix builds (`kernel-builder build-and-copy`, `kernel-builder devshell`).
# Not exercised by the tests: build/ is written by build_local.py, which needs no Nix.
{
  description = "jacobi-verify: the Jacobi decoding verification step as a Triton kernel";

  inputs = {
    kernel-builder.url = "github:huggingface/kernels";
  };

  outputs =
    { self, kernel-builder }:
    kernel-builder.lib.genKernelFlakeOutputs {
      inherit self;
      path = ./.;
    };
}
