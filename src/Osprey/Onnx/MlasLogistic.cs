using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>
/// The logistic function σ(x) exactly as ONNX Runtime's CPU kernels compute it on x86-64 with AVX2/FMA3
/// (MLAS <c>MlasLogisticKernelFma3</c>, used by Sigmoid and by the fused SiLU x·σ(x)): x clamped to [−18, 18], a
/// rational approximation p(x)/q(x) + ½ (Eigen's coefficients, polynomials evaluated with fused multiply-adds),
/// clamped below at 0. It differs from libtorch's sigmoid in the last bit or two of about half the values; that is
/// enough to move a value across a rounding step of the next dynamic quantisation (see
/// <see cref="DynamicQuantization"/>), so an imported int8 model reproduces ONNX Runtime only with this function.
/// </summary>
public static class MlasLogistic
{
    private const float LowerRange = -18f, UpperRange = 18f;
    private const float Alpha9 = 4.37031012579801e-11f, Alpha7 = 1.15627324459942e-07f, Alpha5 = 6.08574864600143e-05f,
        Alpha3 = 8.51377133304701e-03f, Alpha1 = 2.48287947061529e-01f;
    private const float Beta10 = 6.10247389755681e-13f, Beta8 = 5.76102136993427e-09f, Beta6 = 6.29106785017040e-06f,
        Beta4 = 1.70198817374094e-03f, Beta2 = 1.16817656904453e-01f, Beta0 = 9.93151921023180e-01f;

    /// <summary>σ(x) of one value, bit for bit as MLAS's FMA3 kernel.</summary>
    public static float Logistic(float x)
    {
        x = MathF.Min(UpperRange, MathF.Max(LowerRange, x));
        float x2 = x * x;
        float p = MathF.FusedMultiplyAdd(x2, Alpha9, Alpha7);
        p = MathF.FusedMultiplyAdd(x2, p, Alpha5);
        p = MathF.FusedMultiplyAdd(x2, p, Alpha3);
        p = MathF.FusedMultiplyAdd(x2, p, Alpha1);
        float q = MathF.FusedMultiplyAdd(x2, Beta10, Beta8);
        q = MathF.FusedMultiplyAdd(x2, q, Beta6);
        q = MathF.FusedMultiplyAdd(x2, q, Beta4);
        q = MathF.FusedMultiplyAdd(x2, q, Beta2);
        q = MathF.FusedMultiplyAdd(x2, q, Beta0);
        return MathF.Max(0f, x * p / q + 0.5f);
    }

    /// <summary>σ(x) elementwise (any shape; float32). ONNX Runtime's bits are a CPU matter: on another device this is
    /// libtorch's sigmoid, with no copy to the host.</summary>
    public static Tensor Logistic(Tensor x) => x.device_type == DeviceType.CPU ? Apply(x, silu: false) : x.sigmoid();

    /// <summary>SiLU as ONNX Runtime computes it: x · σ(x), one float32 product (libtorch's SiLU off the CPU).</summary>
    public static Tensor Silu(Tensor x) => x.device_type == DeviceType.CPU ? Apply(x, silu: true) : nn.functional.silu(x);

    /// <summary>
    /// Makes a SiLU module compute <see cref="Silu(Tensor)"/> in eval mode (idempotent; training mode keeps
    /// libtorch's differentiable SiLU).
    /// </summary>
    public static void AttachSilu(TorchSharp.Modules.SiLU activation)
    {
        if (Attached.TryGetValue(activation, out _)) return;
        Attached.Add(activation, new object());
        activation.register_forward_hook((module, input, output) => module.training ? output : Silu(input));
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TorchSharp.Modules.SiLU, object> Attached = new();

    private static Tensor Apply(Tensor x, bool silu)
    {
        using var scope = NewDisposeScope();
        var values = x.detach().to_type(ScalarType.Float32).contiguous();
        var data = values.numel() == 0 ? Array.Empty<float>() : values.data<float>().ToArray();
        const int Chunk = 1 << 16;
        Parallel.For(0, (data.Length + Chunk - 1) / Chunk, chunk =>
        {
            var span = data.AsSpan(chunk * Chunk, Math.Min(Chunk, data.Length - chunk * Chunk));
            Compute(span, silu);
        });
        return tensor(data).reshape(x.shape).to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>In place over <paramref name="values"/>: σ(x), or x·σ(x) when <paramref name="silu"/>.</summary>
    private static void Compute(Span<float> values, bool silu)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var lower = Vector256.Create(LowerRange);
            var upper = Vector256.Create(UpperRange);
            var half = Vector256.Create(0.5f);
            for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
            {
                var input = Vector256.Create<float>(values.Slice(i, Vector256<float>.Count));
                var x = Vector256.Min(upper, Vector256.Max(lower, input));
                var x2 = x * x;
                var p = Vector256.FusedMultiplyAdd(x2, Vector256.Create(Alpha9), Vector256.Create(Alpha7));
                p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(Alpha5));
                p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(Alpha3));
                p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(Alpha1));
                var q = Vector256.FusedMultiplyAdd(x2, Vector256.Create(Beta10), Vector256.Create(Beta8));
                q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(Beta6));
                q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(Beta4));
                q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(Beta2));
                q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(Beta0));
                var sigma = Vector256.Max(Vector256<float>.Zero, x * p / q + half);
                (silu ? input * sigma : sigma).CopyTo(values.Slice(i, Vector256<float>.Count));
            }
        }
        for (; i < values.Length; i++) values[i] = silu ? values[i] * Logistic(values[i]) : Logistic(values[i]);
    }
}
