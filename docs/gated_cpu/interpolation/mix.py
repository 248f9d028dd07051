"""base + alpha * (trained - base), saved as a model folder."""
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
from hf_jacobi.loading import load_model

trained_dir = Path(sys.argv[1]); alphas = [float(a) for a in sys.argv[2:]]
base, _ = load_model()
base_sd = base.state_dict()
trained = load_file(trained_dir / "model.safetensors")
for alpha in alphas:
    out = Path(f"runs/interp/a{int(alpha*100)}")
    shutil.copytree(trained_dir, out, dirs_exist_ok=True)
    mixed = {}
    for k, v in trained.items():
        b = base_sd[k].to(v.dtype)
        mixed[k] = (b + alpha * (v - b)).contiguous()
    save_file(mixed, out / "model.safetensors", metadata={"format": "pt"})
    print(out, sum((mixed[k]-base_sd[k]).abs().sum().item() for k in mixed))
