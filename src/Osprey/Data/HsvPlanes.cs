using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Osprey.Data;

/// <summary>
/// One pass that does what <see cref="Hsv.Apply"/> (OpenCV BGR→HSV, lookup tables, HSV→BGR), the up-down and left-right
/// flips and the BGR→RGB, HWC→CHW split do in five: each BGR pixel is read once and its RGB bytes are written straight into
/// three planes. The arithmetic is OpenCV's own for 8-bit images, so the bytes are the same: BGR→HSV in OpenCV's 12-bit fixed
/// point (its division tables are the float quotients rounded, which are exact for every 1..255), the tables of
/// <see cref="Hsv.Apply"/> (evaluated in double; the vector path evaluates them in float only when that gives the same 256
/// entries for the sample, else the scalar path runs), and HSV→BGR in float as OpenCV's <c>HSV2RGB_b</c> does (with the fused
/// multiply-adds its AVX2 build makes of <c>1 − s·h</c>; see <see cref="Supported"/>): its vector
/// body (blocks of 32 pixels of a row with AVX2) truncates the final ×255, its scalar tail rounds; rows of a multiple of 32
/// pixels (every imgsz) are therefore truncated throughout. The tests compare it with OpenCV on every BGR colour, on every
/// HSV triple and on real images.
/// </summary>
public static class HsvPlanes
{
    private const float HueScale = 6.0f / 180;
    private const float InverseOf255 = 1.0f / 255.0f;

    /// <summary>Pixels per block of OpenCV's vectorised HSV→BGR (4 × 8 float lanes, AVX2): the rest of a row is rounded.</summary>
    internal const int OpenCvBlock = 32;

    /// <summary>Hue, saturation and value gains of one sample with their tables (as <see cref="Hsv.Apply"/> builds them).</summary>
    public sealed class Gains
    {
        internal readonly byte[] Hue, Saturation, Value;
        internal readonly float HueF, SaturationF, ValueF;

        /// <summary>True when the float evaluation of the three tables equals the double one (the vector path may run).</summary>
        internal readonly bool FloatExact;

        /// <summary>Builds the tables of gains around 1.</summary>
        public Gains(double hueGain, double saturationGain, double valueGain)
        {
            (HueF, SaturationF, ValueF) = ((float)hueGain, (float)saturationGain, (float)valueGain);
            var tables = Hsv.Tables(hueGain, saturationGain, valueGain);
            (Hue, Saturation, Value) = (tables[..256], tables[256..512], tables[512..]);
            var exact = true;
            for (var x = 0; x < 256; x++)
                exact &= Hue[x] == FloatHue(x) && Saturation[x] == FloatClamp(x, SaturationF) && Value[x] == FloatClamp(x, ValueF);
            FloatExact = exact;
        }

        private float FloatHue(int x)
        {
            var y = x * HueF;
            if (y >= 180f) y -= 180f;
            return y < 0 ? -1 : MathF.Floor(y); // the vector path assumes a non-negative product
        }

        private static float FloatClamp(int x, float gain) => MathF.Floor(Math.Clamp(x * gain, 0f, 255f));
    }

    /// <summary>True where this pass gives OpenCV's bytes: AVX2 with FMA, the instruction set OpenCV's own dispatch picks for
    /// its colour conversions there (elsewhere OpenCV rounds differently; use <see cref="Hsv.Apply"/>).</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>OpenCV's division tables of its 8-bit BGR→HSV (also used by <see cref="DeviceAugment"/>).</summary>
    internal static readonly int[] SaturationDivision = new int[256], HueDivision = new int[256];

    static HsvPlanes()
    {
        for (var i = 1; i < 256; i++)
        {
            SaturationDivision[i] = (int)Math.Round((255 << 12) / (1.0 * i), MidpointRounding.ToEven);
            HueDivision[i] = (int)Math.Round((180 << 12) / (6.0 * i), MidpointRounding.ToEven);
        }
    }

