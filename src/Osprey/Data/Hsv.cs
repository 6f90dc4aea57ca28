using OpenCvSharp;

namespace Osprey.Data;

/// <summary>Ultralytics <c>RandomHSV</c>: BGR→HSV, per-channel lookup tables scaled by the gains, HSV→BGR (in place).</summary>
public static class Hsv
{
    /// <summary>Applies hue, saturation and value gains (each around 1) to a BGR image in place.</summary>
    public static void Apply(Mat bgr, double hueGain, double saturationGain, double valueGain)
    {
        var planar = Tables(hueGain, saturationGain, valueGain);
        var table = new byte[256 * 3];
        for (var x = 0; x < 256; x++)
            for (var c = 0; c < 3; c++) table[x * 3 + c] = planar[c * 256 + x];
        using var lut = Mat.FromPixelData(1, 256, MatType.CV_8UC3, table);
        using var hsv = new Mat();
        Cv2.CvtColor(bgr, hsv, ColorConversionCodes.BGR2HSV);
        Cv2.LUT(hsv, lut, hsv);
        Cv2.CvtColor(hsv, bgr, ColorConversionCodes.HSV2BGR);
    }

    /// <summary>Ultralytics' three lookup tables, one after the other (hue, saturation, value; 256 bytes each).</summary>
    public static byte[] Tables(double hueGain, double saturationGain, double valueGain)
    {
        var table = new byte[256 * 3];
        for (var x = 0; x < 256; x++)
        {
            table[x] = (byte)(int)((x * hueGain) % 180);
            table[256 + x] = (byte)(int)Math.Clamp(x * saturationGain, 0, 255);
            table[512 + x] = (byte)(int)Math.Clamp(x * valueGain, 0, 255);
        }
        return table;
    }
}
