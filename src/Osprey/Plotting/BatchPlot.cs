using System.Globalization;
using OpenCvSharp;
using Osprey.Data;
using Osprey.Runtime;
using TorchSharp;
using Scalar = OpenCvSharp.Scalar;
using Size = OpenCvSharp.Size;
using static TorchSharp.torch;

namespace Osprey.Plotting;

/// <summary>
/// Ultralytics' <c>plot_images</c> (train_batch*.png, val_batch*_labels.png, val_batch*_pred.png): up to 16 images
/// tiled ⌈√n⌉ × ⌈√n⌉ column by column on white, scaled down so the mosaic is at most 1920 px; each tile framed white
/// with its file name on top, and its boxes in Ultralytics' class colours labelled with the class name (and, for
/// predictions, the confidence to one decimal; predictions with confidence ≤ 0.25 are not drawn).
/// </summary>
internal static class BatchPlot
{
    public const int MaxSize = 1920;
    public const int MaxTiles = 16;
    public const double ConfidenceThreshold = 0.25;

    /// <summary>Tiles per side, the tile size in the mosaic and the scale from batch pixels to tile pixels.</summary>
    public static (int PerSide, int TileWidth, int TileHeight, double Scale) Layout(int images, int height, int width)
    {
        int count = Math.Min(images, MaxTiles);
        int perSide = (int)Math.Ceiling(Math.Sqrt(count));
        double scale = MaxSize / (double)perSide / Math.Max(height, width);
        if (scale >= 1) return (perSide, width, height, 1);
        return (perSide, (int)Math.Ceiling(scale * width), (int)Math.Ceiling(scale * height), scale);
    }

    public static void Draw(Batch batch, IReadOnlyList<string> names, string pngPath, IReadOnlyList<Tensor>? predictions)
    {
        long[] shape = batch.Images.shape;
        int count = (int)Math.Min(shape[0], MaxTiles), height = (int)shape[2], width = (int)shape[3];
        var (perSide, tileWidth, tileHeight, scale) = Layout(count, height, width);
        using var mosaic = new Mat(perSide * tileHeight, perSide * tileWidth, MatType.CV_8UC3, Palette.White);
        PasteImages(batch.Images, count, height, width, mosaic, perSide, tileWidth, tileHeight);

        int fontSize = Math.Max((int)((tileHeight + tileWidth) * perSide * 0.01), 18);
        int lineWidth = Math.Max(1, (int)Math.Round(fontSize / 10.0));
        double textScale = fontSize / 40.0;
        int textThickness = Math.Max(1, lineWidth / 2);

        var boxes = HostCopy.Floats(batch.Boxes);
        var classes = HostCopy.Floats(batch.Classes);
        var owner = HostCopy.Floats(batch.BatchIndex);
        for (int i = 0; i < count; i++)
        {
            var tile = Tile(i, perSide, tileWidth, tileHeight);
            if (predictions is null)
            {
                for (int j = 0; j < classes.Length; j++)
                {
                    if ((int)owner[j] != i) continue;
                    float cx = boxes[4 * j], cy = boxes[4 * j + 1], bw = boxes[4 * j + 2], bh = boxes[4 * j + 3];
                    var box = new Rect2d(tile.X + (cx - bw / 2) * tileWidth, tile.Y + (cy - bh / 2) * tileHeight, bw * tileWidth, bh * tileHeight);
                    int cls = (int)classes[j];
                    BoxLabel(mosaic, box, PrecisionRecallPlot.NameOf(names, cls), Palette.Class(cls), lineWidth, textScale, textThickness);
                }
            }
            else if (i < predictions.Count)
            {
                var p = HostCopy.Floats(predictions[i]);
                for (int j = 0; j + 5 < p.Length; j += 6)
                {
                    if (!(p[j + 4] > ConfidenceThreshold)) continue;
                    var box = new Rect2d(tile.X + p[j] * scale, tile.Y + p[j + 1] * scale, (p[j + 2] - p[j]) * scale, (p[j + 3] - p[j + 1]) * scale);
                    int cls = (int)p[j + 5];
                    string label = $"{PrecisionRecallPlot.NameOf(names, cls)} {p[j + 4].ToString("0.0", CultureInfo.InvariantCulture)}";
                    BoxLabel(mosaic, box, label, Palette.Class(cls), lineWidth, textScale, textThickness);
                }
            }
            Cv2.Rectangle(mosaic, tile, Palette.White, 2);
            if (i < batch.Infos.Count)
            {
                string file = Path.GetFileName(batch.Infos[i].Path);
                if (file.Length > 40) file = file[..40];
                var size = Text.Measure(file, textScale, textThickness);
                Cv2.PutText(mosaic, file, new Point(tile.X + 5, tile.Y + 5 + size.Height), Text.Font, textScale,
                    new Scalar(220, 220, 220), textThickness, LineTypes.AntiAlias);
            }
        }
        PngFile.Write(pngPath, mosaic);
    }

