"""The forward pass of prediction: ONNX Runtime on CPU where it is installed, else torch.

A token-classification model is exported to ONNX once per set of weights, cached beside the artefact
(`onnx/model-<digest>[-variant].onnx`, written atomically so that workers exporting at once do not see half a
file), optimised for transformers where ONNX Runtime knows the architecture (fused attention, LayerNorm and
GELU), and loaded lazily on the first prediction of each process (a worker forks after loading its models:
the session is made in the process that runs it). Without onnxruntime, on a GPU, or when the export fails,
the torch model runs (under torch.inference_mode; bf16/fp16 autocast on CUDA).

Backends (`DOCLOOP_PREDICT_BACKEND`, or the predictor's `backend` argument):
- auto (default): onnx-int8 on CPU when onnxruntime is importable, else torch.
- onnx-int8: ONNX Runtime with every matrix product of the encoder quantized to int8 (dynamic quantization:
  weights per output channel, activations per batch; full 8-bit weights on CPUs with VNNI, 7-bit without,
  where the AVX2 kernel's 16-bit sums would saturate); the classifier stays fp32. 1.7-2x the fp32 graph's
  words/s; 99.3-99.6% of words tagged as fp32 tags them; span F1 within 0.005 of fp32 over a bootstrap of the
  pooled tuning documents, and 7.8x the pipeline at +0.0006 F1 on a report split never used to choose
  (docs/performance.md, issue 22).
- onnx: ONNX Runtime, fp32 weights (the same tags as torch).
- onnx-int8partial: every encoder matrix product in int8 but the feed-forward output (the product after GELU,
  whose inputs' long-tailed range loses most to one scale per batch).
- onnx-int8ffn: only the feed-forward matrix products in int8 (slower than onnx-int8, no better F1).
- torch: the torch model.

Plain Python, no Django.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "onnx-int8ffn", "onnx-int8partial", "onnx-int8", "torch")
# The encoder's matrix products each int8 backend quantizes, by the shape of their weight (rows, columns):
# the attention's projections (fused q/k/v, or each alone), its output, the feed-forward input and output.
QUANTIZED_PRODUCTS = {
    "onnx-int8": ("attention", "attention_output", "ffn_in", "ffn_out"),
    "onnx-int8partial": ("attention", "attention_output", "ffn_in"),
    "onnx-int8ffn": ("ffn_in", "ffn_out"),
}
ONNX_DIR = "onnx"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json")
# Architectures whose graph onnxruntime.transformers' optimizer fuses (its "bert" pattern covers these).
FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet"}
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_has_vnni() -> bool:
    """Whether this CPU multiplies 8-bit integers with VNNI (AVX512-VNNI or AVX-VNNI; AMX implies it).
    Without it ONNX Runtime's AVX2 int8 kernel sums pairs of u8 x s8 products in 16 bits, which full 8-bit
    weights can saturate: the weights are then quantized to 7 bits (`reduce_range`)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: assume the saturating kernel, whose 7-bit weights are safe everywhere
        return False
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


def backend_for(requested: str | None, device: torch.device) -> str:
    """The backend that runs: `requested` (else DOCLOOP_PREDICT_BACKEND, else auto), resolved for the
    device and what is installed (ONNX Runtime runs on CPU here; a GPU runs torch in bf16/fp16)."""
    backend = (requested or os.environ.get("DOCLOOP_PREDICT_BACKEND") or "auto").strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown prediction backend {backend!r}: one of {', '.join(BACKENDS)}")
    if backend == "torch" or device.type != "cpu":
        return "torch"
    if not onnxruntime_available():
        if backend != "auto":
            logger.warning("onnxruntime is not installed: predicting with torch")
        return "torch"
    return "onnx-int8" if backend == "auto" else backend


def weights_digest(model_dir: Path) -> str:
    """A digest of the artefact's weights and config: the cached graph belongs to these bytes only."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _write_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _export(model_dir: Path, input_names: list[str], target: Path) -> None:
    """The saved model as an ONNX graph with dynamic batch and sequence axes, fused for transformers
    where onnxruntime knows the architecture. Loaded here with the eager attention, whose pattern the
    fusion recognises (torch's scaled_dot_product_attention exports as loose operators it does not)."""
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    example = {name: torch.ones(2, 8, dtype=torch.long) if name != "token_type_ids"
               else torch.zeros(2, 8, dtype=torch.long) for name in input_names}
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "logits"]}

    def write_plain(path: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (), str(path), kwargs=example, input_names=input_names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)

    def write(path: Path) -> None:
        write_plain(path)
        config = model.config
        if config.model_type not in FUSABLE:
            return
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            optimized = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                       hidden_size=config.hidden_size, opt_level=1)
            optimized.save_model_to_file(str(path))
        except Exception:  # the plain graph still runs, with ONNX Runtime's own optimisations
            logger.warning("transformer fusion of the ONNX graph failed; the plain graph runs", exc_info=True)
            write_plain(path)

    _write_atomically(target, write)


