using OpenCvSharp;

namespace Osprey.Data;

/// <summary>One sample after the pipeline: labels normalised to the output image, and where it came from.</summary>
/// <param name="Classes">Class id per box.</param>
/// <param name="Boxes">Normalised centre-xywh, 4 floats per box.</param>
/// <param name="Info">Source image and scaling.</param>
public sealed record ProcessedSample(int[] Classes, float[] Boxes, ImageInfo Info);

/// <summary>
/// Turns dataset index → square imgsz×imgsz RGB CHW uint8 image + labels. Training (<see cref="Augment"/> not null): mosaic of 4,
/// random affine/perspective (border −imgsz/2 after mosaic), optional mixup, HSV via LUT, flips, Ultralytics box candidates.
/// Validation: <c>load_image</c> + letterbox (auto=False, centre, gray 114). Every random draw comes from
/// <see cref="SampleRandom.For"/>(seed, epoch, index), so a sample does not depend on threads, ranks or batching.
/// </summary>
public sealed class SamplePipeline
{
    private static readonly Scalar Gray = Warps.Gray;
    private readonly IReadOnlyList<LabeledImage> _images;
    private readonly IImageStore _store;

    /// <summary>Output side in pixels.</summary>
    public int ImageSize { get; }

    /// <summary>Training augmentation, or null for validation.</summary>
    public AugmentOptions? Augment { get; }

    /// <summary>Seed of every random draw.</summary>
    public long Seed { get; }

    /// <summary>Bytes of one output image (3 × imgsz²).</summary>
    public int ImageBytes => 3 * ImageSize * ImageSize;

    /// <summary>Creates the pipeline over a dataset's images and a store of their decoded pixels.</summary>
    public SamplePipeline(IReadOnlyList<LabeledImage> images, IImageStore store, int imageSize, AugmentOptions? augment, long seed)
    {
        if (store.Count != images.Count) throw new ArgumentException("Store and image list differ in length.", nameof(store));
        if (imageSize < 32) throw new ArgumentOutOfRangeException(nameof(imageSize), "imgsz must be at least 32.");
        _images = images;
        _store = store;
        ImageSize = imageSize;
        Augment = augment;
        Seed = seed;
    }

    /// <summary>Processes sample <paramref name="index"/> of <paramref name="epoch"/> into <paramref name="destination"/>
    /// (3 × imgsz² writable bytes: planes R, G, B).</summary>
    public ProcessedSample Process(int index, int epoch, bool mosaicActive, nint destination)
    {
        int[] classes;
        float[] boxes;
        ImageInfo info;
        if (Augment is null)
        {
            using var result = Letterboxed(index, out classes, out boxes, out info);
            WriteRgbPlanes(result, destination);
        }
        else
        {
            Augmented(index, epoch, mosaicActive, destination, null, out classes, out boxes, out info);
        }
        return new ProcessedSample(classes, BoxTransforms.ToNormalisedXywh(boxes, ImageSize), info);
    }

    /// <summary>
    /// The device path's share of a training sample (<see cref="LoaderOptions.DeviceAugment"/>): the same draws and the same
    /// labels as <see cref="Process(int, int, bool, nint)"/>, but instead of drawing the image it copies the loaded tiles into
    /// <paramref name="slots"/> (<see cref="TilePlan.Slots"/> × <see cref="TilePlan.SlotBytes"/> writable bytes) and records
    /// in <paramref name="plan"/> how <see cref="DeviceAugment"/> draws them. Mixup is not supported there.
    /// </summary>
    public ProcessedSample ProcessTiles(int index, int epoch, bool mosaicActive, nint slots, TilePlan plan)
    {
        if (Augment is null) throw new InvalidOperationException("The device path augments training samples only.");
        Augmented(index, epoch, mosaicActive, slots, plan, out var classes, out var boxes, out var info);
        return new ProcessedSample(classes, BoxTransforms.ToNormalisedXywh(boxes, ImageSize), info);
    }

    /// <summary>Use the fused HSV pass (<see cref="HsvPlanes"/>) where it gives OpenCV's bytes; false: the OpenCV calls.</summary>
    internal bool FusedColour { get; init; } = HsvPlanes.Supported;