    /// <summary>
    /// Converts the BGR image <paramref name="bgr"/> (<paramref name="height"/> rows of <paramref name="stride"/> bytes) into
    /// RGB planes in <paramref name="planes"/> (3 × width × height bytes), applying the HSV gains and the flips.
    /// Pixels outside <paramref name="active"/> (x0, y0, x1, y1 in source coordinates) must all be the gray 114 of the
    /// border: they are written as that colour's result without being read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first sample: no tier-0 vector code
    public static void Apply(ReadOnlySpan<byte> bgr, int stride, int width, int height, Span<byte> planes, Gains gains,
        bool flipLR, bool flipUD, (int X0, int Y0, int X1, int Y1)? active = null, bool allowVector = true, bool allowWide = true)
    {
        var plane = width * height;
        if (planes.Length < 3 * plane) throw new ArgumentException("Planes too small.", nameof(planes));
        var (x0, y0, x1, y1) = active ?? (0, 0, width, height);
        var truncated = width - width % OpenCvBlock;
        if (truncated < width) (x0, y0, x1, y1) = (0, 0, width, height); // gray in the rounded tail: convert every pixel
        (x0, x1) = (Math.Clamp(x0, 0, width), Math.Clamp(x1, 0, width));
        (y0, y1) = (Math.Clamp(y0, 0, height), Math.Clamp(y1, 0, height));
        if (x1 <= x0 || y1 <= y0) (x0, x1, y0, y1) = (0, 0, 0, 0);
        Pixel(114, 114, 114, gains, true, out var grayR, out var grayG, out var grayB);
        var vector = allowVector && gains.FloatExact && Supported;
        var wide = vector && allowWide && WideSupported;
        ref var dst = ref MemoryMarshal.GetReference(planes);
        for (var y = 0; y < height; y++)
        {
            var row = (flipUD ? height - 1 - y : y) * width;
            var r = planes.Slice(row, width);
            var g = planes.Slice(plane + row, width);
            var b = planes.Slice(2 * plane + row, width);
            if (y < y0 || y >= y1)
            {
                r.Fill(grayR);
                g.Fill(grayG);
                b.Fill(grayB);
                continue;
            }
            // gray columns, mirrored when flipping
            var (left, right) = flipLR ? (width - x0, width - x1) : (x0, x1);
            if (flipLR)
            {
                r[left..].Fill(grayR); g[left..].Fill(grayG); b[left..].Fill(grayB);
                r[..right].Fill(grayR); g[..right].Fill(grayG); b[..right].Fill(grayB);
            }
            else
            {
                r[..left].Fill(grayR); g[..left].Fill(grayG); b[..left].Fill(grayB);
                r[right..].Fill(grayR); g[right..].Fill(grayG); b[right..].Fill(grayB);
            }
            var source = bgr.Slice(y * stride, width * 3);
            var x = x0;
            if (vector)
            {
                ref var src = ref MemoryMarshal.GetReference(source);
                if (wide)
                    for (; x + 16 <= Math.Min(x1, truncated); x += 16)
                        Vector16(ref src, x, ref dst, row, plane, flipLR ? width - 16 - x : x, flipLR, gains);
                for (; x + 8 <= Math.Min(x1, truncated); x += 8)
                    Vector8(ref src, x, ref dst, row, plane, flipLR ? width - 8 - x : x, flipLR, gains);
            }
            for (; x < x1; x++)
            {
                Pixel(source[3 * x + 2], source[3 * x + 1], source[3 * x], gains, x < truncated, out var pr, out var pg, out var pb);
                var o = flipLR ? width - 1 - x : x;
                (r[o], g[o], b[o]) = (pr, pg, pb);
            }
        }
    }

    /// <summary>One pixel, exactly (scalar path and reference of the vector path).</summary>
    internal static void Pixel(int red, int green, int blue, Gains gains, bool truncate, out byte r, out byte g, out byte b)
    {
        var (hh, ss, vv) = ForwardAndTables(red, green, blue, gains);
        Backward(hh, ss, vv, truncate, out r, out g, out b);
    }