    /// <summary>Tile i sits in column i / n, row i % n (Ultralytics fills the mosaic column by column).</summary>
    public static Rect Tile(int index, int perSide, int tileWidth, int tileHeight) =>
        new(tileWidth * (index / perSide), tileHeight * (index % perSide), tileWidth, tileHeight);

    private static void PasteImages(Tensor images, int count, int height, int width, Mat mosaic, int perSide, int tileWidth, int tileHeight)
    {
        using var scope = NewDisposeScope();
        var selected = images.narrow(0, 0, count).detach().to(CPU);
        if (selected.dtype != ScalarType.Byte)
        {
            // float images in [0, 1] (or already 0..255) → uint8
            double max = selected.numel() == 0 ? 0 : selected.max().ToDouble();
            selected = (max <= 1 ? selected.to_type(ScalarType.Float32) * 255 : selected.to_type(ScalarType.Float32))
                .clamp(0, 255).round().to_type(ScalarType.Byte);
        }
        var bytes = selected.permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
        int imageBytes = height * width * 3;
        var one = new byte[imageBytes];
        for (int i = 0; i < count; i++)
        {
            Array.Copy(bytes, (long)i * imageBytes, one, 0, imageBytes);
            using var rgb = Mat.FromPixelData(height, width, MatType.CV_8UC3, one);
            using var bgr = new Mat();
            Cv2.CvtColor(rgb, bgr, ColorConversionCodes.RGB2BGR);
            using var roi = new Mat(mosaic, Tile(i, perSide, tileWidth, tileHeight));
            if (tileWidth == width && tileHeight == height) bgr.CopyTo(roi);
            else Cv2.Resize(bgr, roi, new Size(tileWidth, tileHeight), 0, 0, InterpolationFlags.Linear);
        }
    }

    /// <summary>Ultralytics' <c>box_label</c>: the box outline, and the label on a filled box of the same colour above
    /// the box (inside it when there is no room above).</summary>
    private static void BoxLabel(Mat canvas, Rect2d box, string label, Scalar color, int lineWidth, double textScale, int textThickness)
    {
        var p1 = new Point((int)box.Left, (int)box.Top);
        var p2 = new Point((int)box.Right, (int)box.Bottom);
        Cv2.Rectangle(canvas, p1, p2, color, lineWidth, LineTypes.Link8);
        var size = Cv2.GetTextSize(label, Text.Font, textScale, textThickness, out int baseline);
        int labelHeight = size.Height + baseline + 2;
        bool outside = p1.Y - labelHeight >= 0;
        int top = outside ? p1.Y - labelHeight : p1.Y;
        var background = new Rect(p1.X, top, size.Width + 4, labelHeight);
        Cv2.Rectangle(canvas, background, color, -1);
        Cv2.PutText(canvas, label, new Point(p1.X + 2, top + size.Height + 1), Text.Font, textScale, Palette.TextOn(color),
            textThickness, LineTypes.AntiAlias);
    }
}