    /// <summary>Warp the mosaic tiles with <see cref="ScaleWarp"/> (same bytes as OpenCV's warpAffine); false: warpAffine.</summary>
    internal bool SeparableWarp { get; init; } = true;

    /// <summary>
    /// Mosaic partners come from the last <see cref="PartnerWindow"/> positions of the epoch's shuffle up to and including the
    /// sample's own (reaching back into the previous epoch's), as Ultralytics draws them from its <c>buffer</c> of the
    /// min(n, batch·8, 1000) most recently loaded images; 0: uniformly from the whole dataset. The shuffle is the global one
    /// of (seed, epoch) (<see cref="DistributedSampler.Order"/>), so a sample still depends on (seed, epoch, index) only.
    /// </summary>
    public int PartnerWindow { get; init; }

    private readonly object _ordersLock = new();
    private readonly Dictionary<int, (int[] Order, int[] Position)> _orders = new();

    private (int[] Order, int[] Position) Shuffle(int epoch)
    {
        lock (_ordersLock)
        {
            if (_orders.TryGetValue(epoch, out var known)) return known;
            var order = DistributedSampler.Order(_images.Count, true, Seed, epoch);
            var position = new int[order.Length];
            for (var i = 0; i < order.Length; i++) position[order[i]] = i;
            if (_orders.Count >= 4) _orders.Remove(_orders.Keys.Min());
            return _orders[epoch] = (order, position);
        }
    }

    /// <summary>One mosaic partner (one draw).</summary>
    private int Partner(int index, int epoch, ref SampleRandom rng)
    {
        var n = _images.Count;
        if (PartnerWindow <= 0) return rng.NextInt(n);
        var (order, position) = Shuffle(epoch);
        var at = position[index];
        var window = Math.Min(Math.Min(PartnerWindow, n), epoch == 0 ? at + 1 : n);
        var q = at - rng.NextInt(window);
        return q >= 0 ? order[q] : Shuffle(epoch - 1).Order[q + n];
    }

    [ThreadStatic] private static Mat? _canvas;

    /// <summary>This thread's reusable s×s BGR output, filled with gray.</summary>
    private Mat GrayCanvas()
    {
        var s = ImageSize;
        if (_canvas is null || _canvas.Width != s || _canvas.Height != s)
        {
            _canvas?.Dispose();
            _canvas = new Mat(s, s, MatType.CV_8UC3);
        }
        _canvas.SetTo(Gray);
        return _canvas;
    }

