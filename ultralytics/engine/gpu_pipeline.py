"""The CUDA path of `DetectionPredictor` (`GpuStages`): upload uint8 once, letterbox on the GPU, run
the network through CUDA graphs, NMS on the GPU, one device→host copy per batch.

The predictor picks these stages once when the model lives on a CUDA device (the CPU path is its
`CpuStages`); both have the same interface: preprocess / inference / postprocess / timers / run. Everything that is worth keeping between
predict calls (pinned buffers, captured graphs) hangs off the model object (`gpu_state`), so repeated calls on one
`YOLO` reuse it and several threads using one model share one set, guarded by locks.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ultralytics.data.augment import letterbox_params
from ultralytics.data.prefetch import Prefetcher
from ultralytics.engine.results import Results
from ultralytics.gpu.channels_last import network_input, network_memory_format
from ultralytics.gpu.graphs import CudaGraphRunner, GraphFamily
from ultralytics.gpu.letterbox import letterbox_batch
from ultralytics.gpu.nms import BatchedNMS, PendingNMS, capped_top_k
from ultralytics.gpu.streams import letterbox_stream
from ultralytics.gpu.upload import DeviceFrames, PinnedUploader
from ultralytics.utils.ops import filter_end2end, non_max_suppression
from ultralytics.utils.settings import settings

MAX_GRAPHS = 8  # captured input shapes kept per model
# From this many same-size frames a batch is letterboxed eagerly on the letterbox stream, beside the
# previous batch's network, instead of as a graph on the graph stream, after it. Eager launches cost
# ~0.1 ms of host time, worth it only where the letterbox's GPU time is large; 0 turns it off.
OVERLAP_LETTERBOX_FROM_BATCH = 8
# Same-size batches run letterbox + network + NMS as ONE CUDA graph (`fused_frames`) when they have fewer
# frames than FUSED_BELOW_BATCH (0 = any number) and at most FUSED_MAX_INPUT_BYTES of frames: the graph keeps
# its own copy of its input, the full-size uint8 frames (32 at 720p: 88 MB; at 4K: 800 MB), per batch size.
# Fusing every size measured a 256-frame call 6% faster on the H200 with the same boxes (benchmarks/NOTES.md,
# session 8). Same-size batches of 8 or more that are not fused (over the budget, an end-to-end model,
# `ULTRALYTICS_GPU_FUSED=0`) are letterboxed beside the previous network; mixed sizes frame by frame.
FUSED_BELOW_BATCH = 0
FUSED_MAX_INPUT_BYTES = 128 << 20
# Batches of decoded image files gathered ahead of the thread that stages them (`reads_files_ahead`). A depth of
# 1 holds one 32-frame batch less but measured 0.726 against 0.701 ms/img (folder b32, 7 alternating rounds,
# H200; benchmarks/NOTES.md, session 9), and the process's peak memory did not move.
GATHER_DEPTH = 2
NO_TIME = ()  # a stage's timing when the stage ran inside another one (the fused graph): 0 ms


class ChunkImages(list):
    """Part of a larger batch: its frames, and the whole batch's rect decision (`auto`), so that every
    chunk is letterboxed as the whole batch would be."""

    auto: bool | None = None


class UploadedImages(ChunkImages):
    """The batch's original BGR arrays (a plain list to every consumer) plus their device copy, and
    the letterbox geometries when the device copy was resized on the host already."""

    device_frames: DeviceFrames
    geometries: list | None = None


def chunked(batches: Iterable[tuple], size: int, rect: Callable[[list], bool]) -> Iterator[tuple]:
    """Cut batches of more than `size` frames into chunks of `size`, keeping the batch's rect decision.

    A list of 256 frames is one batch (as upstream runs it); whole, it is staged in one piece before the
    network starts and needs pinned buffers of its full size. In chunks, the host copies chunk i+1
    while the GPU runs chunk i. Every frame is letterboxed exactly as in the whole batch. Measured on
    the H200 (benchmarks/NOTES.md): chunks of 32 make such a call 8-10x faster; splitting batches of
    8-32 frames as well (chunks of 4 or 16) made them slower, so smaller batches stay whole."""
    for paths, images, infos in batches:
        if size <= 0 or not isinstance(images, list) or len(images) <= size:
            yield paths, images, infos
            continue
        step = size
        auto = rect(images)
        for i in range(0, len(images), step):
            part = ChunkImages(images[i : i + step])
            part.auto = auto
            yield paths[i : i + step], part, infos[i : i + step]


class _ModelState:
    """What one model keeps across predict calls on a CUDA device."""

    def __init__(self, model: Any):
        # first, before anything captures the network: its weights' layout, and the one its input takes
        # (channels-last for PyTorch on CUDA; every path below that feeds the network uses this)
        self.memory_format = network_memory_format(model)
        self.uploader = PinnedUploader(model.device)
        # the backend's forward, not the AutoBackend's (which holds this state: no reference cycle).
        # Which input shapes may replay a graph is the backend's to say (`graph_safe`).
        cuda = model.device.type == "cuda"
        self.graphs = CudaGraphRunner(model.backend.forward, model.device, MAX_GRAPHS) if cuda else None
        # letterbox (per frame size) and NMS (per settings) are short chains of small kernels: on CUDA
        # they replay as graphs too, whatever the backend
        self.letterbox_graphs = GraphFamily(model.device) if cuda else None
        self.letterbox_stream = letterbox_stream(model.device) if cuda else None
        self.nms_graphs = GraphFamily(model.device) if cuda else None
        # same-size batches: letterbox + network + NMS as one graph per frame size, geometry and NMS settings
        self.fused_graphs = GraphFamily(model.device, max_graphs=MAX_GRAPHS) if cuda else None


_STATE_LOCK = threading.Lock()


def _state_for(model: Any) -> _ModelState:
    """The model's pipeline state, kept on the model object itself (created once, under a lock)."""
    state = getattr(model, "gpu_state", None)
    if state is None:
        with _STATE_LOCK:
            state = getattr(model, "gpu_state", None)
            if state is None:
                state = _ModelState(model)
                model.gpu_state = state
    return state


