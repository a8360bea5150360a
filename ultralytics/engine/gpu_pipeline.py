"""The CUDA path of `DetectionPredictor`: upload uint8 once, letterbox on the GPU, run the network
through CUDA graphs, NMS on the GPU, one device→host copy per batch.

The predictor keeps its stage methods (preprocess / inference / postprocess) and hands them here when
the model lives on a CUDA device; the CPU path is untouched. Everything that is worth keeping between
predict calls (pinned buffers, captured graphs) hangs off the model object, so repeated calls on one
`YOLO` reuse it and several threads using one model share one set, guarded by locks.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ultralytics.data.augment import letterbox_params
from ultralytics.data.prefetch import Prefetcher
from ultralytics.engine.results import Results
from ultralytics.gpu.graphs import CudaGraphRunner, GraphFamily
from ultralytics.gpu.letterbox import letterbox_batch, letterbox_geometry
from ultralytics.gpu.nms import BatchedNMS, PendingNMS
from ultralytics.gpu.streams import letterbox_stream
from ultralytics.gpu.upload import DeviceFrames, PinnedUploader
from ultralytics.utils.ops import non_max_suppression

MAX_GRAPHS = 8  # captured input shapes kept per model
# From this many same-size frames a batch is letterboxed eagerly on the letterbox stream, beside the
# previous batch's network, instead of as a graph on the graph stream, after it. Eager launches cost
# ~0.1 ms of host time, worth it only where the letterbox's GPU time is large; 0 turns it off.
OVERLAP_LETTERBOX_FROM_BATCH = 8


class UploadedImages(list):
    """The batch's original BGR arrays (a plain list to every consumer) plus their device copy."""

    device_frames: DeviceFrames


class _ModelState:
    """What one model keeps across predict calls on a CUDA device."""

    def __init__(self, model: Any, use_graphs: bool):
        self.uploader = PinnedUploader(model.device)
        use_graphs = use_graphs and model.device.type == "cuda"
        # the backend's forward, not the AutoBackend's: a bound method of the dict's key would keep it alive
        backend = model.backend
        self.graphs = CudaGraphRunner(backend.forward, model.device, MAX_GRAPHS) if use_graphs else None
        # a static TensorRT engine is graphed only at its one input shape (AutoBackend splits/pads the rest)
        self.graph_shape = tuple(backend.input.shape) if _static_tensorrt(model) else None
        # letterbox (per frame size) and NMS (per settings) are short chains of small kernels: on CUDA
        # they replay as graphs too, whatever the backend
        cuda = model.device.type == "cuda"
        self.letterbox_graphs = GraphFamily(model.device) if cuda else None
        self.letterbox_stream = letterbox_stream(model.device) if cuda else None
        self.nms_graphs = GraphFamily(model.device) if cuda else None


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state_for(model: Any) -> _ModelState:
    with _STATES_LOCK:
        state = _STATES.get(model)
        if state is None:
            # Network graphs for the PyTorch backend (pure tensor work on one stream) and for static
            # TensorRT engines (fixed buffers, enqueued on the current stream: capturable, as upstream
            # does). Dynamic engines re-allocate their buffers per shape, so a graph of an earlier shape
            # would point at freed memory: they stay eager until the backend keeps buffers per shape.
            state = _STATES[model] = _ModelState(model, use_graphs=bool(model.pt) or _static_tensorrt(model))
        return state


def _static_tensorrt(model: Any) -> bool:
    backend = getattr(model, "backend", None)
    return type(backend).__name__ == "TensorRTBackend" and not backend.dynamic and hasattr(backend, "input")


