"""TEST DOUBLE: the entrypoint of a stand-in vLLM engine image (extensions/molecule/non_root_home).

Takes the container command a plan gives a vLLM image (``MODEL --flag ... --port N``), refuses to start unless the
model's snapshot is in the Hugging Face cache the container mounts (``/root/.cache/huggingface``, as a vLLM
engine with ``HF_HUB_OFFLINE=1`` would), and then serves the vLLM API with the stand-in worker
(``stand_in_worker.py``, next to this file in the image). Standard library only.
"""

import os
import sys

HF_HOME = "/root/.cache/huggingface"


def main(argv):
    model = argv[0]
    port = argv[argv.index("--port") + 1]
    snapshots = os.path.join(HF_HOME, "hub", "models--" + model.replace("/", "--"), "snapshots")
    found = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
    complete = [s for s in found if os.path.isfile(os.path.join(snapshots, s, "model.safetensors.index.json"))]
    if not complete:
        sys.exit("stand-in engine: no snapshot of %s under %s (found %s)" % (model, snapshots, found))
    print("stand-in engine: %s snapshot %s" % (model, complete[-1]), flush=True)
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stand_in_worker.py")
    os.execv(sys.executable, [sys.executable, worker, "--port", port, "--model", model])


if __name__ == "__main__":
    main(sys.argv[1:])