class GpuStages:
    """Device-side stages for one predictor; `model` is an AutoBackend.

    Meant for CUDA devices; on the CPU it runs the same tensor code without graphs or pinned memory,
    which is how CI checks it against the OpenCV path.
    """

    def __init__(self, model: Any, args: Any, imgsz: tuple[int, int] | None = None, use_graphs: bool = True):
        from ultralytics.data.augment import resolve_imgsz

        self.model, self.args = model, args
        self.imgsz = imgsz if imgsz is not None else resolve_imgsz(model, args.imgsz, explicit=False)
        self.state = _state_for(model)
        self.use_graphs = use_graphs and self.state.graphs is not None
        self.end2end = bool(getattr(model, "end2end", False))  # detections straight from the network: no NMS
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

    def prefetch(self, batches: Iterable[tuple], depth: int = 2) -> Prefetcher:
        """Decode and stage (upload) batch i+1 in a background thread while batch i runs."""
        return Prefetcher(batches, self.stage_batch, depth=depth)

    def stage_batch(self, batch: tuple) -> tuple:
        """Start a batch's upload: the full frames, or (host letterbox) the frames resized on the host
        over a few threads of the uploader's own, a quarter of the bytes at 720p; the GPU then only pads."""
        paths, images, infos = batch
        if not (isinstance(images, list) and images and all(isinstance(im, np.ndarray) for im in images)):
            return batch
        wrapped = UploadedImages(images)
        wrapped.auto = getattr(images, "auto", None)
        if self.host_letterbox(images):
            auto = self._rect(images)
            geos = self._geometries([im.shape[:2] for im in images], auto)
            wrapped.geometries = geos
            wrapped.device_frames = self.state.uploader.upload(images, resize_to=[g.new_unpad for g in geos])
        else:
            wrapped.device_frames = self.upload(images)
        return paths, wrapped, infos

    def host_letterbox(self, images: list[np.ndarray]) -> bool:
        """Resize on the host before the upload? `ULTRALYTICS_GPU_HOST_LETTERBOX=1` only: uploading full
        frames was faster at every size measured (benchmarks/NOTES.md), so "auto" and "0" upload them."""
        return settings().gpu_host_letterbox == "1" and self.model.device.type == "cuda"

    def _geometries(self, shapes: list[tuple[int, int]], auto: bool) -> list:
        per_shape = {hw: letterbox_params(hw, self.imgsz, auto=auto, stride=self.model.stride) for hw in set(shapes)}
        return [per_shape[hw] for hw in shapes]

    def timers(self) -> tuple:
        """Event-based stage timers on CUDA (no synchronisation per stage); `Profile` elsewhere."""
        if self.model.device.type != "cuda":
            from ultralytics.utils.ops import Profile

            return tuple(Profile(self.model.device) for _ in range(3))
        from ultralytics.gpu.timing import CudaEventProfile

        return tuple(CudaEventProfile(self.model.device) for _ in range(3))

    # ------------------------------------------------------------------ stages
    def preprocess(self, images: list[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """BGR uint8 arrays (uploaded already when they came through `prefetch`) → BCHW RGB 0..1; a
        tensor source (BCHW RGB 0..1 already) only moves to the model's device, dtype and memory format."""
        if isinstance(images, torch.Tensor):
            return network_input(images.to(self.model.device, self.model.dtype), self.state.memory_format)
        return self.letterbox(images, auto=self._rect(images))

    def _rect(self, images: list[np.ndarray]) -> bool:
        """Upstream's rect decision, for the whole batch when `images` is a chunk of one."""
        auto = getattr(images, "auto", None)
        if auto is not None:
            return auto
        from ultralytics.data.augment import rect_padding

        return rect_padding(images, self.args, self.model)

    def letterbox(self, images: list[np.ndarray], *, auto: bool) -> torch.Tensor:
        frames = getattr(images, "device_frames", None) or self.upload(list(images))
        # set when the host resized the frames already
        geometries = getattr(images, "geometries", None) or self._geometries(frames.host_shapes, auto)
        dtype, layout = self.model.dtype, self.state.memory_format
        stream = self.state.letterbox_stream
        batch = frames.frames
        if stream is not None and isinstance(batch, torch.Tensor) and 0 < OVERLAP_LETTERBOX_FROM_BATCH <= len(batch):
            return self._letterbox_beside(frames, geometries, dtype, layout, stream)
        frames.wait()
        graphs = self.state.letterbox_graphs
        if graphs is not None and isinstance(frames.frames, torch.Tensor):  # one frame size: one geometry
            geo = geometries[0]
            return graphs(
                (geo, dtype, layout),
                lambda: lambda f: letterbox_batch(f, [geo] * f.shape[0], dtype, layout),
                frames.frames,
            )
        return letterbox_batch(frames.frames, geometries, dtype=dtype, memory_format=layout)

    @staticmethod
    def _letterbox_beside(
        frames: DeviceFrames,
        geometries: list,
        dtype: torch.dtype,
        layout: torch.memory_format,
        stream: torch.cuda.Stream,
    ) -> torch.Tensor:
        """Letterbox on `stream`, which waits only for the upload (not for the caller's earlier work,
        e.g. the previous network); the caller's stream then waits for the letterbox."""
        caller = torch.cuda.current_stream(stream.device)
        with torch.cuda.stream(stream):
            frames.wait()  # the letterbox stream waits for the copy; the frames are marked used there
            im = letterbox_batch(frames.frames, geometries, dtype=dtype, memory_format=layout)
        caller.wait_stream(stream)
        im.record_stream(caller)  # allocated on the letterbox stream, read on the caller's
        return im

    def inference(self, im: torch.Tensor) -> torch.Tensor:
        im = self._network_input(im)
        if self._graphed(im):
            return self.state.graphs(im)
        return self.model(im)

    def _network_input(self, im: torch.Tensor) -> torch.Tensor:
        """The batch in the network's dtype and memory format (already both when it came from `preprocess`;
        a validator or caller may pass its own)."""
        return network_input(im.to(self.model.dtype), self.state.memory_format)

    def _graphed(self, im: torch.Tensor) -> bool:
        return self.use_graphs and self.model.graph_safe(tuple(im.shape))

    def prepare(self, im: torch.Tensor) -> None:
        """Capture the network's graph for this input outside the timed stage (once per shape)."""
        if self._graphed(im):
            self.state.graphs.prepare(self._network_input(im))

    def postprocess(
        self, preds: torch.Tensor, im: torch.Tensor, orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        """NMS on the device, one copy of every image's detections to the host, boxes scaled there."""
        return self.finish_postprocess(self.launch_nms(preds), im.shape[2:], orig_imgs, paths)

    def launch_nms(self, preds: torch.Tensor) -> PendingNMS | list[np.ndarray]:
        """Enqueue NMS; an end-to-end model's output is final detections, only filtered."""
        if self.end2end:
            n = self.nms
            return [d.numpy() for d in filter_end2end(preds, n.conf_thres, n.classes, n.max_det, device="cpu")]
        return self.nms.launch(preds)

    def finish_postprocess(
        self, pending: PendingNMS | list, im_hw: tuple[int, ...], orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        dets = pending if isinstance(pending, list) else self.nms.finish(pending)
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
    def run(self, source: Iterable[tuple], profilers: tuple) -> Iterator[tuple]:
        """(paths, images, infos, im, results) per batch (or chunk of a large batch).

        Which thread stages (copies into pinned memory and uploads) a batch:
        - the caller's own arrays or tensors, however many batches or chunks: the caller's thread, lazily
          (stage chunk k+1, launch it, then finish chunk k). The same `torch.cat` of 32 frames took 2.7 ms
          there and 5.4-6.8 ms from any other thread on the H200 host; one call over 256 frames at batch 32
          went 0.200 -> 0.169 ms/img (1.74x -> 1.47x the network), same boxes (benchmarks/NOTES.md,
          session 11, probe II; session 10, probe EE);
        - files to decode: a thread, one batch ahead of the GPU, fed by the decode workers;
        - several PIL images (converted here): a thread too. Staged in the caller's thread, PIL lists of 8
          took 5.0-5.4 ms/img on the H200 host against 2.2 in the thread, likely torch's OpenMP workers
          spinning after the copy beside the next call's PIL conversions (session 10, probes W, HH);
        - one PIL image: the caller's thread (a thread would only add its start and hand-over)."""
        in_memory = getattr(source, "in_memory", False)
        callers_own = in_memory and getattr(source, "callers_own_arrays", False)
        one_image = in_memory and getattr(source, "batch", 0) == 1 and getattr(source, "n_batches", None) == 1
        here = callers_own or one_image
        parts = chunked(source, settings().gpu_chunk, self._rect)
        if reads_files_ahead(source):  # image files: never a source staged here (those are in memory)
            parts = Prefetcher(parts, depth=GATHER_DEPTH)
        batches = (self.stage_batch(b) for b in parts) if here else self.prefetch(parts)
        from ultralytics.data.augment import originals

        return self.pipelined(batches, profilers, self.preprocess, self.inference, originals)

    def pipelined(
        self,
        batches: Iterable[tuple],
        profilers: tuple,
        preprocess: Callable[[Any], torch.Tensor],
        inference: Callable[[torch.Tensor], torch.Tensor],
        originals: Callable[[Any], list[np.ndarray]],
    ) -> Iterator[tuple]:
        """(paths, images, infos, im, results) per batch, like the CPU stages' loop, but batch i+1 is
        enqueued on the GPU before the host waits for batch i's detections, so building Results (and
        Python in general) overlaps the GPU instead of alternating with it. A batch of one frame whose
        successor is not decoded yet (a `Prefetcher` that is not `ready`: a camera, a folder read one image
        at a time) has its results go out first instead of waiting for it: a live stream's results are not
        held back by a frame (ms/img through a folder at batch 1 within noise: 2.06 vs 2.13 and 2.12 vs 2.08
        in two H200 calls). Larger batches keep the order above: finishing them early measured slower
        (128 JPEGs at batch 32: 1.22 against 1.08 ms/img)."""
        pending = None
        next_ready = getattr(batches, "ready", None)
        source = iter(batches)
        while True:
            try:
                paths, images, infos = next(source)
            except StopIteration:
                break
            except Exception:  # the source failed (e.g. a decoder mid-video): the batch already run goes out first
                if pending is not None:
                    yield self._finish(profilers, *pending)
                raise
            if (fused := self.fused_frames(images)) is not None:
                frames, geo = fused
                plan = self._fused(geo)
                self.prepare_fused(frames, plan)  # a first capture is set-up, not inference time
                with profilers[1]:  # the letterbox and NMS run inside the one graph: all of it is inference
                    nms = self.launch_fused(frames, plan)
                timings = [NO_TIME, profilers[1].take(), NO_TIME]
                im = torch.empty((frames.frames.shape[0], 3, *geo.canvas_hw), device="meta")  # its shape only
            else:
                with profilers[0]:
                    im = preprocess(images)
                self.prepare(im)  # a first capture of this shape is set-up, not inference time
                with profilers[1]:
                    preds = inference(im)
                with profilers[2]:
                    nms = self.launch_nms(preds)
                timings = [p.take() if hasattr(p, "take") else None for p in profilers]
            if pending is not None:
                yield self._finish(profilers, *pending)
            pending = (paths, images, infos, im, nms, originals, timings)
            if next_ready is not None and len(paths) == 1 and not next_ready():
                yield self._finish(profilers, *pending)
                pending = None
        if pending is not None:
            yield self._finish(profilers, *pending)

    # ------------------------------------------------------------------ same-size batches: one graph
    def fused_frames(self, images: Any) -> tuple[DeviceFrames, Any] | None:
        """(uploaded frames, their geometry) when this batch runs letterbox + network + NMS as ONE CUDA
        graph, else None.

        At batch 1 the three graphs and what joins them (copy in, copy out, stream hand-overs, a
        launch each) cost ~0.15 ms of a ~2 ms call on the H200 (benchmarks/NOTES.md, session 5); at
        batch 32 fusing measured faster too (session 8). One graph applies to same-size frames (fewer than
        FUSED_BELOW_BATCH when that is set, at most FUSED_MAX_INPUT_BYTES of them), with graphs on, a backend
        that may replay at that input shape, and NMS to do (an end-to-end model has none)."""
        state = self.state
        if not self.use_graphs or self.end2end or state.fused_graphs is None or isinstance(images, torch.Tensor):
            return None
        frames = getattr(images, "device_frames", None)
        if frames is None or getattr(images, "geometries", None) is not None:
            return None
        if not isinstance(frames.frames, torch.Tensor) or not settings().gpu_fused:
            return None
        n = int(frames.frames.shape[0])
        if 0 < FUSED_BELOW_BATCH <= n or frames.frames.numel() > FUSED_MAX_INPUT_BYTES:
            return None
        geo = self._geometries(frames.host_shapes[:1], self._rect(images))[0]
        if not self.model.graph_safe((n, 3, *geo.canvas_hw)):
            return None
        return frames, geo

    def _fused(self, geo: Any) -> tuple[tuple, Callable[[], Callable[[torch.Tensor], tuple]], int, int]:
        """The fused graph's key, its builder, and the NMS top_k cap / steps it bakes in."""
        nms, dtype, forward = self.nms, self.model.dtype, self.model.backend.forward
        layout = self.state.memory_format  # the letterbox writes the network's input layout directly
        top_k, steps = nms.top_k, nms.steps

        def make() -> Callable[[torch.Tensor], tuple]:
            def letterbox_network_nms(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                preds = forward(letterbox_batch(frames, [geo] * frames.shape[0], dtype, layout))
                return nms.run_on_device(preds, capped_top_k(top_k, preds.shape[2]), steps), preds

            return letterbox_network_nms

        return (geo, dtype, layout, nms.graph_key(top_k, steps)), make, top_k, steps

    def prepare_fused(self, frames: DeviceFrames, plan: tuple) -> None:
        """Capture the fused graph (`plan` is `_fused(geo)`) for these frames outside the timed stages,
        once per key and shape."""
        key, make, _, _ = plan
        family = self.state.fused_graphs
        if family.ready(key, frames.frames):
            return
        self.nms.prepare_classes(frames.frames.device)
        frames.wait()
        family.prepare(key, make, frames.frames)

    def launch_fused(self, frames: DeviceFrames, plan: tuple) -> PendingNMS:
        """Replay the fused graph and enqueue the detections' copy to the host; returns without waiting.
        The network output comes back too (a copy), for the rare NMS redo (`BatchedNMS.finish`)."""
        key, make, top_k, steps = plan
        self.nms.prepare_classes(frames.frames.device)
        frames.wait()
        packed, preds = self.state.fused_graphs(key, make, frames.frames)
        return self.nms.to_host(packed, preds, capped_top_k(top_k, preds.shape[2]), steps)

    def _finish(self, profilers, paths, images, infos, im, nms, originals, timings) -> tuple:
        results = self.finish_postprocess(nms, im.shape[2:], originals(images), paths)
        for profiler, pair in zip(profilers, timings):
            if pair is not None:
                profiler.publish(pair)  # this batch's own stage times; its events are complete
        return paths, images, infos, im, results


GpuPipeline = GpuStages  # the name before the stages had a common interface


def reads_files_ahead(source: Any) -> bool:
    """Whether a source's batches are gathered in a thread of their own, ahead of the one that stages them:
    image files decoded on the host by the decode pool, in batches of 2 or more (a video is read in a
    thread of its own already).

    Gathering a batch takes the decoded frames from the decode pool in order; in one thread, nothing was
    taken while a batch was staged (the pinned copy of 32 frames, 13-23 ms beside 14 busy decoders), and the
    pool sat idle ~40% of a folder call. With the two apart a folder at batch 32 measured 1.23 against 1.39
    ms/img, and 0.717 against 0.783 on another host (H200, benchmarks/NOTES.md, session 8, probes 8, 9, 11).
    One-image batches stage in well under a decode and keep one thread."""
    entries = getattr(source, "entries", None)
    if not entries or int(getattr(source, "batch", 1) or 1) < 2:
        return False
    kinds = {getattr(e, "kind", None) for e in entries}
    return "image" in kinds and "video" not in kinds


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
    # every row as one fresh float32 array (one image, every batch-1 call: its own copy, no concatenate)
    rows = np.array(dets[0], np.float32) if len(dets) == 1 else np.concatenate(dets).astype(np.float32, copy=False)
    # per original shape: pad x/y, gain x/y, width, height (the values scale_boxes derives)
    params = {shape: _unletterbox(tuple(im_hw), tuple(shape)) for shape in set(orig_shapes)}
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
    return [rows] if len(dets) == 1 else np.split(rows, np.cumsum(counts)[:-1])


@functools.lru_cache(maxsize=256)  # a few shapes per source; saves ~0.05 ms of a batch-1 call
def _unletterbox(im_hw: tuple[int, ...], orig_shape: tuple[int, ...]) -> tuple[float, ...]:
    """(pad_x, pad_y, gain_x, gain_y, w, h) that `ops.scale_boxes` uses for one original shape."""
    p = letterbox_params(tuple(orig_shape[:2]), tuple(im_hw[:2]), auto=False)
    gain_x, gain_y = p.new_unpad[0] / orig_shape[1], p.new_unpad[1] / orig_shape[0]
    return p.left, p.top, gain_x, gain_y, orig_shape[1], orig_shape[0]
