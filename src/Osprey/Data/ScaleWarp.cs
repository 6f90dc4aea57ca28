using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary>
/// Bilinear warp of a BGR image by a scale and a translation (x' = a·x + cx, y' = b·y + cy, a, b &gt; 0), into a region of
/// the output, border replicate: the mosaic tiles' warp when there is no rotation, shear or perspective (Ultralytics'
/// defaults). The arithmetic is OpenCV's classic fixed-point <c>warpAffine</c> (OpenCV ≤ 4.10, the OpenCV of Ultralytics
/// and of the Python reference): source positions in 1/32 pixel from its 10-bit AB_SCALE rounding, weights
/// (32 − f)·(32 − g) … summing to 1024, result (Σ w·p + 512) ≫ 10. Because the matrix has no cross terms the positions of a
/// column and of a row are independent, so it runs as a vertical then a horizontal pass (same integers, same bytes).
/// OpenCV 4.11+ computes warpAffine with new kernels; for these matrices they give the same bytes (tested against both).
/// </summary>
public static class ScaleWarp
{
    /// <summary>True where the vector passes run (else scalar, same bytes).</summary>
    public static bool Vectorised => Avx2.IsSupported;

    /// <summary>Warps <paramref name="source"/> into <paramref name="region"/> of <paramref name="output"/> (both 8-bit BGR).</summary>
    public static void Apply(Mat source, Mat output, double a, double cx, double b, double cy, Rect region, bool allowVector = true)
    {
        if (source.Type() != MatType.CV_8UC3 || output.Type() != MatType.CV_8UC3) throw new ArgumentException("8-bit BGR images only.");
        if (!(a > 0 && b > 0)) throw new ArgumentOutOfRangeException(nameof(a), "Scales must be positive.");
        if (region.Width <= 0 || region.Height <= 0) return;
        if (region.X < 0 || region.Y < 0 || region.Right > output.Width || region.Bottom > output.Height)
            throw new ArgumentOutOfRangeException(nameof(region));
        Run(Pixels(source), (int)source.Step(), source.Width, source.Height, Pixels(output), (int)output.Step(), a, cx, b, cy,
            region, allowVector && Vectorised);
    }

    private static Span<byte> Pixels(Mat mat)
    {
        // AsSpan covers rows × cols × channels from the first byte; a view with a longer step needs the full extent
        if (mat.IsContinuous()) return mat.AsSpan<byte>();
        using var extent = Mat.FromPixelData(1, (int)((mat.Height - 1) * mat.Step() + mat.Width * 3), MatType.CV_8UC1, mat.Data);
        return extent.AsSpan<byte>();
    }

    private static void Run(Span<byte> src, int srcStep, int w, int h, Span<byte> dst, int dstStep, double a, double cx, double b, double cy,
        Rect region, bool vector)
    {
        // OpenCV: M = [a 0 cx−rx; 0 b cy−ry] (source → region), inverted in double
        double m0 = a, m1 = 0, m2 = cx - region.X, m3 = 0, m4 = b, m5 = cy - region.Y;
        var d = m0 * m4 - m1 * m3;
        d = d != 0 ? 1.0 / d : 0;
        double a11 = m4 * d, a22 = m0 * d, a12 = -m1 * d, a21 = -m3 * d;
        double b1 = -a11 * m2 - a12 * m5, b2 = -a21 * m2 - a22 * m5;
        int rw = region.Width, rh = region.Height;
        const int abScale = 1 << 10, roundDelta = abScale / 32 / 2;

        // columns: X = (X0 + adelta[x]) >> 5 with X0 = round((A12·y + b1)·1024) + 16 (the same on every row: A12·y = ±0)
        var x0 = Rint((a12 * 0 + b1) * abScale) + roundDelta;
        var sx = new int[rw];
        var pairs = new int[rw];
        int lo = int.MaxValue, hi = int.MinValue;
        for (var x = 0; x < rw; x++)
        {
            var xx = (x0 + Rint(a11 * x * abScale)) >> 5;
            int p = xx >> 5, f = xx & 31;
            // beyond the replicated border both taps read the same pixel: any weight gives it
            if (p < -1) (p, f) = (-1, 0);
            else if (p > w - 1) (p, f) = (w - 1, 0);
            sx[x] = p;
            pairs[x] = (32 - f) | (f << 16);
            lo = Math.Min(lo, p);
            hi = Math.Max(hi, p + 1);
        }
        for (var x = 0; x < rw; x++) sx[x] = 3 * (sx[x] - lo); // offset in the row buffer
        var columns = hi - lo + 1; // padded columns lo..hi, with −1 ≡ 0 and w ≡ w − 1
        var row = new short[3 * columns + 16];
        int first = Math.Max(lo, 0), last = Math.Min(hi, w - 1); // real columns read

        for (var y = 0; y < rh; y++)
        {
            // rows: Y = (Y0 + bdelta[x]) >> 5 with Y0 = round((A22·y + b2)·1024) + 16 and bdelta = round(A21·x·1024) = 0
            var yy = (Rint((a22 * y + b2) * abScale) + roundDelta + Rint(a21 * 0 * abScale)) >> 5; // A21 = −0
            int sy = yy >> 5, g = yy & 31;
            int r0 = Math.Clamp(sy, 0, h - 1), r1 = Math.Clamp(sy + 1, 0, h - 1);
            Vertical(src.Slice(r0 * srcStep + 3 * first, 3 * (last - first + 1)), src.Slice(r1 * srcStep + 3 * first, 3 * (last - first + 1)),
                (short)(32 - g), (short)g, row.AsSpan(3 * (first - lo)), vector);
            if (lo < 0) row.AsSpan(3 * (0 - lo), 3).CopyTo(row.AsSpan(0, 3));
            if (hi > w - 1) row.AsSpan(3 * (w - 1 - lo), 3).CopyTo(row.AsSpan(3 * (w - lo), 3));
            Horizontal(row, sx, pairs, dst.Slice((region.Y + y) * dstStep + 3 * region.X, 3 * rw), vector);
        }
    }