class GpuPipeline:
    """Device-side stages for one predictor; `model` is an AutoBackend.

    Meant for CUDA devices; on the CPU it runs the same tensor code without graphs or pinned memory,
    which is how CI checks it against the OpenCV path.
    """

    def __init__(self, model: Any, args: Any, use_graphs: bool = True):
        self.model = model
        self.state = _state_for(model)
        self.use_graphs = use_graphs and self.state.graphs is not None
        conf = args.conf if args.conf is not None else 0.25
        classes = args.classes
        if classes is not None and not isinstance(classes, list | tuple):
            classes = [classes]
        self.nms = BatchedNMS(
            conf_thres=float(conf),
            iou_thres=float(args.iou),
            classes=None if classes is None else [int(c) for c in classes],
            agnostic=bool(args.agnostic_nms),
            max_det=int(args.max_det),
            graphs=self.state.nms_graphs,
        )

    # ------------------------------------------------------------------ source side
    def upload(self, images: list[np.ndarray]) -> DeviceFrames:
        return self.state.uploader.upload(images)

    def prefetch(self, batches: Iterable[tuple], depth: int = 2) -> Iterator[tuple]:
        """Decode and upload batch i+1 in a background thread while batch i runs."""

        def attach_upload(batch: tuple) -> tuple:
            paths, images, infos = batch
            if isinstance(images, list) and images and all(isinstance(im, np.ndarray) for im in images):
                wrapped = UploadedImages(images)
                wrapped.device_frames = self.upload(images)
                images = wrapped
            return paths, images, infos

        return iter(Prefetcher(batches, attach_upload, depth=depth))

    def stage_timers(self, n: int) -> tuple | None:
        """Event-based stage timers on CUDA (no synchronisation per stage); None elsewhere."""
        if self.model.device.type != "cuda":
            return None
        from ultralytics.gpu.timing import CudaEventProfile

        return tuple(CudaEventProfile(self.model.device) for _ in range(n))

    # ------------------------------------------------------------------ stages
    def preprocess(self, images: list[np.ndarray], imgsz: tuple[int, int], *, auto: bool, stride: int) -> torch.Tensor:
        """BGR uint8 arrays (uploaded already when they came through `prefetch`) → BCHW RGB 0..1."""
        frames = getattr(images, "device_frames", None) or self.upload(list(images))
        per_shape = {hw: letterbox_geometry(hw, imgsz, auto=auto, stride=stride) for hw in set(frames.host_shapes)}
        geometries = [per_shape[hw] for hw in frames.host_shapes]
        dtype = self.model.dtype
        stream = self.state.letterbox_stream
        batch = frames.frames
        if stream is not None and isinstance(batch, torch.Tensor) and 0 < OVERLAP_LETTERBOX_FROM_BATCH <= len(batch):
            return self._letterbox_beside(frames, geometries, dtype, stream)
        frames.wait()
        graphs = self.state.letterbox_graphs
        if graphs is not None and isinstance(frames.frames, torch.Tensor):  # one frame size: one geometry
            geo = geometries[0]
            return graphs((geo, dtype), lambda: lambda f: letterbox_batch(f, [geo] * f.shape[0], dtype), frames.frames)
        return letterbox_batch(frames.frames, geometries, dtype=dtype)

    @staticmethod
    def _letterbox_beside(
        frames: DeviceFrames, geometries: list, dtype: torch.dtype, stream: torch.cuda.Stream
    ) -> torch.Tensor:
        """Letterbox on `stream`, which waits only for the upload (not for the caller's earlier work,
        e.g. the previous network); the caller's stream then waits for the letterbox."""
        caller = torch.cuda.current_stream(stream.device)
        with torch.cuda.stream(stream):
            frames.wait()  # the letterbox stream waits for the copy; the frames are marked used there
            im = letterbox_batch(frames.frames, geometries, dtype=dtype)
        caller.wait_stream(stream)
        im.record_stream(caller)  # allocated on the letterbox stream, read on the caller's
        return im

    def inference(self, im: torch.Tensor) -> torch.Tensor:
        shape = self.state.graph_shape
        if self.use_graphs and (shape is None or tuple(im.shape) == shape):
            return self.state.graphs(im.to(self.model.dtype))
        return self.model(im)

    def postprocess(
        self, preds: torch.Tensor, im: torch.Tensor, orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        """NMS on the device, one copy of every image's detections to the host, boxes scaled there."""
        return self.finish_postprocess(self.nms.launch(preds), im.shape[2:], orig_imgs, paths)

    def finish_postprocess(
        self, pending: PendingNMS, im_hw: tuple[int, ...], orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        dets = self.nms.finish(pending)
        if dets is None:  # thousands of candidates per image (very low conf): sort-based NMS instead
            n = self.nms
            found = non_max_suppression(
                pending.preds.float(),
                n.conf_thres,
                n.iou_thres,
                classes=n.classes,
                agnostic=n.agnostic,
                max_det=n.max_det,
            )
            dets = [d.cpu().numpy() for d in found]
        scaled = scale_to_originals(dets, im_hw, [orig.shape for orig in orig_imgs])
        names = self.model.names
        return [
            Results(orig, path=path, names=names, boxes=torch.from_numpy(det))
            for det, orig, path in zip(scaled, orig_imgs, paths)
        ]

    # ------------------------------------------------------------------ driver
    def pipelined(
        self,
        batches: Iterable[tuple],
        profilers: tuple,
        preprocess: Callable[[Any], torch.Tensor],
        inference: Callable[[torch.Tensor], torch.Tensor],
        originals: Callable[[Any], list[np.ndarray]],
    ) -> Iterator[tuple]:
        """(paths, images, infos, im, results) per batch, like the predictor's sequential loop, but
        batch i+1 is enqueued on the GPU before the host waits for batch i's detections, so building
        Results (and Python in general) overlaps the GPU instead of alternating with it."""
        pending = None
        for paths, images, infos in batches:
            with profilers[0]:
                im = preprocess(images)
            with profilers[1]:
                preds = inference(im)
            with profilers[2]:
                nms = self.nms.launch(preds)
            timings = [p.take() if hasattr(p, "take") else None for p in profilers]
            if pending is not None:
                yield self._finish(profilers, *pending)
            pending = (paths, images, infos, im, nms, originals, timings)
        if pending is not None:
            yield self._finish(profilers, *pending)

    def _finish(self, profilers, paths, images, infos, im, nms, originals, timings) -> tuple:
        results = self.finish_postprocess(nms, im.shape[2:], originals(images), paths)
        for profiler, pair in zip(profilers, timings):
            if pair is not None:
                profiler.publish(pair)  # this batch's own stage times; its events are complete
        return paths, images, infos, im, results


def scale_to_originals(
    dets: list[np.ndarray], im_hw: tuple[int, ...], orig_shapes: list[tuple[int, ...]]
) -> list[np.ndarray]:
    """Every image's (N, 6) detections mapped from the letterboxed batch back to its original image, as
    fresh arrays (the inputs may be views of a reused host buffer).

    The same arithmetic as `ops.scale_boxes` per image (subtract the pad, divide by the gain in
    float32, clip), done once for the whole batch: at batch 32, 32 calls of a dozen tiny numpy ops each
    held the GIL for ~1 ms per batch, time the prefetch thread's staging then waited for.
    """
    if not dets:
        return []
    counts = [len(d) for d in dets]
    rows = np.concatenate(dets)
    if rows.dtype != np.float32:
        rows = rows.astype(np.float32)
    # per original shape: pad x/y, gain x/y, width, height (the values scale_boxes derives)
    params = {shape: _unletterbox(im_hw, shape) for shape in set(orig_shapes)}
    if len(params) == 1:
        per_row = np.array(next(iter(params.values())), np.float32)[None, :]
    else:
        per_image = np.array([params[shape] for shape in orig_shapes], np.float32)
        per_row = np.repeat(per_image, counts, axis=0)
    pad, gain, size = per_row[:, 0:2], per_row[:, 2:4], per_row[:, 4:6]
    for xy in (rows[:, 0:2], rows[:, 2:4]):  # (x1, y1), then (x2, y2)
        xy -= pad
        xy /= gain
        np.clip(xy, 0, size, out=xy)
    return np.split(rows, np.cumsum(counts)[:-1])


def _unletterbox(im_hw: tuple[int, ...], orig_shape: tuple[int, ...]) -> tuple[float, ...]:
    """(pad_x, pad_y, gain_x, gain_y, w, h) that `ops.scale_boxes` uses for one original shape."""
    p = letterbox_params(tuple(orig_shape[:2]), tuple(im_hw[:2]), auto=False)
    gain_x, gain_y = p.new_unpad[0] / orig_shape[1], p.new_unpad[1] / orig_shape[0]
    return p.left, p.top, gain_x, gain_y, orig_shape[1], orig_shape[0]