    /// <summary>OpenCV's 8-bit BGR→HSV then the tables: the (h, s, v) bytes HSV→BGR receives.</summary>
    internal static (int H, int S, int V) ForwardAndTables(int r, int g, int b, Gains gains)
    {
        var (h, s, v) = Forward(r, g, b);
        return (gains.Hue[h], gains.Saturation[s], gains.Value[v]);
    }

    /// <summary>OpenCV <c>RGB2HSV_b</c> (hrange 180).</summary>
    internal static (int H, int S, int V) Forward(int r, int g, int b)
    {
        int v = Math.Max(b, Math.Max(g, r)), vmin = Math.Min(b, Math.Min(g, r)), diff = v - vmin;
        var s = (diff * SaturationDivision[v] + (1 << 11)) >> 12;
        var h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff;
        h = (h * HueDivision[diff] + (1 << 11)) >> 12;
        if (h < 0) h += 180;
        return (h, s, v);
    }

    /// <summary>OpenCV <c>HSV2RGB_b</c> (hrange 180) for one pixel: <paramref name="truncate"/> as its vector body, else as its
    /// scalar tail.</summary>
    internal static void Backward(int h, int s, int v, bool truncate, out byte r, out byte g, out byte b)
    {
        float hh = h * HueScale, ss = s * InverseOf255, vv = v * InverseOf255;
        var sector = MathF.Floor(hh);
        var f = hh - sector;
        // OpenCV's AVX2 build contracts 1 − s·h into a fused multiply-add
        float p = vv * (1f - ss), q = vv * MathF.FusedMultiplyAdd(-ss, f, 1f), t = vv * MathF.FusedMultiplyAdd(-ss, 1f - f, 1f);
        var (fr, fg, fb) = (int)sector switch
        {
            0 => (vv, t, p),
            1 => (q, vv, p),
            2 => (p, vv, t),
            3 => (p, q, vv),
            4 => (t, p, vv),
            _ => (vv, p, q),
        };
        r = ToByte(fr, truncate);
        g = ToByte(fg, truncate);
        b = ToByte(fb, truncate);
    }

    private static byte ToByte(float x, bool truncate) =>
        (byte)Math.Clamp(truncate ? (int)(x * 255f) : (int)MathF.Round(x * 255f, MidpointRounding.ToEven), 0, 255);

