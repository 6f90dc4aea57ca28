using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Data;

/// <summary>
/// Draws training samples from their <see cref="TilePlan"/>s with tensor ops on the tiles' device (<c>gpu_augment=True</c>):
/// per tile slot one bilinear <c>grid_sample</c> of the batch (mosaic placement and the random affine/perspective in one map,
/// each output pixel taken from the tile whose part of the mosaic it falls in: border replicate inside the mosaic, gray 114
/// around a letterboxed image), rounded to whole grey levels as OpenCV's 8-bit warp leaves them; then Ultralytics' RandomHSV
/// as OpenCV computes it on 8-bit images (BGR→HSV in its 12-bit fixed point, the sample's lookup tables, HSV→BGR in float,
/// truncated as its vector body does for rows of a multiple of 32 pixels), the flips, and BGR→RGB.
/// </summary>
/// <remarks>
/// What differs from <see cref="SamplePipeline"/>'s bytes: the warp interpolates in float where OpenCV uses 1/32-pixel
/// positions and 10-bit weights (about one grey level here and there), the pixels on a seam between mosaic tiles where the
/// matrix rotates or shears (OpenCV blends the neighbouring tile in, here the tile replicates its edge), and OpenCV's fused
/// multiply-add in HSV→BGR (rarely one level). The tests bound the differences; labels are the pipeline's own.
/// </remarks>
public static class DeviceAugment
{
    // integer Scalars for the int32 arithmetic of OpenCV's BGR→HSV (a double Scalar would promote it to float)
    private static readonly Scalar Round = Scalars.Int(2048), Shift = Scalars.Int(4096), HueWrap = Scalars.Int(180), Two = Scalars.Int(2),
        Four = Scalars.Int(4), IntZero = Scalars.Int(0), IntOne = Scalars.IntOne;

    private static readonly Scalar Tab = Scalars.Of(32), Gray = Scalars.Of(114), MinusOne = Scalars.Of(-1), Byte = Scalars.Of(255),
        HueScale = Scalars.Of(6.0f / 180), InverseOf255 = Scalars.Of(1.0f / 255.0f), Zero = Scalars.Zero, One = Scalars.One;

    /// <summary>
    /// The batch's images, uint8 (B, 3, S, S) RGB, on the tiles' device. <paramref name="tiles"/> uint8 (T, S, S, 3) BGR slots,
    /// <paramref name="tileIndex"/> int64 (B·<see cref="TilePlan.Slots"/>) the tile of each slot (any valid index where unused),
    /// <paramref name="parameters"/> float32 (B, <see cref="TilePlan.Floats"/>), <paramref name="tables"/> uint8 (B, 768);
    /// <paramref name="slotsInUse"/>: the slots some sample uses (known on the host; null: all), the others are skipped.
    /// </summary>
    public static Tensor Render(Tensor tiles, Tensor tileIndex, Tensor parameters, Tensor tables, int side, IReadOnlyList<bool>? slotsInUse = null)
    {
        using var levels = RenderLevels(tiles, tileIndex, parameters, tables, side, slotsInUse);
        return levels.to(ScalarType.Byte);
    }

    /// <summary>
    /// <see cref="Render"/>'s images before the cast to uint8: float32 holding the same whole levels 0–255, for a consumer
    /// that wants float anyway (the trainer), so that it need not cast to bytes and back.
    /// </summary>
    public static Tensor RenderLevels(Tensor tiles, Tensor tileIndex, Tensor parameters, Tensor tables, int side, IReadOnlyList<bool>? slotsInUse = null)
    {
        using var scope = NewDisposeScope();
        var b = parameters.shape[0];
        var device = tiles.device;
        if (b == 0) return zeros(0, 3, side, side, dtype: ScalarType.Float32, device: device).MoveToOuterDisposeScope(); // a rank's empty share
        var bgr = Warp(tiles, tileIndex, parameters, side, device, slotsInUse);                 // (B, 3, S, S) float, whole levels
        var flags = parameters.narrow(1, TilePlan.FlagsAt, 3).gt(Zero);             // (B, 3) bool
        var coloured = Colour(bgr, tables.to(ScalarType.Int64));
        var image = where(flags.narrow(1, 2, 1).view(b, 1, 1, 1), coloured, bgr);
        image = where(flags.narrow(1, 1, 1).view(b, 1, 1, 1), image.flip(2), image); // up-down
        image = where(flags.narrow(1, 0, 1).view(b, 1, 1, 1), image.flip(3), image); // left-right
        return image.flip(1).MoveToOuterDisposeScope();                               // BGR → RGB
    }