def _quantize(source: Path, target: Path, *, hidden: int, intermediate: int, products: tuple[str, ...],
              reduce_range: bool) -> None:
    """Dynamic int8 quantization (weights per output channel, 7-bit with reduce_range) of the encoder's
    matrix products named in `products` (QUANTIZED_PRODUCTS), told apart by their weight's shape; the
    classifier stays fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shapes_of = {"attention": {(hidden, 3 * hidden), (hidden, hidden)},
                 "attention_output": {(hidden, hidden)},
                 "ffn_in": {(hidden, intermediate)}, "ffn_out": {(intermediate, hidden)}}
    wanted = set().union(*(shapes_of[product] for product in products))
    graph = onnx.load(str(source), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer if len(init.dims) == 2}
    nodes = [node.name for node in graph.node if node.op_type in ("MatMul", "Attention")
             and any(shapes.get(name) in wanted for name in node.input)]

    def write(path: Path) -> None:
        quantize_dynamic(str(source), str(path), op_types_to_quantize=["MatMul", "Attention"],
                         nodes_to_quantize=nodes, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=reduce_range,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    _write_atomically(target, write)


class OnnxRunner:
    """Logits from an ONNX Runtime session over the cached export of the saved model; made on first use."""

    def __init__(self, model_dir: Path, *, input_names: list[str], variant: str = "onnx"):
        self.model_dir = Path(model_dir)
        self.input_names = [name for name in ONNX_INPUTS if name in input_names]
        self.variant = variant
        self._session = None
        self._pid = None
        self._lock = threading.Lock()

    def graph_path(self) -> Path:
        """The cached graph for these weights, exported (and quantized) here when missing."""
        digest = weights_digest(self.model_dir)
        plain = self.model_dir / ONNX_DIR / f"model-{digest}.onnx"
        if not plain.exists():
            _export(self.model_dir, self.input_names, plain)
        if self.variant in QUANTIZED_PRODUCTS:
            bits = 8 if cpu_has_vnni() else 7  # workers on other CPUs share the folder: both may be cached
            quantized = plain.with_name(f"model-{digest}-{self.variant[5:]}-{bits}bit.onnx")
            if not quantized.exists():
                config = json.loads((self.model_dir / "config.json").read_text())
                _quantize(plain, quantized, hidden=config["hidden_size"],
                          intermediate=config["intermediate_size"], products=QUANTIZED_PRODUCTS[self.variant],
                          reduce_range=bits == 7)
            return quantized
        return plain

    def session(self):
        with self._lock:
            if self._session is None or self._pid != os.getpid():  # never a session made before a fork
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # the process's setting (OMP_NUM_THREADS)
                options.intra_op_num_threads = torch.get_num_threads()
                options.inter_op_num_threads = 1
                # Threads sleep between operators rather than spin: workers share their cores with other
                # processes, where spinning threads slowed ONNX Runtime below torch (docs/performance.md).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.log_severity_level = 3
                self._session = ort.InferenceSession(str(self.graph_path()), options,
                                                     providers=["CPUExecutionProvider"])
                self._pid = os.getpid()
            return self._session

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session().run(["logits"], {name: feeds[name] for name in self.input_names})[0]


class TorchRunner:
    """Logits from the torch model under inference mode (bf16/fp16 autocast on CUDA)."""

    def __init__(self, model, device: torch.device, *, input_names: list[str]):
        from training.ml.device import autocast_dtype

        self.model = model
        self.device = device
        self.input_names = [name for name in ONNX_INPUTS if name in input_names]
        self.dtype = autocast_dtype(device)

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = {name: torch.from_numpy(feeds[name]).to(self.device, non_blocking=True)
                 for name in self.input_names}
        with torch.inference_mode(), torch.autocast(device_type=self.device.type, dtype=self.dtype,
                                                    enabled=self.dtype is not None):
            return self.model(**batch).logits.float().cpu().numpy()
