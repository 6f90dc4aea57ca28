using OpenCvSharp;

namespace Osprey.Plotting;

/// <summary>Hershey-font text helpers: anchored, rotated.</summary>
internal static class Text
{
    public const HersheyFonts Font = HersheyFonts.HersheySimplex;

    /// <summary>Horizontal alignment of a text relative to its anchor.</summary>
    public enum Align { Left, Center, Right }

    public static Size Measure(string text, double scale, int thickness = 1) =>
        Cv2.GetTextSize(text, Font, scale, thickness, out _);

    /// <summary>Draws <paramref name="text"/> with its vertical centre at <paramref name="anchor"/>.Y.</summary>
    public static void Put(Mat canvas, string text, Point anchor, double scale, Scalar color, Align align = Align.Left, int thickness = 1)
    {
        var size = Measure(text, scale, thickness);
        int x = align switch
        {
            Align.Center => anchor.X - size.Width / 2,
            Align.Right => anchor.X - size.Width,
            _ => anchor.X,
        };
        Cv2.PutText(canvas, text, new Point(x, anchor.Y + size.Height / 2), Font, scale, color, thickness, LineTypes.AntiAlias);
    }

    /// <summary>Draws <paramref name="text"/> rotated 90° counter-clockwise (reading bottom to top), centred on
    /// <paramref name="center"/>.</summary>
    public static void PutVertical(Mat canvas, string text, Point center, double scale, Scalar color, int thickness = 1)
    {
        var size = Measure(text, scale, thickness);
        int pad = 4;
        using var mask = new Mat(size.Height + 2 * pad, size.Width + 2 * pad, MatType.CV_8UC1, Scalar.All(0));
        Cv2.PutText(mask, text, new Point(pad, pad + size.Height), Font, scale, Scalar.All(255), thickness, LineTypes.AntiAlias);
        using var rotated = new Mat();
        Cv2.Rotate(mask, rotated, RotateFlags.Rotate90Counterclockwise);
        var region = new Rect(center.X - rotated.Width / 2, center.Y - rotated.Height / 2, rotated.Width, rotated.Height)
            & new Rect(0, 0, canvas.Width, canvas.Height);
        if (region.Width <= 0 || region.Height <= 0) return;
        var source = new Rect(region.X - (center.X - rotated.Width / 2), region.Y - (center.Y - rotated.Height / 2), region.Width, region.Height);
        using var roi = new Mat(canvas, region);
        using var alpha = new Mat(rotated, source);
        Blend(roi, alpha, color);
    }

    /// <summary>roi = roi·(1 − α) + color·α, α = mask / 255.</summary>
    private static void Blend(Mat roi, Mat mask, Scalar color)
    {
        using var weight = new Mat();
        mask.ConvertTo(weight, MatType.CV_32FC1, 1.0 / 255);
        using var inverse = new Mat();
        Cv2.Subtract(Scalar.All(1.0), weight, inverse);
        using var solid = new Mat(roi.Size(), roi.Type(), color);
        using var blended = new Mat();
        Cv2.BlendLinear(roi, solid, inverse, weight, blended);
        blended.CopyTo(roi);
    }
}
