using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// Emulates ONNX Runtime's dynamic int8 quantisation of a convolution's input (DynamicQuantizeLinear, per image):
/// lo = min(0, min x), hi = max(0, max x), scale = (hi − lo) / 255, zp = clamp(round(−lo / scale), 0, 255),
/// x' = (clamp(round(x / scale) + zp, 0, 255) − zp) · scale (round half to even). With the dequantised int8 weights
/// conv(x', w') equals ConvInteger · x_scale · w_scale. Gradients pass straight through (x + (x' − x).detach()),
/// so a model with this attached can still be fine-tuned (quantisation-aware).
/// </summary>
public static class DynamicQuantization
{
    private static readonly ConditionalWeakTable<Conv2d, object> Attached = new();

    /// <summary>Quantises every input of <paramref name="conv"/> before it runs (idempotent).</summary>
    public static void Attach(Conv2d conv)
    {
        if (Attached.TryGetValue(conv, out _)) return;
        conv.register_forward_pre_hook((module, input) => FakeQuantize(input));
        Attached.Add(conv, new object());
    }

    /// <summary>True when <paramref name="conv"/> quantises its inputs.</summary>
    public static bool IsAttached(Conv2d conv) => Attached.TryGetValue(conv, out _);

    /// <summary>DynamicQuantizeLinear then dequantise, per sample of (b, …); straight-through gradient.</summary>
    public static Tensor FakeQuantize(Tensor x)
    {
        using var scope = NewDisposeScope();
        var dims = Enumerable.Range(1, (int)x.dim() - 1).Select(d => (long)d).ToArray();
        var values = x.detach().to_type(ScalarType.Float32);
        var lo = values.amin(dims, keepdim: true).clamp_max(0);
        var hi = values.amax(dims, keepdim: true).clamp_min(0);
        var scale = (hi - lo) / 255f;
        var safe = where(scale.eq(0), ones_like(scale), scale);
        var zeroPoint = (-lo / safe).round().clamp(0, 255);
        var q = ((values / safe).round() + zeroPoint).clamp(0, 255);
        var dequantised = ((q - zeroPoint) * safe).to_type(x.dtype);
        var result = x.requires_grad ? x + (dequantised - x).detach() : dequantised;
        return result.MoveToOuterDisposeScope();
    }
}