    /// <summary>Processes into a new CHW RGB array (tests and tools).</summary>
    public (byte[] Chw, ProcessedSample Sample) Process(int index, int epoch, bool mosaicActive = true)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(ImageBytes, pinned: true);
        var sample = Process(index, epoch, mosaicActive, System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0));
        return (buffer, sample);
    }

    private Mat Letterboxed(int index, out int[] classes, out float[] boxes, out ImageInfo info)
    {
        var s = ImageSize;
        using var loaded = _store.Load(index);
        var image = loaded.Image;
        var (h, w) = (image.Height, image.Width);
        var r = Math.Min((double)s / h, (double)s / w);
        int nw = (int)Math.Round(w * r), nh = (int)Math.Round(h * r);
        double dw = (s - nw) / 2.0, dh = (s - nh) / 2.0;
        int top = (int)Math.Round(dh - 0.1), bottom = s - nh - top, left = (int)Math.Round(dw - 0.1), right = s - nw - left;
        var output = new Mat();
        if (nw != w || nh != h)
        {
            using var resized = new Mat();
            Cv2.Resize(image, resized, new Size(nw, nh), 0, 0, InterpolationFlags.Linear);
            Cv2.CopyMakeBorder(resized, output, top, bottom, left, right, BorderTypes.Constant, Gray);
        }
        else
        {
            Cv2.CopyMakeBorder(image, output, top, bottom, left, right, BorderTypes.Constant, Gray);
        }
        var labeled = _images[index];
        classes = labeled.Classes;
        boxes = BoxTransforms.ToPixelXyxy(labeled.Boxes, nw, nh, 1, 1, left, top);
        info = new ImageInfo(labeled.ImagePath, index, loaded.OriginalHeight, loaded.OriginalWidth,
            (float)nh / loaded.OriginalHeight, (float)nw / loaded.OriginalWidth, top, left);
        return output;
    }

    // plan null: draw into destination (RGB planes); else copy the tiles into destination (TilePlan slots) and fill the plan
    private void Augmented(int index, int epoch, bool mosaicActive, nint destination, TilePlan? plan, out int[] classes, out float[] boxes, out ImageInfo info)
    {
        var a = Augment!;
        var rng = SampleRandom.For(Seed, epoch, index);
        var output = plan is null ? GrayCanvas() : null!;
        PreTransform(index, epoch, mosaicActive, ref rng, output, out classes, out boxes, out info, out var written, plan is null ? null : (plan, destination));

        var mix = rng.NextDouble() < a.Mixup && mosaicActive;
        var mixIndex = rng.NextInt(_images.Count);
        var mixRatio = Math.Clamp(0.5 + 0.062 * Normal(ref rng), 0, 1); // ≈ Beta(32, 32)
        if (mix && plan is not null) throw new NotSupportedException("mixup is not supported with gpu_augment=True.");
        if (mix)
        {
            var partnerRng = SampleRandom.For(Seed ^ 0x6D69787570L, epoch, mixIndex);
            using var partner = new Mat(ImageSize, ImageSize, MatType.CV_8UC3, Gray);
            PreTransform(mixIndex, epoch, mosaicActive, ref partnerRng, partner, out var c2, out var b2, out _, out _);
            written = (0, 0, ImageSize, ImageSize);
            Cv2.AddWeighted(output, mixRatio, partner, 1 - mixRatio, 0, output);
            classes = [.. classes, .. c2];
            boxes = [.. boxes, .. b2];
        }

        var gains = new[] { rng.Uniform(-1, 1) * a.HsvH + 1, rng.Uniform(-1, 1) * a.HsvS + 1, rng.Uniform(-1, 1) * a.HsvV + 1 };
        var hsv = a.HsvH != 0 || a.HsvS != 0 || a.HsvV != 0;
        var flipUD = rng.NextDouble() < a.FlipUD;
        var flipLR = rng.NextDouble() < a.FlipLR;

        var s = ImageSize;
        if (flipUD)
            for (var i = 0; i < boxes.Length; i += 4) (boxes[i + 1], boxes[i + 3]) = (s - boxes[i + 3], s - boxes[i + 1]);
        if (flipLR)
            for (var i = 0; i < boxes.Length; i += 4) (boxes[i], boxes[i + 2]) = (s - boxes[i + 2], s - boxes[i]);

        if (plan is not null)
        {
            plan.SetColour(hsv ? Hsv.Tables(gains[0], gains[1], gains[2]) : null, flipLR, flipUD);
            return;
        }
        var tables = hsv && FusedColour ? new HsvPlanes.Gains(gains[0], gains[1], gains[2]) : null;
        if (tables is { FloatExact: true })
        {
            // HSV, flips, BGR→RGB and HWC→CHW in one vectorised pass straight into the batch buffer; outside `written` all is gray
            using var planes = Mat.FromPixelData(1, ImageBytes, MatType.CV_8UC1, destination);
            HsvPlanes.Apply(output.AsSpan<byte>(), s * 3, s, s, planes.AsSpan<byte>(), tables, flipLR, flipUD, written);
            return;
        }
        // the rare gains whose tables float cannot reproduce, and machines without AVX2/FMA: OpenCV's calls
        if (hsv) Hsv.Apply(output, gains[0], gains[1], gains[2]);
        if (flipUD) Cv2.Flip(output, output, FlipMode.X);
        if (flipLR) Cv2.Flip(output, output, FlipMode.Y);
        WriteRgbPlanes(output, destination);
    }

    /// <summary>Mosaic (or letterbox) followed by the random affine/perspective; consumes a fixed number of draws.</summary>
    /// <param name="output">s×s gray BGR image to draw into.</param>
    /// <param name="written">Bounding rectangle (x0, y0, x1, y1) of the pixels drawn; the rest of <paramref name="output"/> stays gray.</param>
    private void PreTransform(int index, int epoch, bool mosaicActive, ref SampleRandom rng, Mat output, out int[] classes, out float[] boxes, out ImageInfo info,
        out (int X0, int Y0, int X1, int Y1) written, (TilePlan Plan, nint Slots)? device = null)
    {
        var a = Augment!;
        var s = ImageSize;
        var useMosaic = rng.NextDouble() < a.Mosaic && mosaicActive;
        Span<int> tiles = [index, Partner(index, epoch, ref rng), Partner(index, epoch, ref rng), Partner(index, epoch, ref rng)];
        var xc = (int)rng.Uniform(s / 2.0, 1.5 * s);
        var yc = (int)rng.Uniform(s / 2.0, 1.5 * s);
        var inputSide = useMosaic ? 2 * s : s;
        var m = Warps.AffineMatrix(Augment!, ref rng, inputSide, s, out var gain);

        var primary = _images[index];
        using var first = _store.Load(index);
        info = new ImageInfo(primary.ImagePath, index, first.OriginalHeight, first.OriginalWidth,
            (float)first.Image.Height / first.OriginalHeight, (float)first.Image.Width / first.OriginalWidth, 0, 0);
        written = (0, 0, s, s);
        float[] before;
        int[] beforeClasses;
        if (useMosaic)
        {
            var loaded = new LoadedImage[4];
            loaded[0] = first;
            try
            {
                for (var t = 1; t < 4; t++) loaded[t] = _store.Load(tiles[t]);
                (beforeClasses, before) = Mosaic(loaded, tiles, xc, yc, m, output, out written, device);
            }
            finally
            {
                for (var t = 1; t < 4; t++) loaded[t]?.Dispose();
            }
        }
        else
        {
            var image = first.Image;
            var (h, w) = (image.Height, image.Width);
            var r = Math.Min((double)s / h, (double)s / w);
            int nw = (int)Math.Round(w * r), nh = (int)Math.Round(h * r);
            int top = (int)Math.Round((s - nh) / 2.0 - 0.1), left = (int)Math.Round((s - nw) / 2.0 - 0.1);
            double sx = (double)nw / w, sy = (double)nh / h;
            var letterbox = new[] { sx, 0, left, 0, sy, top, 0, 0, 1 };
            if (device is ({ } plan, var slots))
                plan.Record(0, image, Warps.Multiply(m, letterbox), (-0.5, -0.5, w - 0.5, h - 0.5), replicate: false, slots, s);
            else
                Warps.Warp(image, output, Warps.Multiply(m, letterbox), new Rect(0, 0, s, s), BorderTypes.Constant);
            beforeClasses = primary.Classes;
            before = BoxTransforms.ToPixelXyxy(primary.Boxes, w, h, sx, sy, left, top);
        }

        var after = Warps.IsAffine(m) ? BoxTransforms.Affine(before, m) : BoxTransforms.Perspective(before, m);
        BoxTransforms.Clip(after, s, s);
        var scaled = before.Select(v => (float)(v * gain)).ToArray();
        (classes, boxes) = BoxTransforms.Select(beforeClasses, after, k => BoxTransforms.IsCandidate(scaled, after, k * 4));
    }

    /// <summary>Ultralytics mosaic of 4 on a 2s×2s canvas centred at (xc, yc), warped by <paramref name="m"/> straight into
    /// <paramref name="output"/> tile by tile (no canvas is built). Returns the canvas-coordinate boxes (clipped, non-empty).</summary>
    private (int[] Classes, float[] Boxes) Mosaic(LoadedImage[] loaded, Span<int> tiles, int xc, int yc, double[] m, Mat output,
        out (int X0, int Y0, int X1, int Y1) written, (TilePlan Plan, nint Slots)? device)
    {
        var s = ImageSize;
        written = (s, s, 0, 0);
        var classes = new List<int>();
        var boxes = new List<float>();
        var scaleTranslate = m[1] == 0 && m[3] == 0 && m[6] == 0 && m[7] == 0 && m[0] > 0 && m[4] > 0;
        Mat? canvas = scaleTranslate || device is not null ? null : new Mat(2 * s, 2 * s, MatType.CV_8UC3, Gray);
        try
        {
            for (var t = 0; t < 4; t++)
            {
                var image = loaded[t].Image;
                var tile = MosaicTile.Of(t, xc, yc, image.Width, image.Height, s);
                if (tile.Visible && device is ({ } plan, var slots))
                {
                    // scale and translation: the tile owns the output pixels whose canvas coordinate lies in [x1a − ½, x2a − ½) ×
                    // [y1a − ½, y2a − ½), border replicate, as below; otherwise its crop is part of a gray canvas, as below
                    plan.Record(t, image, Warps.Multiply(m, [1, 0, tile.PadW, 0, 1, tile.PadH, 0, 0, 1]),
                        (tile.X1b - 0.5, tile.Y1b - 0.5, tile.X2b - 0.5, tile.Y2b - 0.5), replicate: scaleTranslate, slots, s);
                }
                else if (tile.Visible && canvas is not null)
                {
                    using var from = new Mat(image, new Rect(tile.X1b, tile.Y1b, tile.X2b - tile.X1b, tile.Y2b - tile.Y1b));
                    using var to = new Mat(canvas, new Rect(tile.X1a, tile.Y1a, tile.X2a - tile.X1a, tile.Y2a - tile.Y1a));
                    from.CopyTo(to);
                }
                else if (tile.Visible) WarpTile(image, tile, m, output, ref written);
                AddLabels(_images[tiles[t]], image.Width, image.Height, tile, classes, boxes);
            }
            if (canvas is not null)
            {
                Warps.Warp(canvas, output, m, new Rect(0, 0, s, s), BorderTypes.Constant);
                written = (0, 0, s, s);
            }
        }
        finally
        {
            canvas?.Dispose();
        }
        return (classes.ToArray(), boxes.ToArray());
    }

    // Scale and translation: the output pixels whose canvas coordinate falls in this tile's rectangle, warped from its image.
    private void WarpTile(Mat image, MosaicTile tile, double[] m, Mat output, ref (int X0, int Y0, int X1, int Y1) written)
    {
        var s = ImageSize;
        int u0 = Math.Clamp((int)Math.Ceiling(m[0] * (tile.X1a - 0.5) + m[2]), 0, s), u1 = Math.Clamp((int)Math.Ceiling(m[0] * (tile.X2a - 0.5) + m[2]), 0, s);
        int v0 = Math.Clamp((int)Math.Ceiling(m[4] * (tile.Y1a - 0.5) + m[5]), 0, s), v1 = Math.Clamp((int)Math.Ceiling(m[4] * (tile.Y2a - 0.5) + m[5]), 0, s);
        if (u1 <= u0 || v1 <= v0) return;
        var region = new Rect(u0, v0, u1 - u0, v1 - v0);
        if (SeparableWarp)
        {
            ScaleWarp.Apply(image, output, m[0], m[0] * tile.PadW + m[2], m[4], m[4] * tile.PadH + m[5], region);
        }
        else
        {
            var tileMatrix = new[] { m[0], 0, m[0] * tile.PadW + m[2], 0, m[4], m[4] * tile.PadH + m[5], 0, 0, 1 };
            Warps.Warp(image, output, tileMatrix, region, BorderTypes.Replicate);
        }
        written = (Math.Min(written.X0, u0), Math.Min(written.Y0, v0), Math.Max(written.X1, u1), Math.Max(written.Y1, v1));
    }

    // The tile's boxes on the canvas (clipped to it; empty ones dropped).
    private void AddLabels(LabeledImage labeled, int w, int h, MosaicTile tile, List<int> classes, List<float> boxes)
    {
        var pixel = BoxTransforms.ToPixelXyxy(labeled.Boxes, w, h, 1, 1, tile.PadW, tile.PadH);
        BoxTransforms.Clip(pixel, 2 * ImageSize, 2 * ImageSize);
        for (var k = 0; k < labeled.Classes.Length; k++)
        {
            if (pixel[k * 4 + 2] - pixel[k * 4] <= 0 || pixel[k * 4 + 3] - pixel[k * 4 + 1] <= 0) continue;
            classes.Add(labeled.Classes[k]);
            boxes.AddRange(pixel.AsSpan(k * 4, 4));
        }
    }

    private static double Normal(ref SampleRandom rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private void WriteRgbPlanes(Mat bgr, nint destination)
    {
        var s = ImageSize;
        var plane = (nint)(s * s);
        using var r = Mat.FromPixelData(s, s, MatType.CV_8UC1, destination);
        using var g = Mat.FromPixelData(s, s, MatType.CV_8UC1, destination + plane);
        using var b = Mat.FromPixelData(s, s, MatType.CV_8UC1, destination + 2 * plane);
        Cv2.MixChannels([bgr], [r, g, b], [2, 0, 1, 1, 0, 2]);
    }
}