    private static readonly Vector128<byte> B0 = Vector128.Create(0, 3, 6, 9, 12, 15, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector128<byte> B1 = Vector128.Create(255, 255, 255, 255, 255, 255, 10, 13, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector128<byte> G0 = Vector128.Create(1, 4, 7, 10, 13, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector128<byte> G1 = Vector128.Create(255, 255, 255, 255, 255, 8, 11, 14, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector128<byte> R0 = Vector128.Create(2, 5, 8, 11, 14, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector128<byte> R1 = Vector128.Create(255, 255, 255, 255, 255, 9, 12, 15, 255, 255, 255, 255, 255, 255, 255, 255);
    private static readonly Vector256<int> Interleave = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
    private static readonly Vector256<byte> Reverse8 = Vector256.Create(
        (byte)7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);

    /// <summary>True where the 16-pixel body (<see cref="Vector16"/>, AVX-512) runs: the same operations as the 8-pixel body
    /// lane by lane (the same IEEE single-precision divisions, products, floors, fused multiply-adds and conversions), so the
    /// same bytes, in half the instructions.</summary>
    internal static bool WideSupported => Supported && Avx512F.IsSupported && Avx512BW.IsSupported;

    private static readonly Vector128<byte> Reverse16 = Vector128.Create((byte)15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);

    /// <summary>Sixteen pixels from <paramref name="x"/> of a source row into the planes at <paramref name="row"/> + <paramref name="o"/>:
    /// <see cref="Vector8"/> on 16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Vector16(ref byte src, int x, ref byte dst, int row, int plane, int o, bool flip, Gains gains)
    {
        var lo0 = Vector128.LoadUnsafe(ref src, (nuint)(3 * x));
        var hi0 = Vector128.LoadUnsafe(ref src, (nuint)(3 * x + 8));
        var lo1 = Vector128.LoadUnsafe(ref src, (nuint)(3 * x + 24));
        var hi1 = Vector128.LoadUnsafe(ref src, (nuint)(3 * x + 32));
        var b = Avx512F.ConvertToVector512Int32(Vector128.Create(
            (Ssse3.Shuffle(lo0, B0) | Ssse3.Shuffle(hi0, B1)).AsUInt64().ToScalar(), (Ssse3.Shuffle(lo1, B0) | Ssse3.Shuffle(hi1, B1)).AsUInt64().ToScalar()).AsByte());
        var g = Avx512F.ConvertToVector512Int32(Vector128.Create(
            (Ssse3.Shuffle(lo0, G0) | Ssse3.Shuffle(hi0, G1)).AsUInt64().ToScalar(), (Ssse3.Shuffle(lo1, G0) | Ssse3.Shuffle(hi1, G1)).AsUInt64().ToScalar()).AsByte());
        var r = Avx512F.ConvertToVector512Int32(Vector128.Create(
            (Ssse3.Shuffle(lo0, R0) | Ssse3.Shuffle(hi0, R1)).AsUInt64().ToScalar(), (Ssse3.Shuffle(lo1, R0) | Ssse3.Shuffle(hi1, R1)).AsUInt64().ToScalar()).AsByte());

        // BGR → HSV, OpenCV's fixed point
        var v = Avx512F.Max(b, Avx512F.Max(g, r));
        var diff = v - Avx512F.Min(b, Avx512F.Min(g, r));
        var vf = Avx512F.ConvertToVector512Single(v);
        var difff = Avx512F.ConvertToVector512Single(diff);
        var zero = Vector512<int>.Zero;
        var round = Vector512.Create(1 << 11);
        var sdiv = Avx512F.ConvertToVector512Int32(Avx512F.Divide(Vector512.Create(1044480f), vf)) & ~Vector512.Equals(v, zero);
        var hdiv = Avx512F.ConvertToVector512Int32(Avx512F.Divide(Vector512.Create(122880f), difff)) & ~Vector512.Equals(diff, zero);
        var s = Avx512F.ShiftRightArithmetic(Avx512F.MultiplyLow(diff, sdiv) + round, 12);
        var hRed = g - b;
        var hGreen = b - r + diff + diff;
        var hBlue = r - g + Avx512F.ShiftLeftLogical(diff, 2);
        var hraw = Vector512.ConditionalSelect(Vector512.Equals(v, r), hRed, Vector512.ConditionalSelect(Vector512.Equals(v, g), hGreen, hBlue));
        var h = Avx512F.ShiftRightArithmetic(Avx512F.MultiplyLow(hraw, hdiv) + round, 12);
        h += Vector512.GreaterThan(zero, h) & Vector512.Create(180);

        // the tables, in float (equal to the double tables for this sample: Gains.FloatExact)
        var c255 = Vector512.Create(255f);
        var hy = Avx512F.ConvertToVector512Single(h) * Vector512.Create(gains.HueF);
        hy -= Vector512.GreaterThanOrEqual(hy, Vector512.Create(180f)) & Vector512.Create(180f);
        var h2 = Vector512.Floor(hy);
        var s2 = Vector512.Floor(Avx512F.Min(Avx512F.Max(Avx512F.ConvertToVector512Single(s) * Vector512.Create(gains.SaturationF), Vector512<float>.Zero), c255));
        var v2 = Vector512.Floor(Avx512F.Min(Avx512F.Max(vf * Vector512.Create(gains.ValueF), Vector512<float>.Zero), c255));

        // HSV → BGR, OpenCV's float arithmetic
        var one = Vector512.Create(1f);
        var hh = h2 * Vector512.Create(HueScale);
        var ss = s2 * Vector512.Create(InverseOf255);
        var vv = v2 * Vector512.Create(InverseOf255);
        var sector = Vector512.Floor(hh);
        var f = hh - sector;
        var p = vv * (one - ss);
        var q = vv * Avx512F.FusedMultiplyAddNegated(ss, f, one);
        var t = vv * Avx512F.FusedMultiplyAddNegated(ss, one - f, one);
        var e0 = Vector512.Equals(sector, Vector512<float>.Zero);
        var e1 = Vector512.Equals(sector, one);
        var e2 = Vector512.Equals(sector, Vector512.Create(2f));
        var e3 = Vector512.Equals(sector, Vector512.Create(3f));
        var e4 = Vector512.Equals(sector, Vector512.Create(4f));
        var e5 = Vector512.Equals(sector, Vector512.Create(5f));
        var fr = Vector512.ConditionalSelect(e1, q, Vector512.ConditionalSelect(e2 | e3, p, Vector512.ConditionalSelect(e4, t, vv)));
        var fg = Vector512.ConditionalSelect(e0, t, Vector512.ConditionalSelect(e1 | e2, vv, Vector512.ConditionalSelect(e3, q, p)));
        var fb = Vector512.ConditionalSelect(e0 | e1, p, Vector512.ConditionalSelect(e2, t, Vector512.ConditionalSelect(e5, q, vv)));
        // truncate to int, then to bytes with the unsigned saturation of the 8-pixel body's packs (no lane is negative)
        var ir = Avx512F.ConvertToVector128ByteWithSaturation(Avx512F.Max(Avx512F.ConvertToVector512Int32WithTruncation(fr * c255), zero).AsUInt32());
        var ig = Avx512F.ConvertToVector128ByteWithSaturation(Avx512F.Max(Avx512F.ConvertToVector512Int32WithTruncation(fg * c255), zero).AsUInt32());
        var ib = Avx512F.ConvertToVector128ByteWithSaturation(Avx512F.Max(Avx512F.ConvertToVector512Int32WithTruncation(fb * c255), zero).AsUInt32());
        if (flip)
        {
            ir = Ssse3.Shuffle(ir, Reverse16);
            ig = Ssse3.Shuffle(ig, Reverse16);
            ib = Ssse3.Shuffle(ib, Reverse16);
        }
        ir.StoreUnsafe(ref dst, (nuint)(row + o));
        ig.StoreUnsafe(ref dst, (nuint)(plane + row + o));
        ib.StoreUnsafe(ref dst, (nuint)(2 * plane + row + o));
    }

    /// <summary>Eight pixels from <paramref name="x"/> of a source row into the planes at <paramref name="row"/> + <paramref name="o"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Vector8(ref byte src, int x, ref byte dst, int row, int plane, int o, bool flip, Gains gains)
    {
        var lo = Vector128.LoadUnsafe(ref src, (nuint)(3 * x));
        var hi = Vector128.LoadUnsafe(ref src, (nuint)(3 * x + 8));
        var b = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(lo, B0) | Ssse3.Shuffle(hi, B1));
        var g = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(lo, G0) | Ssse3.Shuffle(hi, G1));
        var r = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(lo, R0) | Ssse3.Shuffle(hi, R1));

        // BGR → HSV, OpenCV's fixed point
        var v = Avx2.Max(b, Avx2.Max(g, r));
        var diff = v - Avx2.Min(b, Avx2.Min(g, r));
        var vf = Avx.ConvertToVector256Single(v);
        var difff = Avx.ConvertToVector256Single(diff);
        var zero = Vector256<int>.Zero;
        var round = Vector256.Create(1 << 11);
        var sdiv = Avx.ConvertToVector256Int32(Avx.Divide(Vector256.Create(1044480f), vf)) & ~Avx2.CompareEqual(v, zero);
        var hdiv = Avx.ConvertToVector256Int32(Avx.Divide(Vector256.Create(122880f), difff)) & ~Avx2.CompareEqual(diff, zero);
        var s = Avx2.ShiftRightArithmetic(Avx2.MultiplyLow(diff, sdiv) + round, 12);
        var hRed = g - b;
        var hGreen = b - r + diff + diff;
        var hBlue = r - g + Avx2.ShiftLeftLogical(diff, 2);
        var hraw = Vector256.ConditionalSelect(Avx2.CompareEqual(v, r), hRed, Vector256.ConditionalSelect(Avx2.CompareEqual(v, g), hGreen, hBlue));
        var h = Avx2.ShiftRightArithmetic(Avx2.MultiplyLow(hraw, hdiv) + round, 12);
        h += Avx2.CompareGreaterThan(zero, h) & Vector256.Create(180);

        // the tables, in float (equal to the double tables for this sample: Gains.FloatExact)
        var c255 = Vector256.Create(255f);
        var hy = Avx.ConvertToVector256Single(h) * Vector256.Create(gains.HueF);
        hy -= Avx.CompareGreaterThanOrEqual(hy, Vector256.Create(180f)) & Vector256.Create(180f);
        var h2 = Avx.Floor(hy);
        var s2 = Avx.Floor(Avx.Min(Avx.Max(Avx.ConvertToVector256Single(s) * Vector256.Create(gains.SaturationF), Vector256<float>.Zero), c255));
        var v2 = Avx.Floor(Avx.Min(Avx.Max(vf * Vector256.Create(gains.ValueF), Vector256<float>.Zero), c255));

        // HSV → BGR, OpenCV's float arithmetic
        var one = Vector256.Create(1f);
        var hh = h2 * Vector256.Create(HueScale);
        var ss = s2 * Vector256.Create(InverseOf255);
        var vv = v2 * Vector256.Create(InverseOf255);
        var sector = Avx.Floor(hh);
        var f = hh - sector;
        var p = vv * (one - ss);
        var q = vv * Fma.MultiplyAddNegated(ss, f, one);
        var t = vv * Fma.MultiplyAddNegated(ss, one - f, one);
        var e0 = Avx.CompareEqual(sector, Vector256<float>.Zero);
        var e1 = Avx.CompareEqual(sector, one);
        var e2 = Avx.CompareEqual(sector, Vector256.Create(2f));
        var e3 = Avx.CompareEqual(sector, Vector256.Create(3f));
        var e4 = Avx.CompareEqual(sector, Vector256.Create(4f));
        var e5 = Avx.CompareEqual(sector, Vector256.Create(5f));
        var fr = Vector256.ConditionalSelect(e1, q, Vector256.ConditionalSelect(e2 | e3, p, Vector256.ConditionalSelect(e4, t, vv)));
        var fg = Vector256.ConditionalSelect(e0, t, Vector256.ConditionalSelect(e1 | e2, vv, Vector256.ConditionalSelect(e3, q, p)));
        var fb = Vector256.ConditionalSelect(e0 | e1, p, Vector256.ConditionalSelect(e2, t, Vector256.ConditionalSelect(e5, q, vv)));
        var ir = Avx.ConvertToVector256Int32WithTruncation(fr * c255);
        var ig = Avx.ConvertToVector256Int32WithTruncation(fg * c255);
        var ib = Avx.ConvertToVector256Int32WithTruncation(fb * c255);

        // pack to bytes: R0-7 | G0-7 | B0-7 as three quadwords
        var packed = Avx2.PackUnsignedSaturate(Avx2.PackSignedSaturate(ir, ig), Avx2.PackSignedSaturate(ib, ib));
        var ordered = Avx2.PermuteVar8x32(packed.AsInt32(), Interleave).AsByte();
        if (flip) ordered = Avx2.Shuffle(ordered, Reverse8);
        var quads = ordered.AsUInt64();
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, row + o), quads.GetElement(0));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, plane + row + o), quads.GetElement(1));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, 2 * plane + row + o), quads.GetElement(2));
    }
}
