using OpenCvSharp;

namespace Osprey.Data;

/// <summary>Ultralytics <c>RandomHSV</c>: BGR→HSV, per-channel lookup tables scaled by the gains, HSV→BGR (in place).</summary>
public static class Hsv
{
    /// <summary>Applies hue, saturation and value gains (each around 1) to a BGR image in place.</summary>
    public static void Apply(Mat bgr, double hueGain, double saturationGain, double valueGain)
    {
        var table = new byte[256 * 3];
        for (var x = 0; x < 256; x++)
        {
            table[x * 3] = (byte)(int)((x * hueGain) % 180);
            table[x * 3 + 1] = (byte)(int)Math.Clamp(x * saturationGain, 0, 255);
            table[x * 3 + 2] = (byte)(int)Math.Clamp(x * valueGain, 0, 255);
        }
        using var lut = Mat.FromPixelData(1, 256, MatType.CV_8UC3, table);
        using var hsv = new Mat();
        Cv2.CvtColor(bgr, hsv, ColorConversionCodes.BGR2HSV);
        Cv2.LUT(hsv, lut, hsv);
        Cv2.CvtColor(hsv, bgr, ColorConversionCodes.HSV2BGR);
    }
}
