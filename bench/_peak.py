"""The machine's peak per dtype: the fastest matmul kernel the software stack offers here, measured.

MFU is only as honest as its denominator. ``torch.matmul`` alone is not the machine's limit: on
an AMD EPYC torch's fp32 GEMM goes to MKL, whose AMD code path is narrower than what oneDNN's
kernels (used by vLLM's CPU build, torch's mkldnn ops and Inductor) run on the same core. So
each dtype's peak is the best of every kernel below that runs here, on the same ``size``^3
product for ``seconds`` each, and the winner is recorded with every candidate's figure:

    float32   torch.matmul (MKL on x86); oneDNN with the weight packed once
              (torch.ops.mkldnn._linear_pointwise, the op lsllm's --matmul onednn runs);
              MKL with the weight packed (torch.ops.mkl._mkl_linear, what Inductor's freezing
              emits for fp32); torch.compile of nn.Linear with Inductor freezing; ONNX
              Runtime's MatMul (MLAS), when onnxruntime is installed
    bfloat16  torch.matmul (oneDNN); oneDNN packed; torch.compile with freezing
    int8      ONNX Runtime's MatMulInteger (uint8 x int8 -> int32; the ORT int8 path's kernel)

A candidate that cannot run here (no C++ compiler for Inductor, no onnxruntime, a build without
MKL) is recorded with its error and skipped. On CUDA the peak stays ``torch.matmul`` (cuBLAS).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

_COMPILED: dict = {}  # Inductor's compiled modules, kept for the measurement after the runs (no second compile)


def _rate(run: Callable[[], object], flops: float, seconds: float, sync: Callable[[], None] = lambda: None) -> float:
    """FLOP/s of ``run`` repeated for ``seconds`` (after two untimed calls)."""
    for _ in range(2):
        run()
    sync()
    n, start = 0, time.perf_counter()
    while True:
        run()
        n += 1
        if n % 4 == 0 or flops * n > 1e12:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return flops * n / elapsed


def _inductor(weight: torch.Tensor, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    key = (weight.dtype, tuple(weight.shape))
    if key not in _COMPILED:
        import torch._dynamo
        import torch._inductor.config as inductor

        # Every compiled nn.Linear shares one forward: without room for more, the 9th would silently run eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)

        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype).eval()
        with torch.no_grad():
            linear.weight.copy_(weight)
        compiled = torch.compile(linear)
        with inductor.patch(freezing=True), torch.no_grad():  # freezing happens at the first call
            compiled(x)
        _COMPILED[key] = compiled

    def run():
        with torch.no_grad():
            return _COMPILED[key](x)

    return run


def _onnxruntime(weight: torch.Tensor, x: torch.Tensor) -> Callable[[], object]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    m, k = x.shape
    n = weight.shape[0]
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
    b = numpy_helper.from_array(weight.t().contiguous().numpy(), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "fp32_peak", [a], [y], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"a": x.numpy()}
    return lambda: session.run(None, feed)


def cpu_candidates(dtype: torch.dtype, weight: torch.Tensor, x: torch.Tensor) -> dict[str, Callable[[], Callable]]:
    """Name -> a builder of the timed call (a builder may raise: that kernel does not run here)."""
    transposed = weight.t().contiguous()
    candidates = {
        "torch.matmul": lambda: (lambda: torch.matmul(x, transposed)),
        "onednn-packed": lambda: _onednn(weight, x),
    }
    if dtype == torch.float32:
        candidates["mkl-packed"] = lambda: _mkl(weight, x)
    candidates["inductor-freezing"] = lambda: _inductor(weight, x)
    if dtype == torch.float32:
        candidates["onnxruntime"] = lambda: _onnxruntime(weight, x)
    return candidates


def _onednn(weight: torch.Tensor, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight)
    return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _mkl(weight: torch.Tensor, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    if not torch._C.has_mkl:
        raise RuntimeError("this torch build has no MKL")
    packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, x.shape[0])
    return lambda: torch.ops.mkl._mkl_linear(x, packed, weight, None, x.shape[0])


def peak(dtype_name: str, device: str = "cpu", size: int = 2048, seconds: float = 3.0) -> dict:
    """{"flop_per_s": best, "kernel": its name, "kernels": {name: FLOP/s}, "errors": {name: why}} for one dtype."""
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    weight = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    flops = 2.0 * size**3
    if device.startswith("cuda"):
        rates = {"torch.matmul": _rate(lambda: torch.matmul(x, weight), flops, seconds, torch.cuda.synchronize)}
        return {"flop_per_s": rates["torch.matmul"], "kernel": "torch.matmul", "kernels": rates, "errors": {}}
    rates, errors = {}, {}
    for name, build in cpu_candidates(dtype, weight, x).items():
        try:
            rates[name] = _rate(build(), flops, seconds)
        except Exception as err:  # noqa: BLE001 - a kernel that does not run here is recorded, not fatal
            errors[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    best = max(rates, key=rates.get)
    return {"flop_per_s": rates[best], "kernel": best, "kernels": rates, "errors": errors}


def int8_peak(size: int = 2048, seconds: float = 3.0) -> dict:
    """The int8 peak in the same form (ONNX Runtime's MatMulInteger, the only int8 kernel measured)."""
    from _onnx import int8_peak as ort_int8

    rate = ort_int8(size=size, seconds=seconds)
    return {"flop_per_s": rate, "kernel": "onnxruntime MatMulInteger", "kernels": {"onnxruntime MatMulInteger": rate},
            "errors": {}}


def better(first: dict, second: dict) -> dict:
    """Per kernel the better of two measurements (before and after the runs), and the winner of those."""
    rates = {k: max(first["kernels"].get(k, 0.0), second["kernels"].get(k, 0.0))
             for k in first["kernels"].keys() | second["kernels"].keys()}
    best = max(rates, key=rates.get)
    return {"flop_per_s": rates[best], "kernel": best, "kernels": rates, "errors": {**second["errors"], **first["errors"]}}
