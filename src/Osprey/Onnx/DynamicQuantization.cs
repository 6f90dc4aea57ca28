using System.Runtime.CompilerServices;
using Osprey.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>
/// Reproduces ONNX Runtime's dynamically quantised convolution (DynamicQuantizeLinear → ConvInteger → Cast →
/// Mul(x_scale · w_scale) → Add(bias)) on an imported <see cref="Conv2d"/> in eval mode. Per image:
/// lo = min(0, min x), hi = max(0, max x), x_scale = (hi − lo) / 255, zp = clamp(round(−lo / x_scale), 0, 255),
/// q = clamp(round(x / x_scale) + zp, 0, 255) (round half to even, float32 division as ONNX Runtime);
/// y = Σ (q − zp)(w_q − w_zp) exactly, rounded once to float32 (ONNX Runtime's int32 → float Cast), then
/// y · (x_scale · w_scale) + conv bias in ONNX Runtime's order. The sum runs as a float32 convolution when every
/// partial sum is provably an integer below 2²⁴ (255 · the largest per-channel Σ|w_q − w_zp| &lt; 2²⁴: true for every
/// layer of YOLOv8n, at most 0.32 · 2²⁴), else in float64. In training mode the hook steps aside and the float
/// (dequantised) weights run.
/// </summary>
public static class DynamicQuantization
{
    private sealed record State(Tensor IntegerWeight, Tensor WeightScale, long[] Stride, long[] Padding, long[] Dilation, long Groups,
        bool ExactInFloat32);

    /// <summary>Integers up to 2²⁴ are exact in float32.</summary>
    private const double Float32ExactIntegers = 1 << 24;

    private static readonly ConditionalWeakTable<Conv2d, State> Attached = new();

    /// <summary>Attaches the emulation to <paramref name="conv"/> (idempotent).</summary>
    /// <param name="conv">The module (its own weights are the dequantised ones).</param>
    /// <param name="integerWeight">w_q − w_zp, (c_out, c_in/g, k, k), integer-valued float32.</param>
    /// <param name="weightScale">Scalar or (c_out) weight scale.</param>
    /// <param name="stride">ONNX strides.</param>
    /// <param name="padding">ONNX pads (symmetric: the first half is used).</param>
    /// <param name="dilation">ONNX dilations.</param>
    /// <param name="groups">ONNX group.</param>
    public static void Attach(Conv2d conv, Tensor integerWeight, Tensor weightScale, long[] stride, long[] padding, long[] dilation, long groups)
    {
        if (Attached.TryGetValue(conv, out _)) return;
        // Every partial sum of Σ (q − zp)·w over one output is at most 255 · Σ|w| of that output channel.
        double largestRowL1;
        using (var scope = NewDisposeScope())
            largestRowL1 = integerWeight.detach().abs().to_type(ScalarType.Float64).flatten(1).sum(1).max().item<double>();
        var state = new State(integerWeight.detach().clone().DetachFromDisposeScope(),
            weightScale.detach().reshape(-1).clone().DetachFromDisposeScope(), stride, padding, dilation, groups,
            ExactInFloat32: 255 * largestRowL1 < Float32ExactIntegers);
        Attached.Add(conv, state);
        conv.register_forward_hook((module, input, output) => module.training ? output : Run(state, (Conv2d)module, input));
    }

    /// <summary>True when <paramref name="conv"/> emulates ONNX Runtime's integer convolution.</summary>
    public static bool IsAttached(Conv2d conv) => Attached.TryGetValue(conv, out _);

    /// <summary>DynamicQuantizeLinear of each sample of (b, …): (q − zp) as float, and x_scale shaped (b, 1, …).</summary>
    public static (Tensor Centered, Tensor Scale) Quantize(Tensor x)
    {
        using var scope = NewDisposeScope();
        var dims = Enumerable.Range(1, (int)x.dim() - 1).Select(d => (long)d).ToArray();
        var values = x.detach().to_type(ScalarType.Float32);
        var lo = values.amin(dims, keepdim: true).clamp_max(Scalars.Zero);          // explicit Scalars: see Scalars
        var hi = values.amax(dims, keepdim: true).clamp_min(Scalars.Zero);
        var scale = hi.Minus(lo).div(Scalars.Of(255));
        var safe = where(scale.eq(Scalars.Zero), ones_like(scale), scale);
        var zeroPoint = (-lo / safe).round().clamp(Scalars.Zero, Scalars.Of(255));
        var q = (values / safe).round().Plus(zeroPoint).clamp(Scalars.Zero, Scalars.Of(255));
        return (q.Minus(zeroPoint).MoveToOuterDisposeScope(), scale.MoveToOuterDisposeScope());
    }

    private static Tensor Run(State state, Conv2d conv, Tensor input)
    {
        using var scope = NewDisposeScope();
        var (centered, xScale) = Quantize(input);                                               // (b, c, h, w), (b, 1, 1, 1)
        var weight = state.IntegerWeight.to(input.device);
        var precision = state.ExactInFloat32 ? ScalarType.Float32 : ScalarType.Float64;
        var y = nn.functional.conv2d(centered.to_type(precision), weight.to_type(precision), null, state.Stride,
            new[] { state.Padding[0], state.Padding[1] }, state.Dilation, state.Groups)
            .to_type(ScalarType.Float32);                                                       // exact sums, one rounding
        var wScale = state.WeightScale.to(input.device);
        var scale = wScale.numel() == 1 ? xScale * wScale : xScale * wScale.view(1, -1, 1, 1); // x_scale · w_scale
        var output = y * scale;
        if (conv.bias is { } bias) output = output.Plus(bias.to_type(ScalarType.Float32).view(1, -1, 1, 1));
        return output.to_type(input.dtype).MoveToOuterDisposeScope();
    }
}
