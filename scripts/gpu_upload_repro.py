"""Why the side-stream upload crashed ("CUDA error: invalid argument"), shown in three small steps.

1. `pool`: torch.cuda.Stream() hands out a pool of 32 streams per priority, round-robin, so the 33rd
   stream is the 1st again; a high-priority stream is never one of them.
2. `mechanism`: thread A captures a CUDA graph on a stream (thread_local mode) while thread B copies
   and records an event on the *same* stream, as the prefetch thread did once a graph runner's fresh
   stream wrapped around onto the upload stream; with B on a stream of its own, nothing fails.
3. `pipeline-old` / `pipeline-new`: predict over the shapes val set (33 frame sizes, file source, so
   uploads come from the prefetch thread) with the old stream choice (a pool stream per runner and for
   uploads) and with gpu/streams.py. Each case runs in its own process: a CUDA error can poison one.

    PYTHONPATH=. python3 scripts/gpu_upload_repro.py            # all cases, one line each
"""

from __future__ import annotations

import subprocess
import sys
import threading
import traceback

import torch


def case_pool() -> str:
    first = torch.cuda.Stream()
    later = [torch.cuda.Stream() for _ in range(64)]
    again = [i + 1 for i, s in enumerate(later) if s.cuda_stream == first.cuda_stream]
    high = torch.cuda.Stream(priority=-1)
    clash = any(s.cuda_stream == high.cuda_stream for s in [first, *later])
    return f"stream #0 comes back as stream #{again}; a priority -1 stream equals a priority-0 one: {clash}"


def case_mechanism(shared: bool) -> str:
    """Capture on `capture`; another thread uploads on `copy` (the same stream when `shared`)."""
    capture = torch.cuda.Stream()
    copy = capture if shared else torch.cuda.Stream(priority=-1)
    host = torch.randint(0, 255, (1 << 22,), dtype=torch.uint8).pin_memory()
    dev = torch.empty(1 << 22, dtype=torch.uint8, device="cuda")
    x = torch.ones(1 << 20, device="cuda")
    inside, finished = threading.Event(), threading.Event()
    errors: dict[str, str] = {}

    def uploader() -> None:
        inside.wait(10)
        try:
            with torch.cuda.stream(copy):
                dev.copy_(host, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record(copy)
            torch.cuda.current_stream().wait_event(ready)  # the consumer's side of the handshake
            ready.synchronize()
        except Exception as e:  # reported below
            errors["upload thread"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        finished.set()

    t = threading.Thread(target=uploader)
    t.start()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, stream=capture, capture_error_mode="thread_local"):
            y = x * 2
            inside.set()
            finished.wait(10)
            y = y + 1
    except Exception as e:
        errors["capture thread"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    inside.set()
    t.join()
    torch.cuda.synchronize()
    ok = not errors and torch.equal(dev.cpu(), host)
    return f"{'FAILS' if not ok else 'ok'} {errors or ''}"


def case_pipeline(old: bool) -> str:
    from tests.conftest import MODELS, SHAPES
    from ultralytics import YOLO
    from ultralytics.gpu import graphs, upload

    if old:  # what the code did before gpu/streams.py: a fresh pool stream per graph runner and for uploads
        graphs.graph_stream = lambda device: (torch.cuda.Stream(device), threading.RLock())
        upload.copy_stream = lambda device: torch.cuda.Stream(device)
    files = [str(p) for p in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:100]]
    model = YOLO(MODELS / "shapes_yolov8n.pt")
    done = 0
    try:
        for _ in range(3):  # a race: the old code failed on the 56th image in one run and not at all in another
            for imgsz in (320, 640):
                for half in (False, True):
                    for _ in model.predict(files, device=0, imgsz=imgsz, half=half, stream=True, verbose=False):
                        done += 1
    except Exception as e:
        return f"FAILS after {done} images: {type(e).__name__}: {str(e).splitlines()[0]}"
    return f"ok, {done} images"


CASES = {
    "pool": case_pool,
    "mechanism-same-stream": lambda: case_mechanism(True),
    "mechanism-own-stream": lambda: case_mechanism(False),
    "pipeline-old": lambda: case_pipeline(True),
    "pipeline-new": lambda: case_pipeline(False),
}


def main() -> int:
    if len(sys.argv) > 1:
        try:
            print(CASES[sys.argv[1]]())
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 1
    for name in CASES:
        try:
            run = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, timeout=120)
            lines = (run.stdout.strip() or run.stderr.strip() or "(no output)").splitlines()
            print(f"{name:<24} {lines[-1]}", flush=True)
            if run.returncode != 0:
                print("  " + "\n  ".join(run.stderr.strip().splitlines()[-6:]))
        except subprocess.TimeoutExpired:
            print(f"{name:<24} TIMEOUT (120 s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
