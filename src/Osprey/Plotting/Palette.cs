using OpenCvSharp;

namespace Osprey.Plotting;

/// <summary>Colours of the plots, as BGR <see cref="Scalar"/>s for OpenCV.</summary>
internal static class Palette
{
    /// <summary>Ultralytics' class palette (<c>ultralytics.utils.plotting.Colors</c>), RGB hex.</summary>
    private static readonly string[] UltralyticsHex =
    {
        "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
        "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
    };

    /// <summary>matplotlib's default colour cycle (tab10), RGB hex.</summary>
    private static readonly string[] MatplotlibHex =
    {
        "1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B", "E377C2", "7F7F7F", "BCBD22", "17BECF",
    };

    /// <summary>matplotlib's "Blues" colormap anchors (ColorBrewer), RGB hex, from 0 to 1.</summary>
    private static readonly string[] BluesHex =
    {
        "F7FBFF", "DEEBF7", "C6DBEF", "9ECAE1", "6BAED6", "4292C6", "2171B5", "08519C", "08306B",
    };

    /// <summary>matplotlib's "viridis" sampled at 0, 1/7, …, 1, RGB hex.</summary>
    private static readonly string[] ViridisHex = { "440154", "46327E", "365C8D", "277F8E", "1FA187", "4AC16D", "A0DA39", "FDE725" };

    public static readonly Scalar White = new(255, 255, 255);
    public static readonly Scalar Black = new(0, 0, 0);
    public static readonly Scalar Grid = new(222, 222, 222);
    public static readonly Scalar Grey = new(128, 128, 128);
    /// <summary>matplotlib "blue" (#0000FF).</summary>
    public static readonly Scalar Blue = new(255, 0, 0);

    /// <summary>Ultralytics' colour of class <paramref name="index"/>.</summary>
    public static Scalar Class(int index) => FromHex(UltralyticsHex[((index % UltralyticsHex.Length) + UltralyticsHex.Length) % UltralyticsHex.Length]);

    /// <summary>matplotlib's n-th default line colour (C0, C1, …).</summary>
    public static Scalar Cycle(int index) => FromHex(MatplotlibHex[index % MatplotlibHex.Length]);

    /// <summary>"Blues" at <paramref name="value"/> in [0, 1], linearly between the anchors.</summary>
    public static Scalar Blues(double value) => Interpolate(BluesHex, value);

    /// <summary>"viridis" at <paramref name="value"/> in [0, 1], linearly between the anchors.</summary>
    public static Scalar Viridis(double value) => Interpolate(ViridisHex, value);

    private static Scalar Interpolate(string[] anchors, double value)
    {
        double position = Math.Clamp(value, 0, 1) * (anchors.Length - 1);
        int low = Math.Min((int)position, anchors.Length - 2);
        double f = position - low;
        Scalar a = FromHex(anchors[low]), b = FromHex(anchors[low + 1]);
        return new Scalar(a.Val0 + f * (b.Val0 - a.Val0), a.Val1 + f * (b.Val1 - a.Val1), a.Val2 + f * (b.Val2 - a.Val2));
    }

    /// <summary>Black or white, whichever reads better on <paramref name="background"/> (BGR).</summary>
    public static Scalar TextOn(Scalar background) =>
        0.114 * background.Val0 + 0.587 * background.Val1 + 0.299 * background.Val2 > 150 ? Black : White;

    private static Scalar FromHex(string rgb)
    {
        int value = Convert.ToInt32(rgb, 16);
        return new Scalar(value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF);
    }
}