    private static int Rint(double v) => (int)Math.Clamp(Math.Round(v, MidpointRounding.ToEven), int.MinValue, int.MaxValue);

    /// <summary>V = S0·(32 − g) + S1·g over a run of bytes (≤ 8160: fits a short).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Vertical(ReadOnlySpan<byte> s0, ReadOnlySpan<byte> s1, short w0, short w1, Span<short> v, bool vector)
    {
        var n = s0.Length;
        var k = 0;
        if (vector)
        {
            ref var p0 = ref MemoryMarshal.GetReference(s0);
            ref var p1 = ref MemoryMarshal.GetReference(s1);
            ref var pv = ref MemoryMarshal.GetReference(v);
            var c0 = Vector256.Create(w0);
            var c1 = Vector256.Create(w1);
            for (; k + 16 <= n; k += 16)
            {
                var a = Avx2.ConvertToVector256Int16(Vector128.LoadUnsafe(ref p0, (nuint)k));
                var b = Avx2.ConvertToVector256Int16(Vector128.LoadUnsafe(ref p1, (nuint)k));
                (Avx2.MultiplyLow(a, c0) + Avx2.MultiplyLow(b, c1)).StoreUnsafe(ref pv, (nuint)k);
            }
        }
        for (; k < n; k++) v[k] = (short)(s0[k] * w0 + s1[k] * w1);
    }

    private static readonly Vector256<byte> PairUp = Vector256.Create(
        (byte)0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, 255, 255, 255, 255, 0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, 255, 255, 255, 255);
    private static readonly Vector128<byte> Compact = Vector128.Create((byte)0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 255, 255, 255, 255);

    /// <summary>out = (V[p]·(32 − f) + V[p + 1]·f + 512) ≫ 10 per channel, for every output pixel of the row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Horizontal(short[] v, int[] sx, int[] pairs, Span<byte> output, bool vector)
    {
        var rw = sx.Length;
        var x = 0;
        if (vector)
        {
            ref var pv = ref MemoryMarshal.GetArrayDataReference(v);
            ref var po = ref MemoryMarshal.GetReference(output);
            var round = Vector256.Create(512);
            for (; x + 6 <= rw; x += 4) // 16 bytes are stored, 12 of them ours: the rest is rewritten by the next pixels
            {
                var v01 = Vector256.Create(Vector128.LoadUnsafe(ref pv, (nuint)sx[x]), Vector128.LoadUnsafe(ref pv, (nuint)sx[x + 1]));
                var v23 = Vector256.Create(Vector128.LoadUnsafe(ref pv, (nuint)sx[x + 2]), Vector128.LoadUnsafe(ref pv, (nuint)sx[x + 3]));
                var w01 = Vector256.Create(Vector128.Create(pairs[x]), Vector128.Create(pairs[x + 1])).AsInt16();
                var w23 = Vector256.Create(Vector128.Create(pairs[x + 2]), Vector128.Create(pairs[x + 3])).AsInt16();
                var d01 = Avx2.ShiftRightArithmetic(Avx2.MultiplyAddAdjacent(Avx2.Shuffle(v01.AsByte(), PairUp).AsInt16(), w01) + round, 10);
                var d23 = Avx2.ShiftRightArithmetic(Avx2.MultiplyAddAdjacent(Avx2.Shuffle(v23.AsByte(), PairUp).AsInt16(), w23) + round, 10);
                var bytes = Avx2.PackUnsignedSaturate(Avx2.PackSignedSaturate(d01, d23), Vector256<short>.Zero);
                // lane 0 holds pixels 0 and 2, lane 1 pixels 1 and 3
                var ordered = Sse2.UnpackLow(bytes.GetLower().AsInt32(), bytes.GetUpper().AsInt32()).AsByte();
                Ssse3.Shuffle(ordered, Compact).StoreUnsafe(ref po, (nuint)(3 * x));
            }
        }
        for (; x < rw; x++)
        {
            int p = sx[x], w0 = pairs[x] & 0xFFFF, w1 = pairs[x] >> 16;
            for (var c = 0; c < 3; c++)
                output[3 * x + c] = (byte)Math.Clamp((v[p + c] * w0 + v[p + 3 + c] * w1 + 512) >> 10, 0, 255);
        }
    }
}