    /// <summary>Mosaic and affine/perspective: (B, 3, S, S) BGR float holding whole grey levels.</summary>
    private static Tensor Warp(Tensor tiles, Tensor tileIndex, Tensor parameters, int s, Device device, IReadOnlyList<bool>? slotsInUse)
    {
        var b = parameters.shape[0];
        var slots = parameters.narrow(1, 0, TilePlan.FlagsAt).view(b, TilePlan.Slots, TilePlan.SlotFloats);
        var coords = arange(s, ScalarType.Float32, device);
        var (u, v) = (coords.view(1, 1, s), coords.view(1, s, 1));
        var index = tileIndex.view(b, TilePlan.Slots);
        var scale = Scalars.Of(2.0 / (s - 1));
        Tensor? sum = null;
        for (var k = 0; k < TilePlan.Slots; k++)
        {
            if (slotsInUse is not null && !slotsInUse[k]) continue;                   // e.g. slots 1–3 once mosaic is closed
            var p = slots.select(1, k);                                               // (B, 17)
            Tensor P(int i) => p.narrow(1, i, 1).view(b, 1, 1);
            var x = P(0).mul(u).add(P(1).mul(v), One).add_(P(2), One);               // (B, S, S) tile coordinates
            var y = P(3).mul(u).add(P(4).mul(v), One).add_(P(5), One);
            var z = P(6).mul(u).add(P(7).mul(v), One).add_(P(8), One);
            // OpenCV's warps quantise source positions to 1/32 pixel (INTER_TAB_SIZE)
            x = x.div_(z).mul_(Tab).round_().div_(Tab);
            y = y.div_(z).mul_(Tab).round_().div_(Tab);
            var replicate = P(15).gt(Zero);
            // replicate: the tile draws the output pixels that map into its crop; constant: every pixel, its crop on gray
            var owned = (x.ge(P(9)) & x.lt(P(11)) & y.ge(P(10)) & y.lt(P(12)) | replicate.logical_not()) & P(16).gt(Zero);
            var crop = u.ge(P(9)) & u.lt(P(11)) & v.ge(P(10)) & v.lt(P(12)) | replicate;    // (B, S, S) slot pixels kept
            // replicate border = positions clamped to the tile (bilinear taps beyond the edge read the edge pixel)
            x = where(replicate, x.maximum(zeros_like(x)).minimum(P(13).sub(One)), x);
            y = where(replicate, y.maximum(zeros_like(y)).minimum(P(14).sub(One)), y);
            var grid = stack([x.mul(scale).sub_(One), y.mul(scale).sub_(One)], 3);  // align_corners: −1, 1 = slot pixel 0, S − 1
            // the slot's padding is gray 114 and zero padding of (tile − 114) is gray beyond it: constant border 114
            var tile = tiles.index_select(0, index.select(1, k)).permute(0, 3, 1, 2).contiguous().to(ScalarType.Float32).sub_(Gray);
            tile = where(crop.unsqueeze(1), tile, zeros_like(tile));
            var sampled = nn.functional.grid_sample(tile, grid, GridSampleMode.Bilinear,
                GridSamplePaddingMode.Zeros, align_corners: true);
            var part = where(owned.unsqueeze(1), sampled, zeros_like(sampled));
            sum = sum is null ? part : sum.add_(part, One);
        }
        return sum!.add_(Gray, One).round_().clamp_(Zero, Byte);
    }

    /// <summary>Ultralytics' RandomHSV on whole-level BGR (B, 3, S, S) float, as OpenCV's 8-bit conversions compute it.</summary>
    private static Tensor Colour(Tensor bgr, Tensor tables)
    {
        var b = bgr.shape[0];
        var (h, w) = (bgr.shape[2], bgr.shape[3]);
        var device = bgr.device;
        var pixels = bgr.to(ScalarType.Int32);
        var (blue, green, red) = (pixels.select(1, 0), pixels.select(1, 1), pixels.select(1, 2));
        var value = blue.maximum(green).maximum(red);
        var diff = value.sub(blue.minimum(green).minimum(red));
        var (saturationDivision, hueDivision) = Divisions(device);
        var saturation = diff.mul(saturationDivision.take(value.to(ScalarType.Int64))).add_(Round, IntOne).div_(Shift, RoundingMode.floor);
        var hue = where(value.eq(red), green.sub(blue),
            where(value.eq(green), blue.sub(red).add_(diff.mul(Two), IntOne), red.sub(green).add_(diff.mul(Four), IntOne)));
        hue = hue.mul_(hueDivision.take(diff.to(ScalarType.Int64))).add_(Round, IntOne).div_(Shift, RoundingMode.floor);
        hue = where(hue.lt(IntZero), hue.add(HueWrap, IntOne), hue);

        Tensor Lookup(Tensor channel, int table) =>
            tables.narrow(1, 256 * table, 256).gather(1, channel.to(ScalarType.Int64).view(b, -1)).view(b, h, w).to(ScalarType.Float32);
        var hh = Lookup(hue, 0).mul_(HueScale);
        var ss = Lookup(saturation, 1).mul_(InverseOf255);
        var vv = Lookup(value, 2).mul_(InverseOf255);
        var sector = hh.floor();
        var f = hh.sub(sector);
        var p = vv.mul(ss.mul(MinusOne).add_(One, One));
        var q = vv.mul(ss.mul(f).mul_(MinusOne).add_(One, One));
        var t = vv.mul(ss.mul(f.mul(MinusOne).add_(One, One)).mul_(MinusOne).add_(One, One));
        Tensor Sector(double k) => sector.eq(Scalars.Of(k));
        var (e0, e1, e2, e3, e4, e5) = (Sector(0), Sector(1), Sector(2), Sector(3), Sector(4), Sector(5));
        var fr = where(e1, q, where(e2 | e3, p, where(e4, t, vv)));
        var fg = where(e0, t, where(e1 | e2, vv, where(e3, q, p)));
        var fb = where(e0 | e1, p, where(e2, t, where(e5, q, vv)));
        return stack([fb, fg, fr], 1).mul_(Byte).trunc_().clamp_(Zero, Byte);
    }

    // OpenCV's division tables of its 8-bit BGR→HSV, HsvPlanes' own, made once per device and kept for the process: a
    // copy from host memory on every batch would be a blocking copy on CUDA. Callers must not dispose them.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (Tensor Saturation, Tensor Hue)> DivisionTables = new();

    private static (Tensor Saturation, Tensor Hue) Divisions(Device device) => DivisionTables.GetOrAdd(device.ToString(), _ =>
    {
        using var saturation = tensor(HsvPlanes.SaturationDivision);
        using var hue = tensor(HsvPlanes.HueDivision);
        return (saturation.to(device, copy: true).DetachFromDisposeScope(), hue.to(device, copy: true).DetachFromDisposeScope());
    });
}
