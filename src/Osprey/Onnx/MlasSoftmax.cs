using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>
/// Softmax over the last dimension exactly as ONNX Runtime's CPU Softmax computes it on x86-64 (MLAS
/// <c>MlasComputeSoftmax</c> with the AVX512F kernels; the AVX2/FMA3 kernels give the same bits for rows of up to
/// 16 values, such as the DFL's 16 bins): per row m = max, eᵢ = exp(xᵢ − m) by MLAS's polynomial
/// (range reduction by ln 2 in two parts, a degree-6 polynomial in fused multiply-adds, scaling by 2ᵏ), the sum
/// accumulated in 16 lanes and reduced pairwise, then eᵢ · (1 / sum). libtorch's softmax differs in the last bits,
/// which is enough to move a DFL probability across a rounding step of the next dynamic quantisation.
/// </summary>
public static class MlasSoftmax
{
    private const float LowerRange = -103.9720840454f;
    private const float RoundingBias = 12582912f; // 1.5 · 2²³: adding and subtracting it rounds to an integer
    private const float Log2Reciprocal = 1.44269504088896341f, Log2High = -6.93145752e-1f, Log2Low = -1.42860677e-6f;
    private static readonly float Poly0 = Hex(0x694000, -10), Poly1 = Hex(0x125edc, -7), Poly2 = Hex(0x555b5a, -5),
        Poly3 = Hex(0x555450, -3), Poly4 = Hex(0xfffff6, -2);
    private const float Poly56 = 1f;
    private const int Lanes = 16;

    /// <summary>Softmax over the last dimension (any shape; float32). On a device other than the CPU this is libtorch's
    /// softmax, with no copy to the host.</summary>
    public static Tensor Softmax(Tensor x)
    {
        if (x.device_type != DeviceType.CPU) return x.softmax(-1);
        using var scope = NewDisposeScope();
        var values = x.detach().to_type(ScalarType.Float32).contiguous();
        if (values.numel() == 0) return values.MoveToOuterDisposeScope();
        int length = (int)x.shape[^1];
        var data = values.data<float>().ToArray();
        int rows = data.Length / length;
        Parallel.For(0, (rows + 1023) / 1024, block =>
        {
            Span<float> lanes = stackalloc float[Lanes];
            for (int row = block * 1024; row < Math.Min(rows, (block + 1) * 1024); row++)
                Row(data.AsSpan(row * length, length), lanes);
        });
        return tensor(data).reshape(x.shape).to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>One row in place; <paramref name="lanes"/> is scratch for the 16 accumulators.</summary>
    private static void Row(Span<float> row, Span<float> lanes)
    {
        float maximum = float.MinValue;
        foreach (float v in row) maximum = MathF.Max(maximum, v);
        float negativeMaximum = -maximum;
        lanes.Clear();
        for (int i = 0; i < row.Length; i++)
        {
            row[i] = Exp(row[i] + negativeMaximum);
            lanes[i % Lanes] += row[i];
        }
        // vextractf64x4 + vaddps, two vhaddps, vextractf128 + vaddss
        Span<float> a = stackalloc float[8];
        for (int i = 0; i < 8; i++) a[i] = lanes[i + 8] + lanes[i];
        float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        float scale = 1f / sum;
        for (int i = 0; i < row.Length; i++) row[i] *= scale;
    }

    /// <summary>MLAS's exp of x ≤ 0.</summary>
    private static float Exp(float x)
    {
        x = MathF.Max(LowerRange, x);
        float m = MathF.FusedMultiplyAdd(x, Log2Reciprocal, RoundingBias) - RoundingBias;
        x = MathF.FusedMultiplyAdd(m, Log2High, x);
        x = MathF.FusedMultiplyAdd(m, Log2Low, x);
        float p = MathF.FusedMultiplyAdd(Poly0, x, Poly1);
        p = MathF.FusedMultiplyAdd(p, x, Poly2);
        p = MathF.FusedMultiplyAdd(p, x, Poly3);
        p = MathF.FusedMultiplyAdd(p, x, Poly4);
        p = MathF.FusedMultiplyAdd(p, x, Poly56);
        p = MathF.FusedMultiplyAdd(p, x, Poly56);
        return MathF.ScaleB(p, (int)m);
    }

    /// <summary>The C hex float 0x1.MMMMMMp<paramref name="exponent"/> (24-bit fraction written as 6 hex digits).</summary>
    private static float Hex(int fraction, int exponent) => (float)Math.ScaleB(1.0 + fraction / 16777216.0, exponent);
}
