using OpenCvSharp;

namespace Osprey.Tests.Plotting;

/// <summary>A fresh temporary folder for plot outputs (deleted on dispose), and PNG read-back helpers.</summary>
internal sealed class PlotTestFolder : IDisposable
{
    public PlotTestFolder()
    {
        Root = Path.Combine(Path.GetTempPath(), "osprey-plot-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public string this[string name] => Path.Combine(Root, name);

    /// <summary>The file names in the folder (temporary files included), sorted.</summary>
    public string[] FileNames() => Directory.GetFiles(Root).Select(Path.GetFileName).Order().ToArray()!;

    /// <summary>Decodes a written PNG (asserting it is one) as BGR.</summary>
    public static Mat ReadPng(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 8 && bytes[0] == 0x89 && bytes[1] == (byte)'P' && bytes[2] == (byte)'N' && bytes[3] == (byte)'G',
            $"{path} is not a PNG");
        var image = Cv2.ImDecode(bytes, ImreadModes.Color);
        Assert.False(image.Empty(), $"{path} does not decode");
        return image;
    }

    /// <summary>The BGR pixel at (x, y).</summary>
    public static (int B, int G, int R) Pixel(Mat image, int x, int y)
    {
        var v = image.At<Vec3b>(y, x);
        return (v.Item0, v.Item1, v.Item2);
    }

    /// <summary>Deletes the folder; first copies its PNGs to $OSPREY_PLOT_PREVIEW when set, to look at them.</summary>
    public void Dispose()
    {
        string? preview = Environment.GetEnvironmentVariable("OSPREY_PLOT_PREVIEW");
        if (!string.IsNullOrEmpty(preview))
        {
            Directory.CreateDirectory(preview);
            foreach (var png in Directory.GetFiles(Root, "*.png"))
                File.Copy(png, Path.Combine(preview, Path.GetFileName(png)), overwrite: true);
        }
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
