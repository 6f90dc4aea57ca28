using System.Runtime.InteropServices;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary>
/// What the device needs to draw one training sample (<see cref="LoaderOptions.DeviceAugment"/>): up to four tiles (the
/// loaded images: BGR, long side imgsz, top-left in an imgsz×imgsz slot padded with gray 114) and, per tile, the map from
/// output pixels to tile pixels, the part of the output the tile owns and its border; then the HSV tables and the flips.
/// <see cref="SamplePipeline"/> fills it with the same draws and the same box maths as its own pixel path
/// (<see cref="SamplePipeline.ProcessTiles"/>); <see cref="DeviceAugment"/> draws it with tensor ops.
/// </summary>
public sealed class TilePlan
{
    /// <summary>Tiles per sample (a mosaic of four; a letterboxed sample uses the first only).</summary>
    public const int Slots = 4;

    /// <summary>Floats per slot in <see cref="Parameters"/>: the inverse 3×3 map (output → tile, row-major), the tile's crop
    /// as a rectangle of tile coordinates (x0, y0, x1, y1, half-open, pixel centres at whole numbers: the crop is pixels
    /// x0 + ½ … x1 − ½), the tile's width and height, the border: replicate (1: the tile owns the output pixels that map into
    /// its rectangle and replicates its edge there, OpenCV's warp of a tile) or constant (0: the crop lies on a gray canvas that
    /// is warped as a whole, its pixels blending with the gray and the neighbouring crops), used (1) or not (0).</summary>
    public const int SlotFloats = 17;

    /// <summary>Offset of the per-sample flags (flip left-right, flip up-down, HSV on) in <see cref="Parameters"/>.</summary>
    public const int FlagsAt = Slots * SlotFloats;

    /// <summary>Floats per sample.</summary>
    public const int Floats = FlagsAt + 3;

    /// <summary>Bytes of the HSV tables (hue, saturation, value: 256 each, as <see cref="Hsv.Apply"/> builds them).</summary>
    public const int TableBytes = 3 * 256;

    /// <summary>The per-sample parameters (<see cref="Floats"/>).</summary>
    public float[] Parameters { get; } = new float[Floats];

    /// <summary>A plan with every slot unused (identity maps, so that the device computes finite positions it then ignores).</summary>
    public TilePlan()
    {
        for (var k = 0; k < Slots; k++) Parameters[k * SlotFloats] = Parameters[k * SlotFloats + 4] = Parameters[k * SlotFloats + 8] = 1;
    }

    /// <summary>The HSV tables (identity when HSV is off).</summary>
    public byte[] Tables { get; } = new byte[TableBytes];

    /// <summary>Whether slot <paramref name="slot"/> holds a tile (its parameters' last float, set by the recording).</summary>
    public bool IsUsed(int slot) => Parameters[slot * SlotFloats + SlotFloats - 1] > 0;

    /// <summary>Bytes of one slot for output side <paramref name="side"/> (side² BGR pixels).</summary>
    public static int SlotBytes(int side) => side * side * 3;

    internal void Record(int slot, Mat image, double[] tileToOutput, (double X0, double Y0, double X1, double Y1) owned, bool replicate,
        nint slots, int side)
    {
        var (h, w) = (image.Height, image.Width);
        if (h > side || w > side) throw new InvalidOperationException($"A loaded image of {w}×{h} does not fit the {side}×{side} tile slot.");
        var inverse = Invert(tileToOutput);
        var p = Parameters.AsSpan(slot * SlotFloats, SlotFloats);
        for (var i = 0; i < 9; i++) p[i] = (float)inverse[i];
        (p[9], p[10], p[11], p[12]) = ((float)owned.X0, (float)owned.Y0, (float)owned.X1, (float)owned.Y1);
        (p[13], p[14], p[15], p[16]) = (w, h, replicate ? 1 : 0, 1);
        CopyTile(image, slots + (nint)slot * SlotBytes(side), side);
    }

    internal void SetColour(byte[]? tables, bool flipLR, bool flipUD)
    {
        if (tables is not null) tables.CopyTo(Tables, 0);
        Parameters[FlagsAt] = flipLR ? 1 : 0;
        Parameters[FlagsAt + 1] = flipUD ? 1 : 0;
        Parameters[FlagsAt + 2] = tables is null ? 0 : 1;
    }

    // rows of the image, the rest of the slot gray (the constant border of a letterboxed tile reads it)
    private static void CopyTile(Mat image, nint destination, int side)
    {
        var (h, w) = (image.Height, image.Width);
        var rowBytes = side * 3;
        unsafe
        {
            var slot = new Span<byte>((void*)destination, side * rowBytes);
            for (var y = 0; y < h; y++)
            {
                var row = slot.Slice(y * rowBytes, rowBytes);
                new ReadOnlySpan<byte>((void*)image.Ptr(y), w * 3).CopyTo(row);
                row[(w * 3)..].Fill(114);
            }
            slot[(h * rowBytes)..].Fill(114);
        }
    }

    /// <summary>Inverse of a row-major 3×3 matrix (double, by cofactors, as OpenCV inverts its warp matrices).</summary>
    internal static double[] Invert(double[] m)
    {
        double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8];
        var det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
        if (det == 0) throw new InvalidOperationException("Singular augmentation matrix.");
        var r = 1 / det;
        return
        [
            (e * i - f * h) * r, (c * h - b * i) * r, (b * f - c * e) * r,
            (f * g - d * i) * r, (a * i - c * g) * r, (c * d - a * f) * r,
            (d * h - e * g) * r, (b * g - a * h) * r, (a * e - b * d) * r,
        ];
    }
}
