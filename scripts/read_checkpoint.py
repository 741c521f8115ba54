"""Read a T.A.R.S. checkpoint with Python's safetensors package and act with numpy alone."""

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def main(directory: str) -> None:
    path = Path(directory)
    tensors = load_file(path / "model.safetensors")
    meta = json.loads((path / "metadata.json").read_text())
    print(f"{meta['algo']} on {meta['env_id']}, {meta['timesteps']} steps, network {meta['network']}")
    for name, value in sorted(tensors.items()):
        print(f"  {name:<16} {value.dtype} {list(value.shape)}")
    prefix = {"categorical": "pi", "gaussian": "pi", "q_values": "q_net", "deterministic": "actor"}[meta["network"]["kind"]]
    act = np.tanh if meta["network"]["activation"] == "tanh" else (lambda x: np.maximum(x, 0.0))
    n_layers = len(meta["network"]["dims"]) - 1
    obs = np.array([[0.0, 0.0, 0.05, 0.0], [0.0, 0.0, -0.05, 0.0]], dtype=np.float32)[:, : meta["observation_dim"]]
    x = obs
    for layer in range(n_layers):
        x = x @ tensors[f"{prefix}.{2 * layer}.weight"].T + tensors[f"{prefix}.{2 * layer}.bias"]
        if layer + 1 < n_layers:
            x = act(x)
    print("network outputs:", x.tolist())
    if meta["action_kind"] == "discrete":
        print("greedy actions:", x.argmax(axis=1).tolist())


if __name__ == "__main__":
    main(sys.argv[1])
