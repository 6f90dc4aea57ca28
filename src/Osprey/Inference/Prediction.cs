using System.Globalization;
using OpenCvSharp;
using Osprey.Plotting;

namespace Osprey.Inference;

/// <summary>What <see cref="Predictor"/> found in one image.</summary>
/// <param name="Source">File path, video frame label, or null for an in-memory image.</param>
/// <param name="Width">Original width.</param>
/// <param name="Height">Original height.</param>
/// <param name="Detections">By descending confidence, boxes in original pixels.</param>
/// <param name="Names">The model's class names.</param>
public sealed record Prediction(string? Source, int Width, int Height, IReadOnlyList<Detection> Detections, IReadOnlyList<string> Names)
{
    /// <summary>
    /// Ultralytics' <c>Results.plot()</c>: a copy of <paramref name="bgr"/> (the original image) with each box in its
    /// class colour and a filled label "name 0.87" above it. Line width defaults to max(round((h + w) / 2 · 0.003), 2).
    /// </summary>
    public Mat Plot(Mat bgr, int? lineWidth = null, bool labels = true, bool confidences = true)
    {
        var canvas = bgr.Clone();
        int lw = lineWidth ?? Math.Max((int)Math.Round((canvas.Rows + canvas.Cols) / 2.0 * 0.003, MidpointRounding.ToEven), 2);
        int tf = Math.Max(lw - 1, 1);
        double sf = lw / 3.0;
        // Ultralytics draws the lowest confidence first so the best box ends on top.
        foreach (var d in Detections.Reverse())
        {
            var color = Palette.Class(d.ClassId);
            var p1 = new Point((int)d.Box.X1, (int)d.Box.Y1);
            var p2 = new Point((int)d.Box.X2, (int)d.Box.Y2);
            Cv2.Rectangle(canvas, p1, p2, color, lw, LineTypes.AntiAlias);
            if (!labels) continue;
            string label = confidences ? $"{d.ClassName} {d.Confidence.ToString("0.00", CultureInfo.InvariantCulture)}" : d.ClassName;
            var size = Cv2.GetTextSize(label, HersheyFonts.HersheySimplex, sf, tf, out _);
            int h = size.Height + 3;
            bool outside = p1.Y >= h;
            var q2 = new Point(p1.X + size.Width, outside ? p1.Y - h : p1.Y + h);
            Cv2.Rectangle(canvas, p1, q2, color, -1, LineTypes.AntiAlias);
            Cv2.PutText(canvas, label, new Point(p1.X, outside ? p1.Y - 2 : p1.Y + h - 1), HersheyFonts.HersheySimplex, sf,
                Palette.TextOn(color), tf, LineTypes.AntiAlias);
        }
        return canvas;
    }

    /// <summary>YOLO label lines: <c>cls cx cy w h [conf]</c>, normalised by the image size.</summary>
    public IEnumerable<string> ToYoloLines(bool withConfidence)
    {
        foreach (var d in Detections)
        {
            string line = string.Create(CultureInfo.InvariantCulture,
                $"{d.ClassId} {d.Box.CenterX / Width:0.######} {d.Box.CenterY / Height:0.######} {d.Box.Width / Width:0.######} {d.Box.Height / Height:0.######}");
            if (withConfidence) line += string.Create(CultureInfo.InvariantCulture, $" {d.Confidence:0.######}");
            yield return line;
        }
    }
}
